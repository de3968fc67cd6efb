"""The trace sink against the real Postgres: batched rows land, a dropped connection loses nothing, an
unreachable database neither blocks the caller nor loses events silently, and events Postgres refuses are set aside
as dead letters without costing the rest of their batch."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid

import msgspec

from stepwise.app import db
from stepwise.app.trace import TraceSink, load_events, write_batch
from stepwise.reasoning import events as ev
from stepwise.reasoning.report import fold
from stepwise.reasoning.types import Answer, Plan, ToolStep


def run_events(run_id: uuid.UUID, now: float | None = None) -> list[ev.AnyEvent]:
    """A complete small run's events, as the engine would emit them."""
    now = time.time() if now is None else now
    step = ToolStep(1, "calculator", {"expression": "6*7"})
    common = {"run_id": run_id}
    return [
        ev.RunStarted(**common, at=now, question="6*7?", deadline_s=10.0),
        ev.ModelCalled(**common, at=now, step_id=None, purpose="plan", expert="general", backend="local",
                       provider="llama.cpp",
                       request_model="m", input_tokens=100, output_tokens=20, cached_tokens=80, latency_ms=5.0),
        ev.PlanReady(**common, at=now, plan=Plan([step])),
        ev.StepStarted(**common, at=now, step_id=1, step=step),
        ev.ToolCalled(**common, at=now, step_id=1, tool="calculator", args=step.input, result=42, error=None,
                      latency_ms=0.1),
        ev.StepVerified(**common, at=now, step_id=1, verifier="tool_recomputed", outcome="pass",
                        reason="recomputed 42"),
        ev.StepFinished(**common, at=now + 0.001, step_id=1, kind="tool", target="calculator", input=step.input,
                        depends_on=[], started_at=now, output=42),
        ev.ModelCalled(**common, at=now, step_id=None, purpose="compose", expert="general", backend="local",
                       provider="llama.cpp",
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
    assert await counts(pg, run_id) == {"events": 10, "steps": 1, "model_calls": 2, "tool_calls": 1, "verdicts": 1,
                                        "runs": 1}
    run = await pg.fetchrow("SELECT * FROM runs WHERE run_id = $1", run_id)
    assert run["status"] == "finished" and run["answer"] == {"text": "42", "uses": [1]}
    assert (run["model_calls"], run["input_tokens"], run["output_tokens"], run["cached_tokens"]) == (2, 150, 30, 80)
    step = await pg.fetchrow("SELECT * FROM steps WHERE run_id = $1", run_id)
    assert step["input"] == {"expression": "6*7"} and step["output"] == 42 and step["finished_at"] > step["started_at"]
    assert sink.dropped == 0


def variants(run_id: uuid.UUID, now: float) -> dict[str, list[ev.AnyEvent]]:
    """The small run finished, failed, and with token counts whose sums pass the integer columns' maximum."""
    events = run_events(run_id, now)
    failed = [*events[:-2], ev.RunFailed(run_id=run_id, at=events[-1].at, error_type="deadline",
                                         error="past its deadline", latency_ms=9.0)]
    big = [msgspec.structs.replace(e, input_tokens=2**31 - 1) if isinstance(e, ev.ModelCalled) else e for e in events]
    return {"finished": events, "failed": failed, "big": big}


async def runs_row(pg, run_id) -> dict:
    row = dict(await pg.fetchrow("SELECT * FROM runs WHERE run_id = $1", run_id))
    del row["run_id"]
    return row


async def test_a_run_held_whole_by_one_batch_gets_the_same_runs_row_as_one_written_event_by_event(database_url, pg):
    """Runs started and ended in one batch get their runs rows in one statement: status, answer, times, error and
    summed usage (saturating at the column's maximum) as the per-event path writes them."""
    conn = await db.connect(database_url)
    try:
        for name in ("finished", "failed", "big"):
            whole, piecewise, now = uuid.uuid4(), uuid.uuid4(), time.time()
            await write_batch(conn, variants(whole, now)[name])
            for event in variants(piecewise, now)[name]:
                await write_batch(conn, [event])
            made = await runs_row(pg, whole)
            assert made == await runs_row(pg, piecewise), name
            assert made["status"] == ("failed" if name == "failed" else "finished")
        assert made["input_tokens"] == 2**31 - 1 and made["model_calls"] == 2
    finally:
        await conn.close()


async def test_a_batch_mixing_whole_runs_and_a_run_begun_earlier_writes_each_row_as_event_by_event(database_url, pg):
    """A finished run, a failed one without an answer, and the end of a run begun in an earlier batch, in one batch:
    each runs row as the per-event path writes it."""
    conn = await db.connect(database_url)
    try:
        now = time.time()
        ids = {name: (uuid.uuid4(), uuid.uuid4()) for name in ("finished", "failed", "begun")}
        for copy in (0, 1):
            made = {name: variants(ids[name][copy], now)["failed" if name == "failed" else "finished"]
                    for name in ids}
            if copy == 0:
                await write_batch(conn, made["begun"][:3])
                await write_batch(conn, made["finished"] + made["failed"] + made["begun"][3:])
            else:
                for event in made["finished"] + made["failed"] + made["begun"]:
                    await write_batch(conn, [event])
        for name, (batched, piecewise) in ids.items():
            assert await runs_row(pg, batched) == await runs_row(pg, piecewise), name
        assert (await runs_row(pg, ids["failed"][0]))["answer"] is None
    finally:
        await conn.close()


async def test_a_batch_written_again_leaves_one_runs_row_as_it_was(database_url, pg):
    """A batch sent again (a writer that died between committing it and reporting it) rewrites its whole runs' rows
    with the same values: one row, unchanged."""
    conn = await db.connect(database_url)
    try:
        run_id = uuid.uuid4()
        events = run_events(run_id)
        await write_batch(conn, events)
        first = await runs_row(pg, run_id)
        await write_batch(conn, events)
        assert await pg.fetchval("SELECT count(*) FROM runs WHERE run_id = $1", run_id) == 1
        assert await runs_row(pg, run_id) == first
    finally:
        await conn.close()


async def test_a_dropped_connection_is_retried_and_nothing_is_lost(database_url, pg):
    """When Postgres kills the sink's connection between batches, the next batch reconnects and lands (whether the
    sink sees the connection closed before writing, or only when the write fails and is retried). The connection is
    named for this test alone: a test session running beside this one must not kill it a second time."""
    connections = 0
    name = f"doomed-sink-{uuid.uuid4().hex[:12]}"

    def connect():
        nonlocal connections
        connections += 1
        return db.connect(database_url, application_name=name)

    sink = TraceSink(connect)
    sink.start()
    first, second = uuid.uuid4(), uuid.uuid4()
    for event in run_events(first):
        sink.emit(event)
    assert await sink.flush(timeout=10)
    # With a timeout, pg_terminate_backend returns once the backend has exited, not when it was merely signalled.
    killed = await pg.fetchval(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) FROM pg_stat_activity "
        "WHERE application_name = $1", name
    )
    assert killed == 1
    for event in run_events(second):
        sink.emit(event)
    await sink.close()
    assert connections == 2 and sink.dropped == 0 and sink.dead_lettered == 0
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


async def dead_letters(pg, run_id) -> list:
    return await pg.fetch("SELECT event_type, payload, error FROM trace_dead_letters WHERE run_id = $1 ORDER BY id",
                          run_id)


async def test_a_nul_in_text_or_json_is_stored_as_the_replacement_character(database_url, pg):
    """NUL, which Postgres refuses in text and in jsonb, becomes U+FFFD where the sink makes rows: the question, a
    tool's arguments and result, a step's output and error all land, and nothing is dead-lettered."""
    sink = TraceSink(lambda: db.connect(database_url))
    sink.start()
    run_id = uuid.uuid4()
    events = run_events(run_id)
    events[0] = ev.RunStarted(run_id=run_id, at=events[0].at, question="nul \x00 here", deadline_s=10.0)
    events[4] = ev.ToolCalled(run_id=run_id, at=events[4].at, step_id=1, tool="calculator", args={"k\x00": "a\x00b"},
                              result=["\x00"], error="e\x00", latency_ms=0.1)
    for event in events:
        sink.emit(event)
    await sink.close()
    assert (sink.written, sink.dead_lettered, sink.dropped) == (10, 0, 0)
    assert await pg.fetchval("SELECT question FROM runs WHERE run_id = $1", run_id) == "nul \ufffd here"
    call = await pg.fetchrow("SELECT args, result, error FROM tool_calls WHERE run_id = $1", run_id)
    assert (call["args"], call["result"], call["error"]) == ({"k\ufffd": "a\ufffdb"}, ["\ufffd"], "e\ufffd")


async def test_large_floats_read_back_as_the_same_floats(database_url, pg):
    """jsonb keeps a number's digits, not its type: a float written as 1.2345678901234567e19 comes back as the integer
    12345678901234567000, another number. Floats of 1e16 and more are stored by their exact value with a `.0`, so a
    run's report read back equals the live one."""
    sink = TraceSink(lambda: db.connect(database_url))
    sink.start()
    run_id = uuid.uuid4()
    events = run_events(run_id)
    big = [12345678901234567890.0, 1e23, -1.5e300, 2.0**60, 1e16, 1e-7, "1e23 stays text"]
    events[4] = ev.ToolCalled(run_id=run_id, at=events[4].at, step_id=1, tool="calculator", args={"x": big},
                              result=big, error=None, latency_ms=0.1)
    for event in events:
        sink.emit(event)
    await sink.close()
    stored = await load_events(pg, run_id)
    assert stored[4].result == big and all(type(a) is type(b) for a, b in zip(stored[4].result, big, strict=True))
    assert fold(stored) == fold(events)


async def test_an_events_payload_is_stored_as_the_json_the_sink_wrote(database_url, pg):
    """`events.payload` is json (migration 0008), not jsonb: the text as written, keys in the event's order, read
    back byte for byte; `->>` still reads a field."""
    assert await pg.fetchval("SELECT data_type FROM information_schema.columns "
                             "WHERE table_name = 'events' AND column_name = 'payload'") == "json"
    sink = TraceSink(lambda: db.connect(database_url))
    sink.start()
    run_id = uuid.uuid4()
    events = run_events(run_id)
    for event in events:
        sink.emit(event)
    await sink.close()
    rows = await pg.fetch("SELECT payload::text AS text, payload->>'type' AS type FROM events WHERE run_id = $1 "
                          "ORDER BY id", run_id)
    assert [r["text"] for r in rows] == [msgspec.json.encode(e).decode() for e in events]
    assert rows[0]["type"] == "run_started"


async def test_refused_events_are_dead_lettered_and_the_rest_of_their_batch_is_written(database_url, pg):
    """One batch, three runs; the middle one carries what Postgres or asyncpg refuse: a token count past int4 (the
    encoder's OverflowError), a result too long for JSON (ValueError), a verdict outcome the table's CHECK refuses
    (Postgres' own error). Those three events go to trace_dead_letters, with the error; every other event, the other
    runs' included, is written, and the poisoned run still reads back, from stand-ins of the refused events that are
    valid events."""
    sink = TraceSink(lambda: db.connect(database_url))
    first, poisoned, last = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    events = run_events(poisoned)
    now = events[0].at
    events[4] = ev.ToolCalled(run_id=poisoned, at=now, step_id=1, tool="calculator", args={"expression": "9**9999"},
                              result=9**9999, error=None, latency_ms=0.1)
    events[5] = ev.StepVerified(run_id=poisoned, at=now, step_id=1, verifier="tool_recomputed", outcome="maybe",
                                reason="?")
    events[1] = msgspec.structs.replace(events[1], input_tokens=2**31)
    for event in run_events(first) + events + run_events(last):
        sink.emit(event)  # all queued before the sink starts: one batch
    sink.start()
    await sink.close()
    assert (sink.written, sink.dead_lettered, sink.dropped) == (27, 3, 0)
    assert await counts(pg, first) == await counts(pg, last) == {"events": 10, "steps": 1, "model_calls": 2,
                                                                 "tool_calls": 1, "verdicts": 1, "runs": 1}
    letters = await dead_letters(pg, poisoned)
    assert [r["event_type"] for r in letters] == ["model_called", "tool_called", "step_verified"]
    assert "OverflowError" in letters[0]["error"] and '"input_tokens": 2147483648' in letters[0]["payload"]
    assert "Exceeds the limit" in letters[1]["error"] and "<an integer of" in letters[1]["payload"]
    assert "CheckViolation" in letters[2]["error"] and '"outcome": "maybe"' in letters[2]["payload"]
    # Stand-ins (in `events` only): the model call, the tool call with its result described; not the verdict, whose
    # outcome no event may carry.
    assert await counts(pg, poisoned) == {"events": 9, "steps": 1, "model_calls": 1, "tool_calls": 0, "verdicts": 0,
                                          "runs": 1}
    assert await pg.fetchval("SELECT status FROM runs WHERE run_id = $1", poisoned) == "finished"
    stored = await load_events(pg, poisoned)
    assert [type(e) for e in stored] == [type(e) for e in events if not isinstance(e, ev.StepVerified)]
    report = fold(stored)
    assert report.steps[0].output == 42 and report.status == "finished" and report.usage.input_tokens == 2**31 + 50


async def test_a_run_whose_start_was_refused_still_gets_its_runs_row(database_url, pg):
    """A RunStarted whose time is no timestamp at all is dead-lettered; its stand-in (stamped when it was stored)
    gives the run its runs row, which its RunFinished then closes; the report still folds."""
    sink = TraceSink(lambda: db.connect(database_url))
    sink.start()
    run_id = uuid.uuid4()
    events = run_events(run_id)
    events[0] = ev.RunStarted(run_id=run_id, at=1e20, question="when?", deadline_s=10.0)
    for event in events:
        sink.emit(event)
    await sink.close()
    assert (sink.written, sink.dead_lettered, sink.dropped) == (9, 1, 0)
    assert [r["event_type"] for r in await dead_letters(pg, run_id)] == ["run_started"]
    run = await pg.fetchrow("SELECT question, status FROM runs WHERE run_id = $1", run_id)
    assert (run["question"], run["status"]) == ("when?", "finished")
    assert fold(await load_events(pg, run_id)).answer.text == "42"


async def test_an_unreachable_database_is_reported_as_a_problem_and_lag(database_url):
    """While Postgres cannot be reached the sink says so (for /health), and how long its oldest event has waited."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"postgresql://postgres@127.0.0.1:{probe.getsockname()[1]}/x"
    sink = TraceSink(lambda: db.connect(dead, timeout=1), retry_max_s=0.05, lag_limit_s=0.2)
    assert sink.problems() == [] and sink.lag_s == 0
    sink.start()
    for event in run_events(uuid.uuid4()):
        sink.emit(event)
    await asyncio.sleep(0.4)
    problems = sink.problems()
    await sink.close(timeout=0.1)
    assert any("unreachable" in p for p in problems) and any("behind" in p for p in problems)
    assert sink.dropped == 10


async def test_a_sink_that_caught_up_reports_no_problem(database_url):
    """Once everything is written, the sink has no lag and no problem to report."""
    sink = TraceSink(lambda: db.connect(database_url))
    sink.start()
    for event in run_events(uuid.uuid4()):
        sink.emit(event)
    assert await sink.flush(timeout=10)
    assert sink.problems() == [] and sink.lag_s == 0
    await sink.close()


def unreachable_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"postgresql://postgres@127.0.0.1:{probe.getsockname()[1]}/x"


async def until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_events_unwritten_at_shutdown_are_spilled_and_the_next_sink_writes_them(database_url, pg, tmp_path):
    """Postgres down at shutdown: with a spill folder the unwritten events (the batch being retried and the queue
    behind it) go to a file instead of being dropped; the next sink on that folder replays them first, and the run
    reads back whole."""
    dead = TraceSink(lambda: db.connect(unreachable_url(), timeout=1), retry_max_s=0.05, spill_dir=tmp_path)
    dead.start()
    run_id = uuid.uuid4()
    events = run_events(run_id)
    for event in events[:4]:
        dead.emit(event)
    await until(lambda: dead.retries >= 1)  # those four are the batch being retried; the rest wait in the queue
    for event in events[4:]:
        dead.emit(event)
    await dead.close(timeout=0.2)
    assert (dead.written, dead.spilled, dead.dropped) == (0, 10, 0) and len(list(tmp_path.glob("*.jsonl"))) == 1

    sink = TraceSink(lambda: db.connect(database_url), spill_dir=tmp_path)
    sink.start()
    await sink.close()
    assert (sink.replayed, sink.emitted, sink.written, sink.dropped) == (10, 10, 10, 0)
    assert list(tmp_path.iterdir()) == []
    assert await counts(pg, run_id) == {"events": 10, "steps": 1, "model_calls": 2, "tool_calls": 1, "verdicts": 1,
                                        "runs": 1}
    assert fold(await load_events(pg, run_id)) == fold(events)


async def test_a_spill_file_is_replayed_by_one_sink_only(database_url, pg, tmp_path):
    """Two sinks starting on one spill folder (replicas sharing a data folder): one claims the file, so each event
    is written once."""
    dead = TraceSink(lambda: db.connect(unreachable_url(), timeout=1), retry_max_s=0.05, spill_dir=tmp_path)
    dead.start()
    run_id = uuid.uuid4()
    for event in run_events(run_id):
        dead.emit(event)
    await dead.close(timeout=0.1)
    first = TraceSink(lambda: db.connect(database_url), spill_dir=tmp_path)
    second = TraceSink(lambda: db.connect(database_url), spill_dir=tmp_path)
    first.start()
    second.start()
    await asyncio.gather(first.close(), second.close())
    assert sorted([first.replayed, second.replayed]) == [0, 10]
    assert (await counts(pg, run_id))["events"] == 10


async def test_without_a_spill_folder_events_unwritten_at_shutdown_are_counted_dropped(tmp_path):
    """The default (no spill folder): what Postgres could not take by the end of close() is dropped, and counted."""
    sink = TraceSink(lambda: db.connect(unreachable_url(), timeout=1), retry_max_s=0.05)
    sink.start()
    for event in run_events(uuid.uuid4()):
        sink.emit(event)
    await until(lambda: sink.retries >= 1)
    await sink.close(timeout=0.1)
    assert (sink.emitted, sink.written, sink.spilled, sink.dropped) == (10, 0, 0, 10)


class Switch:
    """A connect function for a Postgres that is down until `up` is set."""

    def __init__(self, database_url: str) -> None:
        self.url, self.dead, self.up = database_url, unreachable_url(), False

    def __call__(self):
        return db.connect(self.url if self.up else self.dead, timeout=1)


async def test_events_past_the_queue_wait_in_files_and_are_written_in_order_once_postgres_is_back(database_url, pg,
                                                                                                  tmp_path):
    """With a spill folder, a full queue (Postgres down) sends the events after it to files instead of dropping them;
    once Postgres is back they are written after the queued ones, in order, and the files are gone."""
    postgres = Switch(database_url)
    sink = TraceSink(postgres, maxsize=3, batch_size=2, retry_max_s=0.05, spill_dir=tmp_path)
    sink.start()
    run_id = uuid.uuid4()
    events = run_events(run_id)
    for event in events:
        sink.emit(event)
    assert (sink.dropped, sink.overflowed) == (0, 7)
    assert any(p.startswith("trace sink: 7 events past the queue's size waiting in") for p in sink.problems())
    postgres.up = True
    assert await sink.flush(timeout=30)
    assert (sink.emitted, sink.written, sink.dropped) == (10, 10, 0)
    assert await load_events(pg, run_id) == events
    assert list((tmp_path / "overflow").iterdir()) == [] and sink.problems() == []
    later = run_events(uuid.uuid4())  # caught up: the queue first again (3 of them), then files (7)
    for event in later:
        sink.emit(event)
    await sink.close()
    assert (sink.overflowed, sink.written, sink.dropped) == (7 + 7, 20, 0)


async def test_events_past_the_queue_still_unwritten_at_shutdown_are_spilled_after_the_queued_ones(database_url, pg,
                                                                                                   tmp_path):
    """Postgres down until after shutdown: the queued events and those waiting in overflow files go to one spill
    file in their order, and the next sink writes them all, the run reading back whole."""
    sink = TraceSink(Switch(database_url), maxsize=3, batch_size=2, retry_max_s=0.05, spill_dir=tmp_path)
    sink.start()
    run_id = uuid.uuid4()
    events = run_events(run_id)
    for event in events:
        sink.emit(event)
    await until(lambda: sink.retries >= 1)
    await sink.close(timeout=0.2)
    assert (sink.spilled, sink.dropped) == (10, 0)
    again = TraceSink(lambda: db.connect(database_url), spill_dir=tmp_path)
    again.start()
    await again.close()
    assert (again.replayed, again.written) == (10, 10)
    assert await load_events(pg, run_id) == events


async def test_overflow_files_of_a_process_that_is_gone_are_set_aside_not_replayed(database_url, tmp_path):
    """A process killed outright leaves its overflow files (the tail of its trace; the head died with its queue):
    the next sink moves them to `abandoned/` and writes none of them; a live process's files are left alone."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    overflow = tmp_path / "overflow"
    overflow.mkdir()
    events = run_events(uuid.uuid4())
    (overflow / f"{gone}-1-000000001.jsonl").write_bytes(b"".join(msgspec.json.encode(e) + b"\n" for e in events[4:]))
    (overflow / f"{os.getppid()}-1-000000001.jsonl").write_bytes(msgspec.json.encode(events[0]) + b"\n")
    sink = TraceSink(lambda: db.connect(database_url), spill_dir=tmp_path)
    sink.start()
    await sink.close()
    assert sink.written == 0
    assert [p.name for p in (tmp_path / "abandoned").iterdir()] == [f"{gone}-1-000000001.jsonl"]
    assert [p.name for p in overflow.iterdir()] == [f"{os.getppid()}-1-000000001.jsonl"]


async def test_an_event_json_cannot_hold_is_spilled_as_its_stand_in(database_url, pg, tmp_path):
    """A tool result of 5,000 digits (no JSON can hold it) unwritten at shutdown is spilled as the stand-in Postgres
    would have stored for it, so the run still reads back whole after the replay."""
    run_id = uuid.uuid4()
    events = run_events(run_id)
    events[4] = msgspec.structs.replace(events[4], result=10**5000)
    dead = TraceSink(lambda: db.connect(unreachable_url(), timeout=1), retry_max_s=0.05, spill_dir=tmp_path)
    dead.start()
    for event in events:
        dead.emit(event)
    await dead.close(timeout=0.1)
    assert (dead.spilled, dead.dropped) == (10, 0)
    again = TraceSink(lambda: db.connect(database_url), spill_dir=tmp_path)
    again.start()
    await again.close()
    assert again.written == 10
    assert await pg.fetchval("SELECT result FROM tool_calls WHERE run_id = $1", run_id) == "<an integer of 16610 bits>"
    assert fold(await load_events(pg, run_id)).status == "finished"
