"""`stepwise optimize` end to end with the real SmolLM2 and Postgres: two candidate configurations on two gsm_symbolic
train items, the chosen and the default one on a held-out item, recorded as rows and written as files the server
reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stepwise.app.cli import main
from stepwise.app.config import load_config
from stepwise.evals.optimize import CONFIG_FILE, PLOT_FILE, REPORT_FILE
from tests.conftest import query_sync

pytestmark = pytest.mark.model


def test_a_two_candidate_optimization_runs_on_smollm2(database_url: str, monkeypatch, capsys, tmp_path: Path):
    """Both candidates are finished eval runs of the train items on SmolLM2, not all stalled to the deadline; the
    chosen and the default configuration are recorded on the held-out item; config, report and PNG are written."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("STEPWISE_MODEL", "smollm2")
    # The default candidate plans with one greedy program (no vote, so no worked solution either): a few seconds an
    # item on SmolLM2, where five sampled programs of up to 300 tokens each take most of a minute.
    monkeypatch.setenv("STEPWISE_PLAN_SAMPLES", "1")
    # One llama.cpp thread. With two, on a two-core machine that another model process shares, every token waits on
    # llama.cpp's spinning thread barriers: two requests of five 40-token samples ran past 60 s (2.4 s and 4.8 s with
    # one thread), and each item of this test's first version ran into its deadline with no output.
    monkeypatch.setenv("STEPWISE_THREADS", "1")
    out = tmp_path / "out"  # at most 4 eval runs (2 candidates, 2 on the held-out item) of 40 s: under 3 minutes
    assert main(["optimize", "gsm_symbolic", "--limit", "4", "--budget", "2", "--seed", "3", "--holdout", "0.25",
                 "--train-limit", "2", "--holdout-limit", "1", "--concurrency", "2", "--deadline", "40",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    optimize_run_id = int(re.search(r"optimize run (\d+): chosen candidate (\d) of 2", printed).group(1))
    held = dict(re.findall(r"held out, (chosen|default): accuracy [\d.]+% .* eval run (\d+)", printed))
    assert set(held) == {"chosen", "default"}, printed

    (run,) = query_sync(database_url, "SELECT * FROM optimize_runs WHERE id = $1", optimize_run_id)
    assert (run["status"], run["budget"], run["dataset"]) == ("finished", 2, "gsm_symbolic")
    assert run["finished_at"] is not None and len(run["train_items"]) == 2 and len(run["heldout_items"]) == 1
    assert (str(run["heldout_eval_run_id"]), str(run["default_heldout_eval_run_id"])) == (held["chosen"],
                                                                                          held["default"])
    candidates = query_sync(database_url, "SELECT number, params, eval_run_ids, chosen FROM optimize_candidate_scores"
                                          " WHERE optimize_run_id = $1 ORDER BY number", optimize_run_id)
    assert [c["number"] for c in candidates] == [0, 1]
    assert candidates[0]["params"]["samples"] == 1 and candidates[1]["params"] != candidates[0]["params"]
    assert [c["number"] for c in candidates if c["chosen"]] == [run["chosen_number"]]

    runs = {i: ("train", run["train_items"]) for c in candidates for i in c["eval_run_ids"]}
    runs |= {int(i): ("heldout", run["heldout_items"]) for i in held.values()}
    ended = []  # whether each item's run ended on its own (an answer, or a failure other than the deadline)
    for eval_run_id, (part, item_ids) in runs.items():
        (evaluated,) = query_sync(database_url, "SELECT status, config FROM eval_runs WHERE id = $1", eval_run_id)
        assert evaluated["status"] == "finished"
        assert (evaluated["config"]["optimize_run_id"], evaluated["config"]["part"]) == (optimize_run_id, part)
        items = query_sync(database_url, """
            SELECT i.item_id, i.model_calls, i.error, r.status AS trace_status,
                   (SELECT array_agg(DISTINCT m.request_model) FROM model_calls m WHERE m.run_id = i.run_id) AS models
            FROM eval_items i JOIN runs r USING (run_id) WHERE i.eval_run_id = $1""", eval_run_id)
        assert {i["item_id"] for i in items} <= set(item_ids) and items  # each row linked to its trace
        for i in items:
            assert i["model_calls"] >= 1 and i["models"] == ["SmolLM2-135M-Instruct.Q4_1"]
            assert i["trace_status"] in ("finished", "failed")
            ended.append(not (i["error"] or "").startswith("deadline_exceeded"))
    assert any(ended), "every item ran into its deadline: the model is not producing output"
    train_rows = query_sync(database_url, "SELECT item_id FROM eval_items WHERE eval_run_id = ANY($1::bigint[])",
                            candidates[0]["eval_run_ids"])
    assert sorted(r["item_id"] for r in train_rows) == sorted(run["train_items"])

    config = load_config(out / CONFIG_FILE)  # what the server reads through STEPWISE_CONFIG: a wrong key would raise
    chosen = candidates[run["chosen_number"]]["params"]
    assert (config.planner.kind, config.experts.max_tokens) == (chosen["planner"], chosen["max_tokens"])
    assert run["config"]["planner"]["kind"] == chosen["planner"]
    report = (out / REPORT_FILE).read_text()
    assert report.startswith(f"# stepwise optimize run {optimize_run_id}: gsm_symbolic")
    assert "## Held-out items" in report and "| chosen |" in report and "| default |" in report
    assert (out / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
