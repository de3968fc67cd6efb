"""stepwise optimize's loop on the real Postgres and the real engine, with a scripted model in place of a real one:
candidates become eval runs and optimize_candidates rows, verified correct items become learned examples
(cross-fitted), the chosen configuration runs on the held-out items beside the default, and the files it writes are
the ones the server reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stepwise.app import db
from stepwise.app.config import load_bank, load_config
from stepwise.app.registry import Fleet
from stepwise.app.runtime import Runtime, engine_for
from stepwise.app.settings import Settings
from stepwise.app.trace import TraceSink
from stepwise.evals.datasets import jsonl
from stepwise.evals.optimize import BANK_FILE, CONFIG_FILE, PLOT_FILE, REPORT_FILE, Optimizer
from stepwise.evals.search import HAND, LEARNED, Objective, split_items
from stepwise.reasoning.types import Completion, Expert, Grammar, Usage
from stepwise.tools import load_tools
from tests.conftest import settings_for

QUESTIONS = [("plum", 3, 4), ("quince", 12, 30), ("rowan", 7, 8), ("sloe", 21, 5), ("tansy", 40, 2),
             ("umber", 9, 9), ("vetch", 15, 26), ("woad", 6, 11)]


class Adder:
    """A model that plans `What does the <name> jar hold if it has A and then B more?` as a program: right (A + B)
    when sampled three or more times, wrong (A - B) as one greedy sample; anything else gets a vague answer."""

    provider, model, base_url, kind = "test", "adder", "inline:", "test"

    async def generate(self, messages, *, constraint=None, sampling=None, **_) -> Completion:
        numbers = re.findall(r"\d+", messages[-1].content)
        n = sampling.n if sampling else 1
        if isinstance(constraint, Grammar) and len(numbers) == 2:
            text = f"answer = {numbers[0]} {'+' if n >= 3 else '-'} {numbers[1]}"
            return Completion(text, Usage(40, 8, 0), 1.0, self.model, "stop", alternatives=[text] * (n - 1))
        return Completion('{"text": "perhaps", "uses": [1]}', Usage(20, 6, 0), 1.0, self.model, "stop")

    async def health(self) -> bool:
        return True

    async def aclose(self) -> None:
        pass


@pytest.fixture
def workload(tmp_path: Path):
    path = tmp_path / "jars.jsonl"
    path.write_text("".join(f'{{"id": "{name}", "question": "What does the {name} jar hold if it has {a} and then '
                            f'{b} more?", "answer": {a + b}, "answer_type": "number"}}\n' for name, a, b in QUESTIONS))
    return jsonl(path)


@pytest.fixture
async def runtime(database_url: str):
    settings: Settings = settings_for(database_url, "smollm2", deadline_s=30.0)
    fleet = Fleet(experts={"general": Expert(name="general", backend=Adder())}, llamas=[])
    pool = await db.create_pool(database_url, max_size=4)
    sink = TraceSink(lambda: db.connect(database_url))
    sink.start()
    runtime = Runtime(settings, engine_for(settings, fleet, load_tools(())), fleet, pool, sink, database_url)
    yield runtime
    await runtime.close()


async def test_an_optimization_is_recorded_and_writes_what_the_server_reads(runtime, workload, tmp_path, database_url):
    """Four candidates, each linked to its eval runs; learned examples only from verified correct train items; the
    chosen configuration on the held-out items beside the default and with the other bank; config, bank, report and
    PNG written, the config loadable as STEPWISE_CONFIG."""
    items = list(workload.items())
    train, heldout = split_items(items, holdout=0.25, seed=4)
    out = tmp_path / "tuned"
    optimizer = Optimizer(runtime, workload, train, heldout, out, concurrency=2)
    outcome = await optimizer.run(Objective(), budget=4, seed=1, compare_banks=True)

    assert len(outcome.candidates) == 4 and outcome.candidates[0].params == optimizer.defaults
    rows = await runtime.pool.fetch(
        "SELECT number, params, eval_run_ids, accuracy, items, chosen FROM optimize_candidate_scores"
        " WHERE optimize_run_id = $1 ORDER BY number", outcome.optimize_run_id)
    assert [r["number"] for r in rows] == [0, 1, 2, 3]
    for row, candidate in zip(rows, outcome.candidates, strict=True):
        assert row["accuracy"] == pytest.approx(candidate.measures.accuracy) and row["items"] == len(train)
        assert len(row["eval_run_ids"]) == (2 if candidate.params["bank"] == LEARNED else 1)
        # the scripted model is right exactly with a sampled program; with compose=always its vague composed text
        # is asked again, then the computed number answers
        p = candidate.params
        right = p["planner"] == "program" and p["samples"] >= 3
        assert row["accuracy"] == (1.0 if right else 0.0)
    assert [r["number"] for r in rows if r["chosen"]] == [outcome.chosen.number]
    assert outcome.chosen.measures.accuracy == max(c.measures.accuracy for c in outcome.candidates)

    # the default (5 samples) answers every train item right with every verdict passing: all are learned
    assert outcome.learned == len(train)
    bank = load_bank(out / BANK_FILE)
    learned = {e.question: e.program for e in bank.examples if "jar" in e.question}
    assert set(learned) == {i.question for i in train} and not {i.question for i in heldout} & set(learned)
    assert all(re.fullmatch(r"answer = \d+ \+ \d+", p) for p in learned.values())

    run = await runtime.pool.fetchrow("SELECT * FROM optimize_runs WHERE id = $1", outcome.optimize_run_id)
    assert run["status"] == "finished" and run["chosen_number"] == outcome.chosen.number
    assert sorted(run["heldout_items"]) == sorted(i.id for i in heldout) and run["config"]["planner"]
    labels = [h.label for h in outcome.heldout]
    assert labels[:2] == ["chosen", "default"] and len(labels) == 3
    held_rows = await runtime.pool.fetch("SELECT item_id FROM eval_items WHERE eval_run_id = $1",
                                         run["heldout_eval_run_id"])
    assert sorted(r["item_id"] for r in held_rows) == sorted(i.id for i in heldout)
    frontier = await runtime.pool.fetch("SELECT number FROM optimize_frontier WHERE optimize_run_id = $1",
                                        outcome.optimize_run_id)
    assert frontier and all(r["number"] in range(4) for r in frontier)

    config = load_config(out / CONFIG_FILE)
    assert config.planner.samples == outcome.chosen.params["samples"]
    assert (config.planner.bank == BANK_FILE) == (outcome.chosen.params["bank"] == LEARNED)
    served = Settings.from_env({"HOME": str(tmp_path), "STEPWISE_CONFIG": str(out / CONFIG_FILE)})
    assert served.plan_samples == outcome.chosen.params["samples"]
    report = (out / REPORT_FILE).read_text()
    assert "## Held-out items" in report and f"stepwise optimize run {outcome.optimize_run_id}" in report
    assert (out / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert HAND in {c.params["bank"] for c in outcome.candidates}


async def test_recorded_runs_become_a_workload_with_the_answers_evals_recorded(runtime, workload):
    """--from-runs: the selected runs' questions, once each, with the expected answer of the eval row that recorded
    them; a question no eval scored is counted, not used; the condition runs read-only."""
    from stepwise.evals.from_runs import workload as from_runs

    items = list(workload.items())[:3]
    run = await Optimizer(runtime, workload, items, [], Path("/nonexistent")).run_items(
        {"planner": "program", "samples": 3, "more": 0, "examples": 3, "temperature": 0.7, "verifiers": "none",
         "compose": "auto", "max_tokens": 128, "bank": HAND}, items, None, "train", None)
    assert run > 0
    await runtime.sink.flush(timeout=10.0)
    await runtime.pool.execute(
        "INSERT INTO runs (run_id, question, status, started_at) VALUES (gen_random_uuid(), $1, 'finished', now())",
        "What does the yarrow jar hold if nobody says?")
    selected = await from_runs(runtime.pool, "question LIKE 'What does the %' AND question NOT LIKE '%quince%'")
    got = {i.question: i.answer for i in selected.items()}
    assert {i.question: i.answer for i in items if "quince" not in i.question}.items() <= got.items()
    assert "What does the yarrow jar hold if nobody says?" not in got and selected.unanswered == 1
    assert all(i.answer_type == "number" for i in selected.items())
    with pytest.raises(ValueError, match="read-only"):
        await from_runs(runtime.pool, "nextval('eval_runs_id_seq') > 0")
    with pytest.raises(ValueError, match="without `;`"):
        await from_runs(runtime.pool, "true; DROP TABLE runs")


def test_the_command_runs_the_whole_loop(database_url: str, workload, monkeypatch, capsys, tmp_path):
    """`stepwise optimize FILE …` as typed (the scripted model standing in for the local one the runtime would load):
    exit 0, the summary lines, the files, and rows for the run it names."""
    import stepwise.app.runtime
    from stepwise.app.cli import main
    from tests.conftest import query_sync

    async def scripted_fleet(registry, settings):
        return Fleet(experts={s.name: Expert(name=s.name, backend=Adder(), max_tokens=s.max_tokens)
                              for s in registry.experts}, llamas=[])

    monkeypatch.setattr(stepwise.app.runtime, "build_fleet", scripted_fleet)
    monkeypatch.setenv("DATABASE_URL", database_url)
    data = tmp_path / "jars.jsonl"
    data.write_text("".join(f'{{"id": "{name}", "question": "What does the {name} jar hold if it has {a} and then '
                            f'{b} more?", "answer": {a + b}, "answer_type": "number"}}\n' for name, a, b in QUESTIONS))
    out = tmp_path / "out"
    assert main(["optimize", str(data), "--objective", "accuracy", "--max-p50", "20s", "--budget", "3", "--seed", "2",
                 "--holdout", "0.25", "--concurrency", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    optimize_run_id = int(re.search(r"optimize run (\d+): chosen candidate \d of 3", printed).group(1))
    assert re.search(r"held out, chosen: accuracy [\d.]+%", printed) and "held out, default" in printed
    assert {p.name for p in out.iterdir()} >= {CONFIG_FILE, REPORT_FILE, PLOT_FILE}
    (run,) = query_sync(database_url, "SELECT status, objective, budget, seed FROM optimize_runs WHERE id = $1",
                        optimize_run_id)
    assert (run["status"], run["budget"], run["seed"], run["objective"]["max_p50_ms"]) == ("finished", 3, 2, 20000.0)
    assert len(query_sync(database_url, "SELECT 1 FROM optimize_candidates WHERE optimize_run_id = $1",
                          optimize_run_id)) == 3
