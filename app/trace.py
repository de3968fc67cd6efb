"""The trace sink: run events into Postgres, batched, off the request's critical path.

`emit` only enqueues (a bounded queue); one task drains whatever has accumulated into one transaction of COPYs.
Text Postgres cannot store (NUL, which text and jsonb both refuse; lone surrogates, which are not UTF-8) is replaced
by U+FFFD as rows are made (`storable`, the one place). While Postgres is unreachable the batch is retried with
backoff and new events wait in the queue. A batch refused for anything else is its data's fault (a value out of a
column's range, an encoder's error): it is split in halves until each refused event is alone, and that event goes to
`trace_dead_letters` as JSON text with the error, while a stand-in keeps its run readable (see `_dead_letter`); every
other event is written. So one request cannot stall or drop the trace of the others, and every event emitted is
counted once: `written`, `dead_lettered`, `spilled` or `dropped` (queue full without a spill folder, a file that could
not be written, or not even storable as a dead letter), never lost silently.

With a `spill_dir`, nothing is dropped for want of room or time. Past the queue's size (Postgres slow or down for
long) events go to files under `spill_dir/overflow`, in order, and every later event follows them there until the
writer has caught up: it loads the oldest file whenever the queue runs empty (so rows still arrive in the order of
the events). What is still unwritten when `close()` gives up (Postgres down at shutdown) is spilled: written to a
JSON-lines file in `spill_dir`, in order, which the next sink started on that folder claims (an atomic rename, so of
several processes sharing it one takes each file) and replays before anything else."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec
import structlog

from stepwise.app import db
from stepwise.reasoning import events as ev
from stepwise.reasoning.plan import declared_needs
from stepwise.reasoning.types import Step

if TYPE_CHECKING:  # the process sink imports this module
    from stepwise.app.trace_process import ProcessSink

log = structlog.get_logger("stepwise.trace")

_COLUMNS = {
    "events": ("run_id", "type", "at", "payload"),
    "steps": ("run_id", "step_id", "kind", "target", "input", "depends_on", "status", "output", "error", "started_at",
              "finished_at", "duration_ms"),
    "model_calls": ("run_id", "step_id", "at", "purpose", "expert", "backend", "operation", "provider", "request_model",
                    "input_tokens", "output_tokens", "cached_tokens", "latency_ms", "ttft_ms", "cost", "finish_reason",
                    "error", "rerouted_from"),
    "tool_calls": ("run_id", "step_id", "at", "tool", "args", "result", "error", "latency_ms"),
    "verdicts": ("run_id", "step_id", "at", "verifier", "outcome", "reason"),
}
_RUN_STARTED = ("INSERT INTO runs (run_id, question, status, started_at, deadline_s) VALUES ($1, $2, 'running', $3, "
                "$4) ON CONFLICT (run_id) DO NOTHING")
_RUN_ENDED = """
UPDATE runs SET status = $2, finished_at = $3, error_type = $4, error = $5, latency_ms = $6,
    (model_calls, input_tokens, output_tokens, cached_tokens, cost) = (
        SELECT count(*), least(coalesce(sum(input_tokens), 0), 2147483647),
               least(coalesce(sum(output_tokens), 0), 2147483647),
               least(coalesce(sum(cached_tokens), 0), 2147483647), coalesce(sum(cost), 0)
        FROM model_calls WHERE model_calls.run_id = $1)  -- sums saturate at the integer columns' maximum
