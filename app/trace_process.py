"""The trace writer in a process of its own, so writing the trace costs the serving process almost nothing.

In the server, turning events into rows and COPYing them (app.trace.TraceSink) took a seventh of the event loop's
time under load (a py-spy profile of bench.server at 16 clients), paid between requests. `ProcessSink` keeps only
what must happen where the events are made: each event is encoded once as a JSON line (~0.5 µs) and the lines of a
loop tick go down a pipe together. A child process (`python -m stepwise.app.trace_process`) decodes them into a
TraceSink of its own, which batches, retries, overflows to files and spills exactly as in-process, and reports its
counts back as JSON lines on its stdout, so /health, /metrics and `flush` read as before.

What the child has not yet reported handled (written, dead-lettered, dropped or spilled), the server keeps (up to
the queue's size): if the child dies, a new one is started and sent those lines again, and what the server still
holds when it closes without a child to take it is spilled to the same folder, for the next start to replay. So a
child's death loses nothing it had not reported handled, except lines past the queue's size (counted as dropped);
one killed between committing a batch and reporting it may write that batch twice.

The child ignores SIGINT and SIGTERM (a Ctrl-C reaches the whole process group): it stops when told (`close`) or
when its stdin ends (the server is gone), in both cases after writing, or spilling, what it holds."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import structlog

from stepwise.app import db
from stepwise.app.logs import configure_logging
from stepwise.app.trace import TraceSink, json_line, write_spill
from stepwise.reasoning import events as ev

log = structlog.get_logger("stepwise.trace")

_URL_VARIABLE = "STEPWISE_TRACE_DATABASE_URL"  # not in argv, where `ps` would show a password
_LINE_LIMIT = 1 << 28  # bytes of one event's line: far past any event the server's bounds let through
_COUNTS = ("written", "dead_lettered", "dropped", "retries", "spilled", "replayed", "overflowed")
_STATUS_EVERY_S = 0.05
_SEND_EVERY_S = 0.01
_START_S = 60.0  # for the child's imports and first report, on a loaded machine
_STALE_S = 5.0
_encoder = msgspec.json.Encoder()


class TraceWriterFailed(Exception):
    """The trace writer process could not be started."""


class _Chunk(NamedTuple):
    at: float  # `at` of its first event
    data: bytes  # event lines
    lines: int


class ProcessSink:
    """What the server uses of a TraceSink (`emit`, `flush`, `close`, the counts, `lag_s`, `problems`), with the
    writing done by a child process (see the module's docstring)."""

    def __init__(self, url: str, *, maxsize: int = 100_000, spill_dir: Path | None = None, log_level: str = "info",
                 command: tuple[str, ...] | None = None) -> None:
        self._url = url
        self._maxsize = maxsize
        self._spill_dir = spill_dir
        self._command = command or (sys.executable, "-m", "stepwise.app.trace_process")
        self._argv = ["--queue", str(maxsize), "--log-level", log_level,
                      *(["--spill-dir", str(spill_dir)] if spill_dir is not None else [])]
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None
        self._buffer = bytearray()  # events encoded as lines, not yet sent
        self._pending_lines = 0
        self._pending_at = 0.0  # `at` of the first of them
        self._send_soon = False
        self._held: deque[_Chunk] = deque()  # sent, and not yet reported handled by the child, oldest first
        self._held_lines = 0
        self._handled = 0  # of the current child's lines, those popped from _held (handled, or past the size)
        self._reported = 0  # of the current child's lines, those it has reported handled
        self._status: dict[str, Any] = {}  # the current child's last report
        self._status_at = time.monotonic()
        self._past: dict[str, int] = dict.fromkeys(_COUNTS, 0)  # the counts of children that have ended
        self._flushes: dict[int, asyncio.Future[bool]] = {}
        self._next_flush = 0
        self._closing = False
        self._emits = 0
        self.restarts = 0
        self._lost = 0  # dropped here: not encodable, or past the queue's size when a child died

    # -- the counts, as TraceSink has them ---------------------------------------------------------------------------
    def _count(self, name: str) -> int:
        return self._past[name] + int(self._status.get(name, 0))

    @property
    def emitted(self) -> int:
        """Events handed to `emit`, and those replayed from spill files by the writer (as TraceSink counts)."""
        return self._emits + self._count("replayed")

    @property
    def written(self) -> int:
        return self._count("written")

    @property
    def dead_lettered(self) -> int:
        return self._count("dead_lettered")

    @property
    def dropped(self) -> int:
        return self._count("dropped") + self._lost

    @property
    def retries(self) -> int:
        return self._count("retries")

    @property
    def spilled(self) -> int:
        return self._count("spilled")

    @property
    def replayed(self) -> int:
        return self._count("replayed")

    @property
    def overflowed(self) -> int:
        return self._count("overflowed")

    @property
    def lag_s(self) -> float:
        """How long the oldest event not yet reported stored has waited (0 when everything is written)."""
        oldest = self._held[0].at if self._held else self._pending_at if self._pending_lines else None
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)

    def problems(self) -> list[str]:
        found = [str(problem) for problem in self._status.get("problems", ())]
        if self._process is None or self._process.returncode is not None:
            found.append("trace sink: the writer process is not running (being restarted)")
        elif self._held and time.monotonic() - self._status_at > _STALE_S:
            found.append(f"trace sink: the writer process has not reported for "
                         f"{time.monotonic() - self._status_at:.1f}s")
        return found

    # -- the server's side -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self._spawn()

    def emit(self, event: ev.AnyEvent) -> None:
        self._emits += 1
        buffer = self._buffer
        size = len(buffer)
        try:
            _encoder.encode_into(event, buffer, -1)
        except Exception:  # a value JSON cannot hold as it is (a huge integer): what a spill file would keep
            del buffer[size:]
            try:
                buffer += json_line(event)
            except Exception as exc:
                self._lose(1, f"{type(event).__name__} of run {event.run_id} is not JSON: {exc!r}")
                return
        buffer.append(10)  # one line per event
        if not self._pending_lines:
            self._pending_at = event.at
        self._pending_lines += 1
        if not self._send_soon:  # the lines of a few milliseconds go down the pipe in one write: one wake-up of
            self._send_soon = True  # the child, one system call, for many events
            asyncio.get_running_loop().call_later(_SEND_EVERY_S, self._send)

    def _send(self) -> None:
        self._send_soon = False
        if self._pending_lines:
            chunk = _Chunk(self._pending_at, bytes(self._buffer), self._pending_lines)
            self._buffer.clear()
            self._pending_lines = 0
            self._held.append(chunk)
            self._held_lines += chunk.lines
            if (pipe := self._pipe()) is not None:
                pipe.write(chunk.data)
        while self._held_lines > self._maxsize and len(self._held) > 1:
            # The child reads as fast as it can and queues or overflows what it cannot write yet, so this only grows
            # while it is starved of CPU or gone; past the queue's size the oldest stop being held (they are the
            # child's alone now: lost only if it dies before handling them).
            dropped = self._held.popleft()
            self._held_lines -= dropped.lines
            self._handled += dropped.lines

    def _pipe(self) -> asyncio.StreamWriter | None:
        """The running child's stdin, if it can be written to."""
        process = self._process
        if process is None or process.returncode is not None or process.stdin is None or process.stdin.is_closing():
            return None
        return process.stdin

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything emitted so far is stored; False if that took longer than `timeout` (or the writer
        process ended meanwhile)."""
        self._send()
        if (pipe := self._pipe()) is None:
            return not self._held
        self._next_flush += 1
        ident = self._next_flush
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._flushes[ident] = future
        pipe.write(b"!flush %d\n" % ident)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return False
        finally:
            self._flushes.pop(ident, None)

    async def close(self, timeout: float = 10.0) -> None:
        """Have the child write what it holds (for at most `timeout` seconds; the rest it spills) and end; what the
        child never took is spilled here."""
        self._closing = True
        if self._pipe() is None and self._reader is not None:
            # A child being replaced: let the replacement start (or the wait before it end) first, so a child
            # started meanwhile is closed too, not left to write what is spilled here.
            await asyncio.gather(self._reader, return_exceptions=True)
        self._send()
        process = self._process
        if process is not None and process.returncode is None and process.stdin is not None:
            with contextlib.suppress(ConnectionError):
                process.stdin.write(b"!close %r\n" % timeout)
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), timeout + 10)
            except TimeoutError:
                log.error("trace_writer_not_stopping", pid=process.pid, waited_s=timeout + 10)
                process.kill()
                await process.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        self._end_child()
        if self._held:  # the child ended without reporting these handled: keep them for the next start
            self._spill_held("the trace writer process ended before writing them")
        log.info("trace_writer_closed", emitted=self.emitted, written=self.written,
                 dead_lettered=self.dead_lettered, spilled=self.spilled, dropped=self.dropped, retries=self.retries,
                 replayed=self.replayed, overflowed=self.overflowed, restarts=self.restarts)

    # -- the child, seen from here -----------------------------------------------------------------------------------
    async def _spawn(self) -> None:
        """Start a child and wait for its first report (it ignores signals and has its sink started by then), then
        send it what the last one did not report handled, in order."""
        process = await asyncio.create_subprocess_exec(
            *self._command, *self._argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=os.environ | {_URL_VARIABLE: self._url}, start_new_session=True, limit=_LINE_LIMIT)
        assert process.stdin is not None and process.stdout is not None
        try:
            first = await asyncio.wait_for(process.stdout.readline(), _START_S)
        except TimeoutError:
            first = b""
        if not first:
            if process.returncode is None:
                process.kill()
            await process.wait()
            raise TraceWriterFailed(f"the trace writer process did not start (exit status {process.returncode}; "
                                    "its error is in the log above)")
        self._status, self._status_at, self._handled, self._reported = {}, time.monotonic(), 0, 0
        self._report(json.loads(first))
        for chunk in self._held:
            process.stdin.write(chunk.data)
        self._process = process  # from here on new lines go to it, after the held ones
        self._reader = asyncio.create_task(self._read(process), name="trace-writer-reader")
        self._send()

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            try:
                status = json.loads(line)
            except ValueError:
                continue
            self._report(status)
        await process.wait()
        if self._closing:
            return
        log.error("trace_writer_died", returncode=process.returncode, held=self._held_lines, restarts=self.restarts)
        self._end_child()
        while not self._closing:
            self.restarts += 1
            await asyncio.sleep(min(0.1 * 2 ** min(self.restarts, 6), 5.0))  # a child dying at start must not spin
            try:
                await self._spawn()
                return
            except TraceWriterFailed as exc:
                log.error("trace_writer_restart_failed", error=str(exc), restarts=self.restarts)

    def _report(self, status: dict[str, Any]) -> None:
        self._status, self._status_at = status, time.monotonic()
        self._reported = int(status.get("handled", 0))
        while self._held and self._reported >= self._handled + self._held[0].lines:
            done = self._held.popleft()
            self._held_lines -= done.lines
            self._handled += done.lines
        future = self._flushes.get(status.get("flushed", -1))
        if future is not None and not future.done():
            future.set_result(True)

    def _end_child(self) -> None:
        """Fold the ended child's counts into the past ones; a flush waiting on it gets False."""
        for name in _COUNTS:
            self._past[name] += int(self._status.get(name, 0))
        self._status = {}
        if (unheld := self._handled - self._reported) > 0:  # no longer held here, and never reported handled
            self._lose(unheld, "the trace writer process ended holding them (past the queue's size here)")
        elif self._held and (done := self._reported - self._handled) > 0:  # the first chunk's handled lines
            first = self._held[0]
            self._held[0] = _Chunk(first.at, b"".join(line + b"\n" for line in first.data.split(b"\n")[done:-1]),
                                   first.lines - done)
            self._held_lines -= done
        self._handled = self._reported = 0
        for future in self._flushes.values():
            if not future.done():
                future.set_result(False)

    def _spill_held(self, reason: str) -> None:
        lines = [line for chunk in self._held for line in chunk.data.split(b"\n")[:-1]]
        self._held.clear()
        self._held_lines = 0
        if self._spill_dir is None:
            self._lose(len(lines), reason)
            return
        try:
            path = write_spill(self._spill_dir, lines)
        except OSError as exc:
            self._lose(len(lines), f"{reason}; no spill file written in {self._spill_dir}: {exc!r}")
            return
        self._past["spilled"] += len(lines)
        log.warning("trace_events_spilled", count=len(lines), path=str(path), reason=reason)

    def _lose(self, count: int, reason: str) -> None:
        self._lost += count
        log.error("trace_events_dropped", count=count, dropped_total=self.dropped, reason=reason)


