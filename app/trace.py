"""The trace sink: run events into Postgres, batched, off the request's critical path.

`emit` only enqueues (a bounded queue); one task drains whatever has accumulated into one transaction of COPYs.
While Postgres is unreachable the batch is retried with backoff and new events wait in the queue; an event that
cannot be kept (queue full, rejected data, or still unwritten at shutdown) is counted and logged, never dropped
silently."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import msgspec
import structlog

from reasoning import events as ev

log = structlog.get_logger("stepwise.trace")

_COLUMNS = {
    "events": ("run_id", "type", "at", "payload"),
    "steps": ("run_id", "step_id", "kind", "target", "input", "depends_on", "status", "output", "error", "started_at", "finished_at", "duration_ms"),
    "model_calls": ("run_id", "step_id", "at", "purpose", "expert", "backend", "operation", "provider", "request_model",
                    "input_tokens", "output_tokens", "cached_tokens", "latency_ms", "ttft_ms", "cost", "finish_reason",
                    "error", "rerouted_from"),
    "tool_calls": ("run_id", "step_id", "at", "tool", "args", "result", "error", "latency_ms"),
    "verdicts": ("run_id", "step_id", "at", "verifier", "outcome", "reason"),
}
_RUN_STARTED = "INSERT INTO runs (run_id, question, status, started_at, deadline_s) VALUES ($1, $2, 'running', $3, $4) ON CONFLICT (run_id) DO NOTHING"
_RUN_ENDED = """
UPDATE runs SET status = $2, finished_at = $3, error_type = $4, error = $5, latency_ms = $6,
    (model_calls, input_tokens, output_tokens, cached_tokens, cost) = (
        SELECT count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
               coalesce(sum(cached_tokens), 0), coalesce(sum(cost), 0)
        FROM model_calls WHERE model_calls.run_id = $1)
WHERE run_id = $1"""
_RUN_ANSWERED = "UPDATE runs SET answer = $2 WHERE run_id = $1"
# Postgres errors after which the same batch may succeed on a new connection; other Postgres errors reject the data.
_TRANSIENT = (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
              asyncpg.exceptions.OperatorInterventionError, asyncpg.InternalClientError)


_decode_event = msgspec.json.Decoder(ev.AnyEvent).decode


async def load_events(conn: asyncpg.Connection, run_id: uuid.UUID) -> list[ev.AnyEvent]:
    """A run's events as stored, in the order they were emitted (empty for an unknown run)."""
    rows = await conn.fetch("SELECT payload::text AS payload FROM events WHERE run_id = $1 ORDER BY id", run_id)
    return [_decode_event(row["payload"]) for row in rows]


def _ts(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


class TraceSink:
    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], *, maxsize: int = 100_000,
                 batch_size: int = 5_000, retry_initial_s: float = 0.05, retry_max_s: float = 2.0) -> None:
        self._connect = connect
        self._queue: asyncio.Queue[ev.AnyEvent] = asyncio.Queue(maxsize)
        self._batch_size = batch_size
        self._retry = (retry_initial_s, retry_max_s)
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task | None = None
        self._in_flight = 0
        self.written = 0
        self.dropped = 0
        self.retries = 0

    def emit(self, event: ev.AnyEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._lose(1, "trace queue full")

    def start(self) -> None:
        self._task = asyncio.create_task(self._drain(), name="trace-sink")

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything emitted so far is written; False if that took longer than `timeout`."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
            return True
        except TimeoutError:
            return False

    async def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (for at most `timeout` seconds), then stop; whatever is left is counted as lost."""
        if not await self.flush(timeout):
            self._lose(self._queue.qsize() + self._in_flight, f"still unwritten after {timeout:g}s at shutdown")
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None
        log.info("trace_sink_closed", written=self.written, dropped=self.dropped, retries=self.retries)

    def _lose(self, count: int, reason: str) -> None:
        if count <= 0:
            return
        before, self.dropped = self.dropped, self.dropped + count
        if before == 0 or before // 1000 != self.dropped // 1000 or "shutdown" in reason:
            log.error("trace_events_dropped", count=count, dropped_total=self.dropped, reason=reason)

    async def _drain(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._in_flight = len(batch)
            try:
                await self._write_until_done(batch)
            finally:
                self._in_flight = 0
                for _ in batch:
                    self._queue.task_done()

    async def _write_until_done(self, batch: list[ev.AnyEvent]) -> None:
        delay, cap = self._retry
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await self._connect()
                await write_batch(self._conn, batch)
                self.written += len(batch)
                return
            except Exception as exc:
                if isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, _TRANSIENT):
                    self._lose(len(batch), f"rejected by Postgres: {exc!r}")  # the same rows would fail again
                    return
                # Anything else (including a driver state error after a dropped connection) is retried on a
                # fresh connection: the drain task must never die, or everything after would vanish.
                self.retries += 1
                log.warning("trace_write_retry", error=repr(exc), batch=len(batch), retry_in_s=delay,
                            exc_info=not isinstance(exc, _TRANSIENT))
                if self._conn is not None:
                    self._conn.terminate()
                    self._conn = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, cap)


async def write_batch(conn: asyncpg.Connection, batch: list[ev.AnyEvent]) -> None:
    """One transaction: a COPY per table, then the runs rows (inserted at start, updated with sums at the end)."""
    tables: dict[str, list[tuple]] = {name: [] for name in _COLUMNS}
    started, answered, ended = [], [], []
    for event in batch:
        tables["events"].append((event.run_id, type(event).__struct_config__.tag, _ts(event.at), event))
        match event:
            case ev.RunStarted():
                started.append((event.run_id, event.question, _ts(event.at), event.deadline_s))
            case ev.AnswerReady():
                answered.append((event.run_id, event.answer))
            case ev.RunFinished():
                ended.append((event.run_id, "finished", _ts(event.at), None, None, event.latency_ms))
            case ev.RunFailed():
                status = "cancelled" if event.error_type == "cancelled" else "failed"
                ended.append((event.run_id, status, _ts(event.at), event.error_type, event.error, event.latency_ms))
            case ev.StepFinished() | ev.StepFailed():
                ok = isinstance(event, ev.StepFinished)
                tables["steps"].append((
                    event.run_id, event.step_id, event.kind, event.target, event.input, event.depends_on,
                    "finished" if ok else "failed", event.output if ok else None, None if ok else event.error,
                    _ts(event.started_at), _ts(event.at), (event.at - event.started_at) * 1000,
                ))
            case ev.ModelCalled():
                tables["model_calls"].append((
                    event.run_id, event.step_id, _ts(event.at), event.purpose, event.expert, event.backend, event.operation,
                    event.provider, event.request_model, event.input_tokens, event.output_tokens, event.cached_tokens,
                    event.latency_ms, event.ttft_ms, event.cost, event.finish_reason, event.error, event.rerouted_from,
                ))
            case ev.ToolCalled():
                tables["tool_calls"].append((event.run_id, event.step_id, _ts(event.at), event.tool, event.args, event.result, event.error, event.latency_ms))
            case ev.StepVerified():
                tables["verdicts"].append((event.run_id, event.step_id, _ts(event.at), event.verifier, event.outcome, event.reason))
    async with conn.transaction():
        for name, rows in tables.items():
            if rows:
                await conn.copy_records_to_table(name, records=rows, columns=_COLUMNS[name])
        if started:
            await conn.executemany(_RUN_STARTED, started)
        if answered:
            await conn.executemany(_RUN_ANSWERED, answered)
        if ended:
            await conn.executemany(_RUN_ENDED, ended)