WHERE run_id = $1"""
_RUN_ANSWERED = "UPDATE runs SET answer = $2 WHERE run_id = $1"
# A run started and ended within one batch (a batch gathers 50 ms of events, so runs without a slow model call: a
# server under load of imperative plans) gets its runs row whole, all of the batch's such runs in one statement,
# instead of three statements a run (BENCHMARKS.md, section 4). On conflict (a batch sent again after a writer
# died) the row is rewritten with the same values.
_WHOLE_COLUMNS = ("run_id", "question", "status", "started_at", "finished_at", "deadline_s", "answer", "error_type",
                  "error", "latency_ms", "model_calls", "input_tokens", "output_tokens", "cached_tokens", "cost")
_WHOLE_TYPES = ("uuid", "text", "text", "timestamptz", "timestamptz", "float8", "jsonb", "text", "text", "float8",
                "int4", "int4", "int4", "int4", "float8")
_RUNS_WHOLE = (
    f"INSERT INTO runs ({', '.join(_WHOLE_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${i}::{t}[]" for i, t in enumerate(_WHOLE_TYPES, 1))
    + ") ON CONFLICT (run_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _WHOLE_COLUMNS[1:])
)
_INT4_MAX = 2**31 - 1  # the sums saturate at the integer columns' maximum, as _RUN_ENDED's do
_DEAD_LETTER = "INSERT INTO trace_dead_letters (run_id, event_type, payload, error) VALUES ($1, $2, $3, $4)"
# Errors after which the same rows may succeed on a new connection (or once the server recovers); anything else
# refuses the data. SQLSTATE classes: 08 connection, 53 insufficient resources (disk full, out of memory, too many
# connections), 57 operator intervention (shutdown, restart), 58 system error (I/O).
_CONNECTION_ERRORS = (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
                      asyncpg.exceptions.OperatorInterventionError, asyncpg.InternalClientError)
_SERVER_STATES = ("08", "53", "57", "58")
_NUL_IN_JSON = b"\\u0000"
_SURROGATES = re.compile("[\ud800-\udfff]")
_MAX_INT_BITS = 13_000  # Python refuses to turn an int of more than 4,300 digits (~14,000 bits) into text, JSON too
_MAX_DEPTH = 64


def is_connection_error(exc: BaseException) -> bool:
    """Postgres unreachable or unable to work for now, rather than refusing the data (the rows may be tried again)."""
    return isinstance(exc, _CONNECTION_ERRORS) or str(getattr(exc, "sqlstate", "") or "")[:2] in _SERVER_STATES


_decode_event = msgspec.json.Decoder(ev.AnyEvent).decode


async def load_events(conn: db.Connection, run_id: uuid.UUID) -> list[ev.AnyEvent]:
    """A run's events as stored, in the order they were emitted (empty for an unknown run)."""
    rows = await conn.fetch("SELECT payload::text AS payload FROM events WHERE run_id = $1 ORDER BY id", run_id)
    return [_decode_event(row["payload"]) for row in rows]


def step_needs(step: Step) -> set[int]:
    """The steps `step` waits for, as the trace's readers draw them (the page's edges, `stepwise trace`'s tree): its
    `depends_on` and its `$N` references (reasoning.plan.declared_needs), never itself — the plan rules refuse a step
    that names itself (validate_plan, the engine's admit), so a recorded self-reference is no dependency."""
    return declared_needs(step) - {step.id}


class RunLookupError(Exception):
    """A run reference the trace cannot resolve to one run; `status_code` is the HTTP status that says so."""

    status_code = 400


class NotARunId(RunLookupError):
    """Neither a run id nor a prefix of one."""

    status_code = 400


class AmbiguousRunId(RunLookupError):
    """A prefix more than one recorded run starts with."""

    status_code = 400


class UnknownRun(RunLookupError):
    """No recorded run has this id, or starts with this prefix."""

    status_code = 404


_RUN_PREFIX = re.compile(r"[0-9a-f-]{4,36}")


async def find_run(conn: db.Connection, text: str) -> uuid.UUID:
    """The run `text` names: a full run id, or a prefix of at least 4 hex digits (`stepwise runs` prints 8) that exactly
    one recorded run starts with. The one rule for every place a run is named (CLI, API, trace page); raises
    NotARunId, AmbiguousRunId or UnknownRun."""
    text = text.strip().lower()
    try:
        run_id = uuid.UUID(text)
    except ValueError:
        if not _RUN_PREFIX.fullmatch(text):
            raise NotARunId(f"{text!r} is not a run id or a prefix of one (at least 4 hex digits)") from None
        rows = await conn.fetch("SELECT run_id FROM runs WHERE run_id::text LIKE $1 || '%' LIMIT 2", text)
        if len(rows) > 1:
            raise AmbiguousRunId(f"more than one run starts with {text!r}: give more of the id") from None
        if not rows:
            raise UnknownRun(f"no run starts with {text!r}") from None
        return rows[0]["run_id"]
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM events WHERE run_id = $1)", run_id):
        raise UnknownRun(f"no run with id {run_id}")
    return run_id


