"""The trace written from a child process (the server's default): rows land as with the in-process sink, the
counts and flush read through, a killed writer is replaced and loses nothing it had not written, Postgres down at
shutdown spills for the next start, and the writer outlives neither a Ctrl-C meant for the server nor the server."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid

import msgspec
import pytest

from stepwise.app.settings import Settings
from stepwise.app.trace import load_events
from stepwise.app.trace_process import ProcessSink
from stepwise.reasoning.report import fold
from tests.integration.test_trace_sink import counts, run_events, unreachable_url

WHOLE_RUN = {"events": 10, "steps": 1, "model_calls": 2, "tool_calls": 1, "verdicts": 1, "runs": 1}


async def until(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def writer_pid(sink: ProcessSink) -> int:
    assert sink._process is not None
    return sink._process.pid


async def test_a_runs_events_land_and_the_counts_read_through(database_url, pg):
    """Every table gets its rows; flush returns once they are in Postgres; the counts are the writer's."""
    sink = ProcessSink(database_url)
    await sink.start()
    run_id = uuid.uuid4()
    events = run_events(run_id)
    for event in events:
        sink.emit(event)
    assert await sink.flush(timeout=20)
    assert await counts(pg, run_id) == WHOLE_RUN
    assert (sink.emitted, sink.written, sink.dropped, sink.lag_s, sink.problems()) == (10, 10, 0, 0.0, [])
    assert fold(await load_events(pg, run_id)) == fold(events)
    process = sink._process
    await sink.close()
    assert process is not None and process.returncode == 0


async def test_a_killed_writer_is_replaced_and_what_it_had_not_written_is_written(database_url, pg):
    """SIGKILL the writer holding a run it had not written: a new writer is started and sent that run again; runs
    emitted while none was running are kept and written too; meanwhile /health's problems say so."""
    sink = ProcessSink(database_url)
    await sink.start()
    first, second = uuid.uuid4(), uuid.uuid4()
    for event in run_events(first):
        sink.emit(event)
    os.kill(writer_pid(sink), signal.SIGKILL)  # before the lines even left this process (they go every 10 ms)
    await until(lambda: sink._process is not None and sink._process.returncode is not None)
    assert any("not running" in problem for problem in sink.problems())
    for event in run_events(second):
        sink.emit(event)
    await until(lambda: sink.restarts == 1 and not sink.problems())
    assert await sink.flush(timeout=20)
    assert await counts(pg, first) == WHOLE_RUN and await counts(pg, second) == WHOLE_RUN
    assert (sink.emitted, sink.written, sink.dropped) == (20, 20, 0)
    await sink.close()


async def test_postgres_down_at_shutdown_spills_and_the_next_start_writes_it(database_url, pg, tmp_path):
    """The writer cannot reach Postgres before close gives up: it spills what it holds, and the next writer on that
    folder replays it first, so the run reads back whole."""
    dead = ProcessSink(unreachable_url(), spill_dir=tmp_path)
    await dead.start()
    run_id = uuid.uuid4()
    events = run_events(run_id)
    for event in events:
        dead.emit(event)
    assert not await dead.flush(timeout=0.5)
    await dead.close(timeout=0.5)
    assert (dead.written, dead.spilled, dead.dropped) == (0, 10, 0)
    again = ProcessSink(database_url, spill_dir=tmp_path)
    await again.start()
    await until(lambda: again.written == 10)
    await again.close()
    assert (again.emitted, again.written, again.dropped) == (10, 10, 0)
    assert await counts(pg, run_id) == WHOLE_RUN


async def test_a_ctrl_c_meant_for_the_server_does_not_stop_the_writer(database_url, pg):
    """SIGINT and SIGTERM reach the writer too (one process group at a terminal): it keeps writing until told."""
    sink = ProcessSink(database_url)
    await sink.start()
    os.kill(writer_pid(sink), signal.SIGINT)
    os.kill(writer_pid(sink), signal.SIGTERM)
    run_id = uuid.uuid4()
    for event in run_events(run_id):
        sink.emit(event)
    assert await sink.flush(timeout=20)
    assert sink.restarts == 0 and await counts(pg, run_id) == WHOLE_RUN
    await sink.close()


