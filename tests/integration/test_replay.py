"""`stepwise replay` with the real SmolLM2: a recorded imperative calculator run is run again (whole, with its
plan, or one step) as a new recorded run, and the differences are printed."""

from __future__ import annotations

import re
import uuid

import msgspec
import pytest

from stepwise.app.cli import main
from stepwise.reasoning.report import RunReport
from tests.conftest import query_sync

pytestmark = pytest.mark.model

QUESTION = "What is (17*23)+(45*12)?"
HEAD = re.compile(r"^replay of (\S+) \((\w+)\) → run (\S+) \((\w+)\)$")


def calc(sid: int, expression: str, *deps: int) -> dict:
    return {"id": sid, "kind": "tool", "target": "calculator", "input": {"expression": expression},
            "depends_on": list(deps)}


@pytest.fixture(scope="module")
def recorded(smollm2_server) -> RunReport:
    """An imperative three-step calculator run, recorded through the real server (and flushed to Postgres)."""
    plan = {"steps": [calc(1, "17*23"), calc(2, "45*12"), calc(3, "$1+$2", 1, 2)]}
    reply = smollm2_server.client.post("/v1/reason", json={"question": QUESTION, "plan": plan})
    report = msgspec.json.decode(reply.content, type=RunReport)
    assert smollm2_server.client.get(f"/v1/runs/{report.run_id}").status_code == 200  # flushes the trace
    return report


@pytest.fixture
def replay(database_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("STEPWISE_MODEL", "smollm2")

    def run(*argv: str) -> tuple[int, list[str], uuid.UUID]:
        status = main(["replay", *argv])
        lines = capsys.readouterr().out.splitlines()
        return status, lines, uuid.UUID(HEAD.match(lines[0]).group(3))

    return run




def test_replaying_the_same_plan_records_a_new_run_whose_steps_are_unchanged(recorded, replay, database_url):
    """The recorded plan runs again: a new run id, the same question, the three steps with the same outputs."""
    status, lines, new = replay(str(recorded.run_id), "--same-plan")
    assert status == 0 and new != recorded.run_id
    assert lines[2] == "steps:    3 → 3, 0 changed"
    assert lines[3:6] == ["  [1] calculator: unchanged (391)", "  [2] calculator: unchanged (540)",
                          "  [3] calculator: unchanged (931)"]
    assert lines[6] == "verdicts: unchanged" and lines[7].startswith("latency:") and lines[8].startswith("tokens:")
    stored = query_sync(database_url, "SELECT question, steps, status FROM run_summary WHERE run_id = $1", new)
    assert [tuple(r) for r in stored] == [(QUESTION, 3, "finished")]
    outputs = query_sync(database_url, "SELECT output FROM steps WHERE run_id = $1 ORDER BY step_id", new)
    assert [r["output"] for r in outputs] == [391, 540, 931]


def test_replaying_one_step_reruns_it_alone_with_its_recorded_resolved_input(recorded, replay, database_url):
    """Step 3 was `$1+$2`; it runs again as `391+540`, with no dependencies, and only it is compared. (Whether
    SmolLM2 then composes an answer from it is up to the model; the exit status says.)"""
    status, lines, new = replay(str(recorded.run_id)[:8], "--step", "3")
    # after the answer (and the error, if SmolLM2 failed to compose)
    steps = lines.index("steps:    step 3 only, 0 changed")
    assert lines[steps + 1] == "  [3] calculator: unchanged (931)" and status == (0 if "(finished)" in lines[0] else 1)
    stored = query_sync(database_url, "SELECT step_id, input, depends_on, output FROM steps WHERE run_id = $1", new)
    assert [tuple(r) for r in stored] == [(3, {"expression": "391+540"}, [], 931)]


def test_replaying_a_step_the_run_does_not_have_is_refused_before_any_model_loads(recorded, database_url, monkeypatch,
                                                                                  capsys):
    """Exit status 1 and the steps the run has, on stderr."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["replay", str(recorded.run_id), "--step", "9"]) == 1
    assert "has no recorded step 9 (steps: 1, 2, 3)" in capsys.readouterr().err


def test_a_plain_replay_plans_afresh_and_records_the_question_again(recorded, replay, database_url):
    """Without flags the question goes to the planner again (SmolLM2's plan may differ or fail); the new run is
    recorded with the same question and the exit status is its outcome."""
    status, lines, new = replay(str(recorded.run_id))
    head = HEAD.match(lines[0])
    assert head.group(1) == str(recorded.run_id) and status == (0 if head.group(4) == "finished" else 1)
    assert any(line.startswith("tokens:") for line in lines) and any(line.startswith("steps:    3 → ")
                                                                     for line in lines)
    stored = query_sync(database_url, "SELECT question, status FROM runs WHERE run_id = $1", new)
    assert [tuple(r) for r in stored] == [(QUESTION, head.group(4))]
    purposes = {r["purpose"] for r in query_sync(database_url, "SELECT purpose FROM model_calls WHERE run_id = $1",
                                                 new)}
    assert "plan" in purposes
