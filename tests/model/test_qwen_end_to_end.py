"""The default expert (Qwen2.5-Coder-1.5B) answers end to end, over HTTP and from the CLI, with its trace in
Postgres, under the default program planner and under the JSON planner. Slow: about half a minute per question on
two cores."""

from __future__ import annotations

import os
import subprocess
import sys

import msgspec
import pytest

from stepwise.reasoning.report import RunReport

pytestmark = [pytest.mark.model, pytest.mark.slow]
QUESTION = "What is (17*23)+(45*12)?"


def overlap(a, b) -> bool:
    return a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"]


async def assert_trace_of_931(pg, report: RunReport) -> None:
    """931 is the answer; the two products ran as separate calculator steps that overlapped; every table has rows."""
    assert report.status == "finished", report.error
    assert "931" in report.answer.text
    rows = await pg.fetch("SELECT * FROM steps WHERE run_id = $1 ORDER BY step_id", report.run_id)
    by_expression = {r["input"]["expression"].replace(" ", ""): r for r in rows if r["target"] == "calculator"}
    assert by_expression["17*23"]["output"] == 391 and by_expression["45*12"]["output"] == 540
    assert overlap(by_expression["17*23"], by_expression["45*12"])
    for table in ("runs", "steps", "model_calls", "tool_calls", "verdicts"):
        assert await pg.fetchval(f"SELECT count(*) FROM {table} WHERE run_id = $1", report.run_id) >= 1, table
    assert await pg.fetchval("SELECT answer->>'text' FROM runs WHERE run_id = $1", report.run_id) == report.answer.text


@pytest.fixture(scope="module")
def qwen_json_server(database_url: str):
    from tests.conftest import LiveServer, settings_for

    with LiveServer(settings_for(database_url, "qwen", deadline_s=300.0, planner="json")) as server:
        yield server


async def test_the_program_planner_answers_931_from_voted_programs(qwen_server, pg):
    """POST /v1/reason samples programs, computes and votes on them, runs the winner's calculator steps and composes
    931; the answer carries the value, and every sample is in the trace."""
    reply = qwen_server.client.post("/v1/reason", json={"question": QUESTION})
    assert reply.status_code == 200, reply.text
    report = msgspec.json.decode(reply.content, type=RunReport)
    assert report.status == "finished", report.error
    assert "931" in report.answer.text and report.answer.value == 931
    assert all(s.target == "calculator" and s.status == "finished" for s in report.steps)
    qwen_server.client.get(f"/v1/runs/{report.run_id}")  # flushes the trace
    sampled = await pg.fetchrow("SELECT payload FROM events WHERE run_id = $1 AND type = 'programs_sampled'",
                                report.run_id)
    payload = msgspec.json.decode(sampled["payload"]) if isinstance(sampled["payload"], str) else sampled["payload"]
    assert len(payload["programs"]) == 5 and payload["votes"] >= 3 and payload["values"][payload["chosen"]] == 931


async def test_the_json_planner_answers_931_with_overlapping_calculator_steps(qwen_json_server, pg):
    """POST /v1/reason plans, runs the two products in parallel, verifies them and composes 931."""
    qwen_server = qwen_json_server
    reply = qwen_server.client.post("/v1/reason", json={"question": QUESTION})
    assert reply.status_code == 200, reply.text
    report = msgspec.json.decode(reply.content, type=RunReport)
    assert msgspec.json.decode(qwen_server.client.get(f"/v1/runs/{report.run_id}").content, type=RunReport) == report
    await assert_trace_of_931(pg, report)  # after the GET, which flushes the trace sink
    assert all(v.outcome == "pass" for s in report.steps for v in s.verdicts)


async def test_the_cli_prints_the_same_json_as_the_endpoint(database_url, pg):
    """`stepwise ask --json` prints a run report (the endpoint's JSON) for the same question, answered 931."""
    env = dict(os.environ) | {"DATABASE_URL": database_url, "STEPWISE_MODEL": "qwen", "STEPWISE_PLANNER": "json"}
    done = subprocess.run([sys.executable, "-m", "stepwise.app.cli", "ask", "--json", QUESTION], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    report = msgspec.json.decode(done.stdout, type=RunReport)
    await assert_trace_of_931(pg, report)
    assert "plan:" in done.stderr and "step 1 done" in done.stderr  # progress was shown while it ran


async def test_a_streamed_plan_starts_its_first_step_before_the_planner_finishes(qwen_json_server, pg):
    """With stream_plan, step 1 starts the moment the JSON planner has written it: its StepStarted comes before the
    planner's model call ends, and the answer is still 931."""
    qwen_server = qwen_json_server
    reply = qwen_server.client.post("/v1/reason", json={"question": QUESTION, "stream_plan": True})
    assert reply.status_code == 200, reply.text
    report = msgspec.json.decode(reply.content, type=RunReport)
    assert "931" in report.answer.text and [s.output for s in report.steps][-1] == 931
    qwen_server.client.get(f"/v1/runs/{report.run_id}")  # flushes the trace
    events = await pg.fetch("SELECT type, at, payload->>'purpose' AS purpose FROM events WHERE run_id = $1 ORDER BY id",
                            report.run_id)
    first_step = next(e for e in events if e["type"] == "step_started")
    planned = next(e for e in events if e["type"] == "model_called" and e["purpose"] == "plan")
    plan_ready = next(e for e in events if e["type"] == "plan_ready")
    assert events.index(first_step) < events.index(planned) < events.index(plan_ready)
    assert first_step["at"] < planned["at"]
