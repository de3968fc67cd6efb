"""POST /v1/reason with "stream": true: one Server-Sent Event per run event, in the trace's order, then the report."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from stepwise.reasoning.report import RunReport

pytestmark = pytest.mark.model

PLAN = {"steps": [
    {"id": 1, "kind": "tool", "target": "calculator", "input": {"expression": "17*23"}, "depends_on": []},
    {"id": 2, "kind": "tool", "target": "calculator", "input": {"expression": "45*12"}, "depends_on": []},
    {"id": 3, "kind": "tool", "target": "calculator", "input": {"expression": "$1+$2"}, "depends_on": [1, 2]},
]}


def read_sse(lines) -> list[dict]:
    """Parse an SSE stream into its messages ({"event", "id", "data"}), comments left out."""
    messages, current = [], {}
    for line in lines:
        if not line:
            if current:
                messages.append(current)
            current = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            current[field] = current.get(field, "") + value.removeprefix(" ")
    if current:
        messages.append(current)
    return messages


async def test_the_stream_carries_every_traced_event_in_order_then_the_report(smollm2_server, pg):
    """Event names are the events' types, ids increase, and the sequence equals the events rows of the run."""
    body = {"question": "What is (17*23)+(45*12)?", "plan": PLAN, "stream": True}
    with smollm2_server.client.stream("POST", "/v1/reason", json=body) as reply:
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
        run_id = reply.headers["x-stepwise-run-id"]
        messages = read_sse(reply.iter_lines())
    assert [int(m["id"]) for m in messages] == list(range(1, len(messages) + 1))
    *events, last = messages
    assert last["event"] == "report"
    report = msgspec.json.decode(last["data"], type=RunReport)
    assert str(report.run_id) == run_id and [s.output for s in report.steps] == [391, 540, 931]
    assert all(msgspec.json.decode(m["data"])["type"] == m["event"] for m in events)
    smollm2_server.client.get(f"/v1/runs/{run_id}")  # flushes the trace
    rows = await pg.fetch("SELECT type, payload::text AS payload FROM events WHERE run_id = $1 ORDER BY id",
                          report.run_id)
    assert [m["event"] for m in events] == [r["type"] for r in rows]
    assert [msgspec.json.decode(m["data"]) for m in events] == [msgspec.json.decode(r["payload"]) for r in rows]
    assert events[-2]["event"] == "answer_ready" and events[-1]["event"] in ("run_finished", "run_failed")


async def test_leaving_the_stream_cancels_the_run(smollm2_server, pg):
    """A client that stops reading after the first event leaves a run recorded as cancelled, not one running on."""
    body = {"question": "Say hello at length.", "plan": {"steps": [{"id": 1, "kind": "expert", "target": "general",
                                                                    "input": "Write a long story about a cat.",
                                                                    "depends_on": []}]},
            "stream": True}
    with smollm2_server.client.stream("POST", "/v1/reason", json=body) as reply:
        run_id = reply.headers["x-stepwise-run-id"]
        next(reply.iter_lines())
    for _ in range(100):
        smollm2_server.client.get(f"/v1/runs/{run_id}")
        status = await pg.fetchval("SELECT status FROM runs WHERE run_id = $1::uuid", run_id)
        if status != "running":
            break
        await asyncio.sleep(0.1)
    assert status == "cancelled"