async def test_the_writer_ends_with_the_server_after_writing_what_it_holds(database_url, pg):
    """The server gone without a word (its end of the pipe closed, as when it is killed): the writer writes what
    it was sent, then exits."""
    sink = ProcessSink(database_url)
    await sink.start()
    run_id = uuid.uuid4()
    for event in run_events(run_id):
        sink.emit(event)
    sink._send()
    process = sink._process
    assert process is not None and process.stdin is not None
    sink._closing = True  # what this test plays is the server's end, not a death to recover from
    reading = process._transport.get_pipe_transport(1)  # type: ignore[attr-defined]  # the server's end of stdout
    assert reading is not None
    reading.close()  # gone: the writer's reports now meet a broken pipe, which must not stop it
    process.stdin.close()
    assert await asyncio.wait_for(process.wait(), 20) == 0
    assert await counts(pg, run_id) == WHOLE_RUN


async def test_an_event_json_cannot_hold_is_written_as_its_stand_in(database_url, pg):
    """A tool result of 5,000 digits crosses to the writer as the stand-in Postgres would store for it."""
    sink = ProcessSink(database_url)
    await sink.start()
    run_id = uuid.uuid4()
    events = run_events(run_id)
    events[4] = msgspec.structs.replace(events[4], result=10**5000)
    for event in events:
        sink.emit(event)
    assert await sink.flush(timeout=20)
    await sink.close()
    assert await pg.fetchval("SELECT result FROM tool_calls WHERE run_id = $1", run_id) == "<an integer of 16610 bits>"
    assert fold(await load_events(pg, run_id)).status == "finished"


def test_the_trace_writer_setting_names_the_variable_when_wrong(tmp_path):
    """STEPWISE_TRACE_WRITER takes `process` (the default) or `inline`; anything else stops the start, saying so."""
    assert Settings.from_env({"STEPWISE_DATA_DIR": str(tmp_path)}).trace_writer == "process"
    assert Settings.from_env({"STEPWISE_DATA_DIR": str(tmp_path), "STEPWISE_TRACE_WRITER": "inline"}).trace_writer \
        == "inline"
    with pytest.raises(SystemExit, match="STEPWISE_TRACE_WRITER"):
        Settings.from_env({"STEPWISE_DATA_DIR": str(tmp_path), "STEPWISE_TRACE_WRITER": "thread"})


async def test_the_writer_is_told_of_each_batch_as_soon_as_it_is_committed(database_url):
    """TraceSink.on_stored runs right after a batch commits, with the batch counted: the writer process reports
    then, so a writer killed later is not resent (and does not write twice) what it had committed."""
    from stepwise.app import db
    from stepwise.app.trace import TraceSink

    sink = TraceSink(lambda: db.connect(database_url))
    seen: list[int] = []
    sink.on_stored = lambda: seen.append(sink.written)
    sink.start()
    for event in run_events(uuid.uuid4()):
        sink.emit(event)
    assert await sink.flush(timeout=20)
    await sink.close()
    assert seen == [10]


async def test_closing_while_a_killed_writer_is_being_replaced_loses_nothing_and_leaves_no_process(database_url, pg,
                                                                                                   tmp_path):
    """Close right after the writer was killed: the run it held is written by the replacement or spilled for the
    next start, and no writer process is left running."""
    sink = ProcessSink(database_url, spill_dir=tmp_path)
    await sink.start()
    run_id = uuid.uuid4()
    for event in run_events(run_id):
        sink.emit(event)
    killed = sink._process
    assert killed is not None
    os.kill(killed.pid, signal.SIGKILL)
    await killed.wait()
    await sink.close(timeout=5)
    assert sink._process is None or sink._process.returncode is not None
    again = ProcessSink(database_url, spill_dir=tmp_path)  # replays whatever was spilled
    await again.start()
    await until(lambda: again.written == again.emitted)
    await again.close()
    assert await counts(pg, run_id) == WHOLE_RUN and sink.dropped == 0