TraceWriter = TraceSink | ProcessSink  # what a Runtime writes its trace to: in its own process, or in a child


# -- the child process ---------------------------------------------------------------------------------------------
_decode = msgspec.json.Decoder(ev.AnyEvent).decode


class _Child:
    def __init__(self, sink: TraceSink, out: Any) -> None:
        self.sink = sink
        self.out = out
        self.received = 0
        self.last: dict[str, Any] = {}

    def status(self, **extra: Any) -> dict[str, Any]:
        sink = self.sink
        counts = {name: getattr(sink, name) for name in _COUNTS}
        # The server's lines handled so far: replayed events were queued ahead of them, so they are done first.
        handled = sink.written + sink.dead_lettered + sink.dropped + sink.spilled - sink.replayed
        return counts | {"handled": max(0, min(handled, self.received)), "problems": sink.problems()} | extra

    def report(self, **extra: Any) -> None:
        status = self.status(**extra)
        if self.out is not None and (status != self.last or extra):
            self.last = status
            try:
                self.out.write(json.dumps(status).encode() + b"\n")
                self.out.flush()
            except (BrokenPipeError, ConnectionError):  # the server is gone: the sink still writes what it holds
                self.out = None

    async def reporting(self) -> None:
        while True:
            await asyncio.sleep(_STATUS_EVERY_S)
            self.report()

    async def flushed(self, ident: int) -> None:
        await self.sink.flush()
        self.report(flushed=ident)

    def take(self, line: bytes) -> None:
        self.received += 1
        try:
            event = _decode(line)
        except msgspec.DecodeError as exc:
            self.sink.emitted += 1
            self.sink.lose(1, f"unreadable line from the server: {exc}")
            return
        self.sink.emit(event)


