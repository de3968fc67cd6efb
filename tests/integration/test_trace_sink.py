"""The trace sink against the real Postgres: batched rows land, a dropped connection loses nothing, and an
unreachable database neither blocks the caller nor loses events silently."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

from app import db
from app.trace import TraceSink
from reasoning import events as ev
from reasoning.types import Answer, Plan, Step


def run_events(run_id: uuid.UUID) -> list[ev.AnyEvent]:
    """A complete small run's events, as the engine would emit them."""
    now = time.time()
    step = Step(1, "tool", "calculator", {"expression": "6*7"})
    common = {"run_id": run_id}
    return [
        ev.RunStarted(**common, at=now, question="6*7?", deadline_s=10.0),
        ev.ModelCalled(**common, at=now, step_id=None, purpose="plan", expert="general", backend="local", provider="llama.cpp",
                       request_model="m", input_tokens=100, output_tokens=20, cached_tokens=80, latency_ms=5.0),
        ev.PlanReady(**common, at=now, plan=Plan([step])),
        ev.StepStarted(**common, at=now, step_id=1, step=step),
        ev.ToolCalled(**common, at=now, step_id=1, tool="calculator", args=step.input, result=42, error=None, latency_ms=0.1),
        ev.StepVerified(**common, at=now, step_id=1, verifier="tool_recomputed", outcome="pass", reason="recomputed 42"),
        ev.StepFinished(**common, at=now + 0.001, step_id=1, kind="tool", target="calculator", input=step.input,
                        depends_on=[], started_at=now, output=42),
        ev.ModelCalled(**common, at=now, step_id=None, purpose="compose", expert="general", backend="local", provider="llama.cpp",
                       request_model="m", input_tokens=50, output_tokens=10, cached_tokens=0, latency_ms=3.0),
        ev.AnswerReady(**common, at=now, answer=Answer("42", [1])),
        ev.RunFinished(**common, at=now + 0.01, latency_ms=10.0),
    ]


async def counts(pg, run_id) -> dict[str, int]:
    tables = ("events", "steps", "model_calls", "tool_calls", "verdicts", "runs")
    return {t: await pg.fetchval(f"SELECT count(*) FROM {t} WHERE run_id = $1", run_id) for t in tables}


async def test_a_runs_events_land_as_one_row_per_fact(database_url, pg):
    """Each table gets its rows; the runs row is finished, with the answer and the summed token usage."""
    sink = TraceSink(lambda: db.connect(database_url))
    sink.start()
    run_id = uuid.uuid4()
    for event in run_events(run_id):
        sink.emit(event)
    await sink.close()
    assert await counts(pg, run_id) == {"events": 10, "steps": 1, "model_calls": 2, "tool_calls": 1, "verdicts": 1, "runs": 1}
    run = await pg.fetchrow("SELECT * FROM runs WHERE run_id = $1", run_id)
    assert run["status"] == "finished" and run["answer"] == {"text": "42", "uses": [1]}
    assert (run["model_calls"], run["input_tokens"], run["output_tokens"], run["cached_tokens"]) == (2, 150, 30, 80)
    step = await pg.fetchrow("SELECT * FROM steps WHERE run_id = $1", run_id)
    assert step["input"] == {"expression": "6*7"} and step["output"] == 42 and step["finished_at"] > step["started_at"]
    assert sink.dropped == 0


async def test_a_dropped_connection_is_retried_and_nothing_is_lost(database_url, pg):
    """When Postgres kills the sink's connection between batches, the next batch reconnects and lands."""
    sink = TraceSink(lambda: db.connect(database_url, application_name="doomed-sink"))
    sink.start()
    first, second = uuid.uuid4(), uuid.uuid4()
    for event in run_events(first):
        sink.emit(event)
    assert await sink.flush(timeout=10)
    killed = await pg.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'doomed-sink'"
    )
    assert killed >= 1
    for event in run_events(second):
        sink.emit(event)
    await sink.close()
    assert sink.retries >= 1 and sink.dropped == 0
    assert (await counts(pg, second))["events"] == 10


async def test_an_unreachable_database_never_blocks_and_losses_are_counted(database_url, pg):
    """With Postgres unreachable, emit returns at once; events wait and retry; at shutdown the unwritten are
    counted as dropped. Once Postgres is back (a new sink), writing resumes."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"postgresql://postgres@127.0.0.1:{probe.getsockname()[1]}/x"
    sink = TraceSink(lambda: db.connect(dead, timeout=1), retry_max_s=0.1)
    sink.start()
    run_id = uuid.uuid4()
    started = time.perf_counter()
    for event in run_events(run_id):
        sink.emit(event)
    assert time.perf_counter() - started < 0.05
    await asyncio.sleep(0.5)
    await sink.close(timeout=0.2)
    assert sink.retries >= 2 and sink.written == 0 and sink.dropped == 10


async def test_a_full_queue_counts_what_it_cannot_keep(database_url):
    """The queue is bounded: past its size, events are counted as dropped rather than growing memory."""
    sink = TraceSink(lambda: db.connect(database_url), maxsize=3)  # not started: nothing drains
    for event in run_events(uuid.uuid4()):
        sink.emit(event)
    assert sink.dropped == 7