def _ts(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


class _Rejected(Exception):
    """Rows refused for their data (by Postgres or by asyncpg's encoders); the connection is fine."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(repr(error))
        self.error = error


class TraceCounters(msgspec.Struct):
    """What a trace sink has done so far, as /health and /metrics show it."""

    emitted: int
    """Events handed to the sink; once all are stored, written + dead_lettered + dropped."""
    written: int
    dead_lettered: int
    dropped: int
    retries: int
    lag_s: float


def counters(sink: TraceSink | ProcessSink) -> TraceCounters:
    """The counts of either sink (in-process or in its own process), read now."""
    return TraceCounters(emitted=sink.emitted, written=sink.written, dead_lettered=sink.dead_lettered,
                         dropped=sink.dropped, retries=sink.retries, lag_s=round(sink.lag_s, 3))


class TraceSink:
    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], *, maxsize: int = 100_000,
                 batch_size: int = 5_000, retry_initial_s: float = 0.05, retry_max_s: float = 2.0,
                 lag_limit_s: float = 10.0, spill_dir: Path | None = None, linger_s: float = 0.05) -> None:
        self._connect = connect
        # Each batch costs a transaction and a statement per table whatever its size, paid on the server's event loop
        # between requests: waiting up to linger_s for more events makes a batch of many runs instead of one.
        self._linger_s = linger_s
        self._queue = _EventQueue(maxsize)
        self._batch_size = batch_size
        self._retry = (retry_initial_s, retry_max_s)
        self._lag_limit_s = lag_limit_s
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task | None = None
        self._in_flight = 0
        self._batch: list[ev.AnyEvent] = []  # the batch being stored; its first `_handled` events are stored
        self._handled = 0
        self._spill_dir = spill_dir
        self._overflow: _Overflow | None = None  # set while events past the queue's size wait in files
        self._oldest_at: float | None = None  # `at` of the oldest event taken from the queue and not yet stored
        self._retrying_since: float | None = None  # monotonic; set while Postgres is unreachable
        self.emitted = 0  # every event handed to emit; once all is stored, = written + dead_lettered + dropped
        self.written = 0
        self.dead_lettered = 0
        self.dropped = 0
        self.retries = 0
        self.spilled = 0  # unwritten at shutdown, kept in a spill file for the next sink
        self.replayed = 0  # read back from spill files at start (counted in `emitted` too)
        self.overflowed = 0  # events that waited in overflow files (the queue was full)
        self.on_stored: Callable[[], None] | None = None  # told after each batch is stored (app.trace_process)

    def emit(self, event: ev.AnyEvent) -> None:
        self.emitted += 1
        if self._overflow is None:
            try:
                self._queue.put_nowait(event)
                return
            except asyncio.QueueFull:
                if self._spill_dir is None:
                    self.lose(1, "trace queue full")
                    return
                self._overflow = _Overflow(self._spill_dir / "overflow",
                                           chunk=min(self._batch_size, self._queue.maxsize))
                log.warning("trace_queue_overflowing", queue=self._queue.maxsize, folder=str(self._overflow.folder))
        try:
            self._overflow.append(json_line(event))
        except Exception as exc:  # the disk (OSError), or an event not even a stand-in of can be JSON
            self.lose(1, f"trace queue full, and not kept in {self._overflow.folder}: {exc!r}")
            return
        self.overflowed += 1
        if self._queue.empty():  # the writer is waiting for events: give it the oldest held ones
            self._refill()

    def _refill(self) -> None:
        """Move the oldest overflow file's events into the queue (empty, so they fit: a file holds at most the queue's
        size); once no file is left, new events go to the queue again."""
        assert self._overflow is not None
        for event in self._decoded(self._overflow.take()):
            self._queue.put_nowait(event)
        if self._overflow.empty:
            self._overflow.close()
            self._overflow = None
            log.info("trace_queue_caught_up", overflowed_total=self.overflowed)

    def _decoded(self, lines: list[bytes]) -> list[ev.AnyEvent]:
        events = []
        for line in lines:
            try:
                events.append(_decode_event(line))
            except msgspec.DecodeError as exc:  # a file damaged on disk
                self.lose(1, f"unreadable line in an overflow file: {exc}")
        return events

    def start(self) -> None:
        """Replay what earlier sinks spilled (queued ahead of anything emitted now), then start writing."""
        if self._spill_dir is not None:
            self._replay()
            _set_aside_abandoned(self._spill_dir)
        self._task = asyncio.create_task(self._drain(), name="trace-sink")

    @property
    def lag_s(self) -> float:
        """How long the oldest event not yet stored has waited (0 when everything is written)."""
        return 0.0 if self._oldest_at is None else max(0.0, time.time() - self._oldest_at)

    def problems(self) -> list[str]:
        """Why the trace is falling behind, if it is: Postgres unreachable, or events waiting longer than the limit."""
        found = []
        if self._overflow is not None:
            found.append(f"trace sink: {self._overflow.count} events past the queue's size waiting "
                         f"in {self._overflow.folder}")
        if self._retrying_since is not None:
            found.append(f"trace sink: Postgres unreachable, retrying for "
                         f"{time.monotonic() - self._retrying_since:.1f}s")
        if (lag := self.lag_s) > self._lag_limit_s:
            found.append(f"trace sink: {lag:.1f}s behind (more than {self._lag_limit_s:g}s)")
        return found

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything emitted so far is stored; False if that took longer than `timeout`."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
            return True
        except TimeoutError:
            return False

    async def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (for at most `timeout` seconds), then stop; whatever is left is spilled to a file
        (with a spill_dir) or counted as dropped."""
        flushed = await self.flush(timeout)
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if not flushed:
            left = self._batch[self._handled:] + [self._queue.get_nowait() for _ in range(self._queue.qsize())]
            if self._overflow is not None:  # the events past the queue's size come after those in it
                while lines := self._overflow.take():
                    left += self._decoded(lines)
                self._overflow.close()
                self._overflow = None
            self._spill(left, f"still unwritten after {timeout:g}s at shutdown")
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None
        log.info("trace_sink_closed", emitted=self.emitted, written=self.written, dead_lettered=self.dead_lettered,
                 spilled=self.spilled, dropped=self.dropped, retries=self.retries, replayed=self.replayed,
                 overflowed=self.overflowed)

    def lose(self, count: int, reason: str) -> None:
        if count <= 0:
            return
        before, self.dropped = self.dropped, self.dropped + count
        if before == 0 or before // 1000 != self.dropped // 1000 or "shutdown" in reason:
            log.error("trace_events_dropped", count=count, dropped_total=self.dropped, reason=reason)

    def _spill(self, events: list[ev.AnyEvent], reason: str) -> None:
        """Keep `events` in a new file of the spill folder, in order, counted as spilled; without a folder, or if the
        file cannot be written, they are counted as dropped."""
        if not events:
            return
        if self._spill_dir is None:
            self.lose(len(events), reason)
            return
        lines = []
        for event in events:
            try:
                lines.append(json_line(event))
            except Exception:
                self.lose(1, f"{reason}; not JSON, nor any stand-in of it: {_tag(event)} of run {event.run_id}")
        try:
            path = write_spill(self._spill_dir, lines)
        except OSError as exc:
            self.lose(len(lines), f"{reason}; no spill file written in {self._spill_dir}: {exc!r}")
            return
        self.spilled += len(lines)
        log.warning("trace_events_spilled", count=len(lines), path=str(path), reason=reason)

    def _replay(self) -> None:
        """Claim each spill file, oldest first, by renaming it, and queue its events ahead of new ones (counted as
        emitted and replayed); lines that do not fit in the queue go back to a new spill file, for a later sink."""
        assert self._spill_dir is not None
        overflow: list[bytes] = []
        for path in sorted(self._spill_dir.glob("*.jsonl")) if self._spill_dir.is_dir() else []:
            claimed = path.with_suffix(f".claimed-{os.getpid()}")
            try:
                path.rename(claimed)
            except OSError:  # another process claimed it first
                continue
            lines = [line for line in claimed.read_bytes().splitlines() if line]
            for line in lines:
                if overflow or self._queue.full():
                    overflow.append(line)
                    continue
                self.emitted += 1
                try:
                    self._queue.put_nowait(_decode_event(line))
                except msgspec.DecodeError as exc:  # a file damaged since it was written
                    self.lose(1, f"unreadable line in spill file {path}: {exc}")
                    continue
                self.replayed += 1
            claimed.unlink()
            log.info("trace_spill_replayed", path=str(path), lines=len(lines))
        if overflow:
            write_spill(self._spill_dir, overflow)

    async def _drain(self) -> None:
        while True:
            batch = [await self._queue.get()]
            self._batch, self._handled = batch, 0  # from here on a batch close() spills from, should it give up
            self._in_flight, self._oldest_at = 1, batch[0].at
            try:
                if self._linger_s and self._queue.qsize() < self._batch_size - 1:
                    await asyncio.sleep(self._linger_s)
                while len(batch) < self._batch_size and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                self._in_flight = len(batch)
                await self._store(batch)
                if self.on_stored is not None:
                    self.on_stored()
                if self._overflow is not None and self._queue.empty():
                    self._refill()  # before task_done, so flush() does not return while events wait in files
            finally:
                self._in_flight, self._oldest_at = 0, None
                self._queue.task_done(len(batch))

    async def _store(self, batch: list[ev.AnyEvent]) -> None:
        """Write the batch; if its data is refused, split it in halves until each refused event is alone, and
        dead-letter those. Parts are written in order, so a run's rows still arrive in the order of its events."""
        parts = [batch]
        while parts:
            part = parts.pop()
            try:
                await self._on_connection(lambda conn, part=part: write_batch(conn, part))
            except _Rejected as rejected:
                if len(part) > 1:
                    parts += [part[len(part) // 2:], part[:len(part) // 2]]  # the first half is popped first
                    continue
                await self._dead_letter(part[0], rejected.error)
            else:
                self.written += len(part)
            self._in_flight -= len(part)
            self._handled += len(part)  # parts are stored in order: the handled events are a prefix of the batch

    async def _on_connection(self, write: Callable[[asyncpg.Connection], Awaitable[Any]]) -> None:
        """Run `write` on the sink's connection. While Postgres is unreachable, reconnect and retry with backoff,
        holding the rows; any other failure is the rows' own: raised as _Rejected (the transaction rolled back)."""
        delay, cap = self._retry
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await self._connect()
                await write(self._conn)
                self._retrying_since = None
                return
            except Exception as exc:
                # A failure to connect, or one that leaves the connection closed, says nothing about the rows.
                if self._conn is not None and not self._conn.is_closed() and not is_connection_error(exc):
                    raise _Rejected(exc) from exc
                self.retries += 1
                if self._retrying_since is None:
                    self._retrying_since = time.monotonic()
                log.warning("trace_write_retry", error=repr(exc), retry_in_s=delay)
                if self._conn is not None:
                    self._conn.terminate()
                    self._conn = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, cap)

    async def _dead_letter(self, event: ev.AnyEvent, error: BaseException) -> None:
        """Keep a refused event as text in trace_dead_letters, then store a stand-in in its place, in `events` and
        `runs` only: the event with what could not be stored described (see `_stand_ins`). The stand-in is what the
        run's report is folded from (the fold needs the RunStarted, and each step's start for its later events) and
        what gives the run its runs row and final status; the dead letter keeps the original."""
        tag = _tag(event)
        reason = _clean_text(repr(error))[:2000]
        try:
            await self._on_connection(lambda conn: conn.execute(_DEAD_LETTER, event.run_id, tag,
                                                                dead_letter_text(event), reason))
        except _Rejected as rejected:
            self.lose(1, f"{tag} of run {event.run_id} refused ({reason}), and so was its dead letter: "
                          f"{rejected.error!r}")
            return
        self.dead_lettered += 1
        log.error("trace_event_dead_lettered", run_id=str(event.run_id), event_type=tag, error=reason,
                  dead_lettered_total=self.dead_lettered)
        refusal = None
        for stand_in in _stand_ins(event):
            try:
                await self._on_connection(lambda conn, stand_in=stand_in: write_batch(conn, [stand_in], derived=False))
                return
            except _Rejected as rejected:
                refusal = rejected.error
        log.error("trace_stand_in_refused", run_id=str(event.run_id), event_type=tag,
                  error=repr(refusal) if refusal else "no valid stand-in")


class _EventQueue:
    """What the sink uses of asyncio.Queue (a bound, put_nowait raising QueueFull, get, join/task_done for flush), on
    a deque: `emit` runs on the request path once per event, and an append that wakes the writer only while it waits
    costs a fraction of asyncio.Queue.put_nowait (0.1 µs against 1.3 µs, BENCHMARKS.md §1). maxsize ≤ 0: unbounded."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[ev.AnyEvent] = deque()
        self._waiter: asyncio.Future | None = None  # the writer, waiting for an event
        self._unfinished = 0  # put and not yet task_done
        self._all_done: asyncio.Event | None = None

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def put_nowait(self, item: ev.AnyEvent) -> None:
        if 0 < self.maxsize <= len(self._items):
            raise asyncio.QueueFull
        self._items.append(item)
        self._unfinished += 1
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def get_nowait(self) -> ev.AnyEvent:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.popleft()

    async def get(self) -> ev.AnyEvent:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    def task_done(self, count: int = 1) -> None:
        self._unfinished -= count
        if self._unfinished <= 0 and self._all_done is not None:
            self._all_done.set()

    async def join(self) -> None:
        """Until every event put so far is task_done."""
        if self._unfinished <= 0:
            return
        if self._all_done is None or self._all_done.is_set():
            self._all_done = asyncio.Event()
        await self._all_done.wait()


class _Overflow:
    """Events past the queue's size, as JSON lines in files of at most `chunk` lines under `folder`, oldest first:
    the queue's tail on disk. A file is written by appending (buffered) and read back whole, then deleted."""

    def __init__(self, folder: Path, chunk: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self._chunk = folder, chunk
        self._ready: deque[Path] = deque()  # full files, oldest first
        self._file = None
        self._path: Path | None = None
        self._lines = 0
        self._seq = 0
        self.count = 0  # events held

    @property
    def empty(self) -> bool:
        return not self._ready and self._file is None

    def append(self, line: bytes) -> None:
        if self._file is None:
            self._seq += 1
            self._path = self.folder / f"{os.getpid()}-{time.time_ns()}-{self._seq:09d}.jsonl"
            self._file = open(self._path, "wb")  # noqa: SIM115 — kept open across appends, closed by _seal
            self._lines = 0
        self._file.write(line + b"\n")
        self._lines += 1
        self.count += 1
        if self._lines >= self._chunk:
            self._seal()

    def _seal(self) -> None:
        if self._file is not None and self._path is not None:  # opened together in append
            self._file.close()
            self._ready.append(self._path)
            self._file = None

    def take(self) -> list[bytes]:
        """The oldest file's lines (the file deleted); [] when none are held."""
        if not self._ready:
            self._seal()
        if not self._ready:
            return []
        path = self._ready.popleft()
        lines = [line for line in path.read_bytes().splitlines() if line]
        path.unlink()
        self.count -= len(lines)
        return lines

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        for path in [*self._ready, *([self._path] if self._path else [])]:
            with contextlib.suppress(OSError):
                path.unlink()


def json_line(event: ev.AnyEvent) -> bytes:
    """The event as one JSON line for a file: as stored (`storable`), or, when JSON cannot hold a value of it (an
    integer past 4,300 digits, nesting too deep), its first stand-in: what `events` would hold for it (Postgres
    refuses the original; only its dead letter, not kept here, would be more)."""
    try:
        return msgspec.json.encode(storable(event))
    except Exception:
        for stand_in in _stand_ins(event):
            return msgspec.json.encode(stand_in)
        raise


def _set_aside_abandoned(spill_dir: Path) -> None:
    """Move the overflow files of processes that are gone (killed outright, so they never spilled) to
    `spill_dir/abandoned`, logged: the tail of a trace whose head died with its process's queue, so not replayed (its
    runs would lack their start), but kept for a person to look at, and out of the way of a later process that
    gets the same pid."""
    overflow = spill_dir / "overflow"
    for path in sorted(overflow.glob("*.jsonl")) if overflow.is_dir() else []:
        head = path.name.split("-", 1)[0]
        if not head.isdigit() or int(head) == os.getpid() or _alive(int(head)):
            continue  # not a sink's file, or its process is still running
        pid = int(head)
        target = spill_dir / "abandoned" / path.name
        try:
            target.parent.mkdir(exist_ok=True)
            path.rename(target)
        except OSError:  # another process moved it first
            continue
        log.error("trace_overflow_abandoned", path=str(target), pid=pid,
                  lines=sum(1 for line in target.read_bytes().splitlines() if line))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def write_spill(folder: Path, lines: list[bytes]) -> Path:
    """A new spill file of `lines` in `folder`, named so files sort oldest first; complete or absent (written under
    another name, then renamed), so a sink starting meanwhile never claims half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.time():.6f}-{os.getpid()}.jsonl"
    partial = path.with_suffix(".partial")
    partial.write_bytes(b"\n".join(lines) + b"\n")
    partial.rename(path)
    return path


def _tag(event: ev.AnyEvent) -> str:
    return str(type(event).__struct_config__.tag)  # every event's tag is a string (Struct, tag="…")


def _clean_text(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATES.sub("\ufffd", text)
    return text


def _scrub(value: Any, depth: int = 0, *, describe: bool = False, ascii_only: bool = False) -> Any:
    """`value` with every string made storable (with `ascii_only`, non-ASCII escaped as \\uXXXX); with `describe`,
    also ints too long for JSON and containers nested deeper than _MAX_DEPTH replaced by a description. Structs stay
    structs of the same type."""
    if isinstance(value, str):
        return _clean_text(value).encode("ascii", "backslashreplace").decode() if ascii_only else _clean_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        too_long = describe and value.bit_length() > _MAX_INT_BITS
        return f"<an integer of {value.bit_length()} bits>" if too_long else value
    if describe and depth >= _MAX_DEPTH and isinstance(value, dict | list | tuple | msgspec.Struct):
        return f"<nested more than {_MAX_DEPTH} levels deep>"
    options = {"describe": describe, "ascii_only": ascii_only}
    if isinstance(value, dict):
        return {_scrub(k, depth + 1, **options): _scrub(v, depth + 1, **options) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, depth + 1, **options) for v in value]
    if isinstance(value, msgspec.Struct):
        fields = {name: _scrub(getattr(value, name), depth + 1, **options) for name in value.__struct_fields__}
        return msgspec.structs.replace(value, **fields)
    return value


def storable(event: ev.AnyEvent) -> ev.AnyEvent:
    """The event with text Postgres cannot store replaced by U+FFFD: NUL (refused by text and jsonb alike) and lone
    surrogates (not UTF-8). Its JSON is looked at first, so an ordinary event is returned as it is, unwalked."""
    return _stored(event)[0]


def _stored(event: ev.AnyEvent) -> tuple[ev.AnyEvent, Any]:
    """`storable(event)` and its `events.payload`: the JSON looked at, when the event needed no change (so the
    writer does not encode each event twice), else the changed event."""
    try:
        data = msgspec.json.encode(event)
        if _NUL_IN_JSON not in data:
            return event, msgspec.Raw(data)
    except Exception:  # lone surrogates, or a value JSON cannot hold (the latter is the dead letters' business)
        pass
    with contextlib.suppress(RecursionError):
        event = _scrub(event)
    return event, event


def dead_letter_text(event: ev.AnyEvent) -> str:
    """The event as text any text column of any server encoding takes: its JSON in ASCII (NUL, lone surrogates and
    every other non-ASCII character escaped as \\uXXXX), else that JSON with what JSON cannot hold described (ints
    too long, nesting too deep), else a note saying why not even that."""
    for describe in (False, True):
        try:
            value = _scrub(event, describe=True) if describe else event
            return json.dumps(msgspec.to_builtins(value), ensure_ascii=True)
        except Exception as exc:
            failure = exc
    return (f"<a {_tag(event)} event that cannot be rendered: "
            f"{_clean_text(repr(failure)).encode('ascii', 'backslashreplace').decode()}>")


def _stand_ins(event: ev.AnyEvent) -> Iterator[ev.AnyEvent]:
    """Storable versions of a refused event, to try in turn: what JSON cannot hold described (ints too long, nesting
    too deep) and its time now if its own is no timestamp; then the same in ASCII (for a database whose encoding
    lacks a character). Only valid events: `events` must hold nothing load_events cannot read back."""
    try:
        _ts(event.at)
        at = event.at
    except (ValueError, OverflowError, OSError, TypeError):
        at = time.time()
    for ascii_only in (False, True):
        try:
            stand_in = msgspec.structs.replace(_scrub(event, describe=True, ascii_only=ascii_only), at=at)
            _decode_event(msgspec.json.encode(stand_in))
        except (msgspec.MsgspecError, ValueError, TypeError, RecursionError):
            return
        yield stand_in


async def write_batch(conn: asyncpg.Connection, batch: list[ev.AnyEvent], *, derived: bool = True) -> None:
    """One transaction: a COPY per table, then the runs rows: those of runs the batch holds from start to end whole,
    in one statement; the others inserted at start and updated with sums at the end. Without `derived`, only the
    `events` and `runs` rows (a stand-in for a refused event)."""
    tables, runs = _rows(batch)
    whole = runs.whole() if derived else []
    async with conn.transaction():
        for name, rows in tables.items():
            if rows and (derived or name == "events"):
                await conn.copy_records_to_table(name, records=rows, columns=_COLUMNS[name])
        if whole:
            await conn.execute(_RUNS_WHOLE, *map(list, zip(*whole, strict=True)))
        done = {row[0] for row in whole}
        for statement, rows in ((_RUN_STARTED, runs.started), (_RUN_ANSWERED, runs.answered),
                                (_RUN_ENDED, runs.ended)):
            if rows := [row for row in rows if row[0] not in done]:
                await conn.executemany(statement, rows)


class _Runs:
    """The runs rows a batch makes: each run's start, answer and end as _RUN_STARTED, _RUN_ANSWERED and _RUN_ENDED
    take them, and the sums of its model calls in the batch."""

    def __init__(self) -> None:
        self.started: list[tuple] = []
        self.answered: list[tuple] = []
        self.ended: list[tuple] = []
        self.calls: dict[uuid.UUID, list] = {}

    def called(self, event: ev.ModelCalled) -> None:
        sums = self.calls.setdefault(event.run_id, [0, 0, 0, 0, 0.0])
        for i, value in enumerate((1, event.input_tokens, event.output_tokens, event.cached_tokens, event.cost)):
            sums[i] += value or 0

    def whole(self) -> list[tuple]:
        """Rows (_WHOLE_COLUMNS) of the runs started and ended in the batch: no earlier batch wrote a row of theirs,
        so their model calls are the batch's (later events of a run, if any, come after its end)."""
        started = {row[0]: row for row in reversed(self.started)}  # the first start wins, as ON CONFLICT DO NOTHING
        answers = {run_id: answer for run_id, answer in self.answered}
        rows = {}
        for run_id, status, finished_at, error_type, error, latency_ms in self.ended:
            if (start := started.get(run_id)) is not None:
                calls, *tokens, cost = self.calls.get(run_id, (0, 0, 0, 0, 0.0))
                rows[run_id] = (run_id, start[1], status, start[2], finished_at, start[3], answers.get(run_id),
                                error_type, error, latency_ms, min(calls, _INT4_MAX),
                                *(min(t, _INT4_MAX) for t in tokens), cost)
        return list(rows.values())


def _rows(batch: list[ev.AnyEvent]) -> tuple[dict[str, list[tuple]], _Runs]:
    """The batch's rows per table, and its runs rows."""
    tables: dict[str, list[tuple]] = {name: [] for name in _COLUMNS}
    runs = _Runs()
    started, answered, ended = runs.started, runs.answered, runs.ended
    for event, payload in map(_stored, batch):
        at = _ts(event.at)  # once per event, not per row: making datetimes was a fifth of this loop (cProfile)
        tables["events"].append((event.run_id, type(event).__struct_config__.tag, at, payload))
        match event:
            case ev.RunStarted():
                started.append((event.run_id, event.question, at, event.deadline_s))
            case ev.AnswerReady():
                answered.append((event.run_id, event.answer))
            case ev.RunFinished():
                ended.append((event.run_id, "finished", at, None, None, event.latency_ms))
            case ev.RunFailed():
                ended.append((event.run_id, event.status, at, event.error_type, event.error,
                              event.latency_ms))
            case ev.StepFinished() | ev.StepFailed():
                ok = isinstance(event, ev.StepFinished)
                tables["steps"].append((
                    event.run_id, event.step_id, event.kind, event.target, event.input, event.depends_on,
                    "finished" if ok else "failed", event.output if ok else None, None if ok else event.error,
                    _ts(event.started_at), at, (event.at - event.started_at) * 1000,
                ))
            case ev.ModelCalled():
                runs.called(event)
                tables["model_calls"].append((
                    event.run_id, event.step_id, at, event.purpose, event.expert, event.backend,
                    event.operation,
                    event.provider, event.request_model, event.input_tokens, event.output_tokens, event.cached_tokens,
                    event.latency_ms, event.ttft_ms, event.cost, event.finish_reason, event.error, event.rerouted_from,
                ))
            case ev.ToolCalled():
                tables["tool_calls"].append((event.run_id, event.step_id, at, event.tool, event.args,
                                             event.result, event.error, event.latency_ms))
            case ev.StepVerified():
                tables["verdicts"].append((event.run_id, event.step_id, at, event.verifier, event.outcome,
                                           event.reason))
    return tables, runs