async def _serve(url: str, queue: int, spill_dir: Path | None) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    sink = TraceSink(lambda: db.connect(url), maxsize=queue, spill_dir=spill_dir)
    sink.start()
    child = _Child(sink, sys.stdout.buffer)
    child.report(ready=True)  # the server's start waits for this
    # Reported as soon as a batch is committed: what the server would send again, should this process die, is then
    # only what is not yet written (the periodic report covers counts that change otherwise).
    sink.on_stored = child.report
    reporting = asyncio.create_task(child.reporting())
    timeout = 10.0
    while line := await reader.readline():
        if line.startswith(b"!flush "):
            asyncio.create_task(child.flushed(int(line[7:])))  # noqa: RUF006 — it ends with the flush it waits on
        elif line.startswith(b"!close "):
            timeout = float(line[7:])
            break
        else:
            child.take(line.rstrip(b"\n"))
    # Told to close, or the server is gone (its end of the pipe closed): write or spill what is held, then say so.
    await sink.close(timeout)
    reporting.cancel()
    child.report(final=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="The trace writer process a server starts (app.trace_process).")
    parser.add_argument("--queue", type=int, default=100_000)
    parser.add_argument("--spill-dir", type=Path)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    for stop in (signal.SIGINT, signal.SIGTERM):  # the server tells it when to stop (see the module's docstring)
        signal.signal(stop, signal.SIG_IGN)
    configure_logging(args.log_level)
    asyncio.run(_serve(os.environ[_URL_VARIABLE], args.queue, args.spill_dir))


if __name__ == "__main__":
    main()
