"""Cancellation and deadlines over real HTTP with the real app, Postgres and SmolLM2: the client going away,
DELETE /v1/runs/{id}, a deadline passing mid-step, a budget breached. Each run ends in a recorded state and
leaves nothing running: no run task, no model call in flight."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import httpx
import msgspec
import pytest

from stepwise.reasoning.report import RunReport

pytestmark = pytest.mark.model
STORY = {"id": 1, "kind": "expert", "target": "general", "input": "Write a long story about a dragon.",
         "depends_on": []}


async def run_row(pg, question: str, timeout: float = 30.0):
    """The runs row of the (single) run of `question`, once it has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = await pg.fetchrow("SELECT * FROM runs WHERE question = $1", question)
        if row is not None and row["status"] != "running":
            return row
        await asyncio.sleep(0.1)
    raise AssertionError(f"no ended run for {question!r}")


def assert_idle(server) -> None:
    runtime = server.app.state.runtime
    assert runtime.active == {}
    assert all(n == 0 for n in runtime.router.in_flight.values())


async def test_a_client_that_goes_away_cancels_its_run(smollm2_server, pg):
    """The client disconnects while the planner is generating: the run is recorded cancelled, nothing lingers."""
    question = f"Plan a long trip through every country of Europe ({uuid.uuid4()})"
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{smollm2_server.url}/v1/reason", json={"question": question}, timeout=1.0)
    row = await run_row(pg, question)
    assert (row["status"], row["error_type"]) == ("cancelled", "cancelled")
    assert row["model_calls"] >= 1  # the planner's call was under way and is recorded
    assert_idle(smollm2_server)


async def test_delete_cancels_a_running_run(smollm2_server, pg):
    """DELETE /v1/runs/{id} stops the run; the waiting client gets the cancelled report; a second DELETE is a 409."""
    question = f"Tell me a story ({uuid.uuid4()})"
    replies: list[httpx.Response] = []
    client = threading.Thread(target=lambda: replies.append(smollm2_server.client.post(
        "/v1/reason", json={"question": question, "plan": {"steps": [STORY]}})))
    client.start()
    runtime = smollm2_server.app.state.runtime
    deadline = time.monotonic() + 10
    while not runtime.active:
        assert time.monotonic() < deadline, "the run never started"
        await asyncio.sleep(0.01)
    (run_id,) = list(runtime.active)
    cancelled = smollm2_server.client.delete(f"/v1/runs/{run_id}")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelling"
    client.join(timeout=30)
    (reply,) = replies
    report = msgspec.json.decode(reply.content, type=RunReport)
    assert reply.status_code == 499 and report.status == "cancelled" and report.run_id == run_id
    assert [(s.id, s.status, s.error) for s in report.steps] == [(1, "failed", "cancelled")]
    assert (await run_row(pg, question))["status"] == "cancelled"
    assert smollm2_server.client.delete(f"/v1/runs/{run_id}").status_code == 409
    assert smollm2_server.client.delete(f"/v1/runs/{uuid.uuid4()}").status_code == 404
    assert_idle(smollm2_server)


async def test_a_deadline_passing_mid_step_ends_the_run_at_the_deadline(smollm2_server, pg):
    """A step still generating when the deadline passes is cancelled; the run fails as deadline_exceeded, on time,
    and the model is free for the next request."""
    question = f"A story with a deadline ({uuid.uuid4()})"
    started = time.monotonic()
    reply = smollm2_server.client.post("/v1/reason", json={"question": question, "deadline_s": 0.5,
                                                           "plan": {"steps": [STORY]}})
    elapsed = time.monotonic() - started
    report = msgspec.json.decode(reply.content, type=RunReport)
    assert reply.status_code == 504 and report.error.type == "deadline_exceeded"
    assert elapsed < 1.5 and report.steps[0].error == "cancelled"
    assert (await run_row(pg, question))["error_type"] == "deadline_exceeded"
    assert_idle(smollm2_server)
    calc = {"id": 1, "kind": "tool", "target": "calculator", "input": {"expression": "2+2"}, "depends_on": []}
    after = smollm2_server.client.post("/v1/reason", json={"question": "2+2?", "plan": {"steps": [calc]},
                                                           "deadline_s": 60})
    assert msgspec.json.decode(after.content, type=RunReport).steps[0].output == 4


async def test_a_budget_breach_ends_the_run_with_its_partial_trace(smollm2_server, pg):
    """With max_model_calls 1, the expert step uses it and the composer is refused: budget_exceeded, the finished
    step kept in the trace."""
    question = f"Budgeted ({uuid.uuid4()})"
    step = {"id": 1, "kind": "expert", "target": "general", "input": "Name a colour.", "depends_on": []}
    reply = smollm2_server.client.post("/v1/reason", json={"question": question, "plan": {"steps": [step]},
                                                           "budget": {"max_model_calls": 1}})
    report = msgspec.json.decode(reply.content, type=RunReport)
    assert (reply.status_code == 422 and report.error.type == "budget_exceeded"
            and "max_model_calls" in report.error.message)
    assert [s.status for s in report.steps] == ["finished"] and report.usage.model_calls == 1
    row = await run_row(pg, question)
    assert (row["status"], row["model_calls"]) == ("failed", 1)
    assert await pg.fetchval("SELECT count(*) FROM steps WHERE run_id = $1", row["run_id"]) == 1
    assert_idle(smollm2_server)
