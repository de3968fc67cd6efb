"""The real app for the throughput benchmark: create_app(settings, runtime=…) under uvicorn, with a Runtime whose
one expert answers at once (the composer's Answer decodes), the real trace sink into the given Postgres database
(the writer process the server starts by default, or with `--trace-writer inline` the server loop's own; none for
tracing off), and one extra route, GET /bench/stats, that the load generator reads between levels.

    python -m bench.server_app --database URL --port PORT [--no-trace] [--trace-writer inline] [--scripted]

Trace lag is measured by wrapping app.trace.write_batch (in the writer process: bench/trace_writer_timed.py): when a
batch has committed, each RunFinished in it has waited (now - its `at`) to be in Postgres."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import sys
import tempfile
import time

import psutil
import uvicorn
from litestar import get

import stepwise.app.trace as trace_module
from bench.doubles import bench_tools, engine_for, instant_fleet
from stepwise.app import db
from stepwise.app.logs import configure_logging
from stepwise.app.routes import create_app
from stepwise.app.runtime import Runtime
from stepwise.app.settings import Settings
from stepwise.app.trace import TraceSink
from stepwise.app.trace_process import ProcessSink
from stepwise.reasoning import events as ev

lags_ms: list[float] = []
_write_batch = trace_module.write_batch


async def _timed_write_batch(conn, batch, **options) -> None:
    await _write_batch(conn, batch, **options)
    now = time.time()
    lags_ms.extend((now - e.at) * 1000 for e in batch if isinstance(e, ev.RunFinished | ev.RunFailed))


class NullSink:
    """Tracing off: events go nowhere (the Runtime's recorder and log sink still get them)."""

    emitted = written = dropped = dead_lettered = retries = 0
    lag_s = 0.0

    def problems(self) -> list[str]:
        return []

    def emit(self, event) -> None:
        pass

    async def flush(self, timeout: float | None = None) -> bool:
        return True

    async def close(self, timeout: float = 10.0) -> None:
        pass


def _lags_from(path: str) -> list[float]:
    """The lags the trace writer process has appended to `path` (bench/trace_writer_timed.py), taken out of it."""
    with contextlib.suppress(FileNotFoundError), open(path, "r+") as lags:
        taken = [float(line) for line in lags if line.strip()]
        lags.truncate(0)
        return taken
    return []


async def serve(url: str, port: int, trace: bool, scripted: bool = False, writer: str = "process") -> None:
    settings = Settings.from_env(dict(os.environ) | {"DATABASE_URL": url}, port=port)
    pool = await db.create_pool(url)
    lag_file = None
    sink: TraceSink | ProcessSink | NullSink
    if trace and writer == "process":
        handle, lag_file = tempfile.mkstemp(prefix="stepwise-bench-lags-")
        os.close(handle)
        os.environ["BENCH_LAG_FILE"] = lag_file
        sink = ProcessSink(url, maxsize=settings.trace_queue,
                           command=(sys.executable, "-m", "bench.trace_writer_timed"))
        await sink.start()
    elif trace:
        trace_module.write_batch = _timed_write_batch
        sink = TraceSink(lambda: db.connect(url), maxsize=settings.trace_queue)
        sink.start()
    else:
        sink = NullSink()
    fleet = instant_fleet(scripted=scripted)
    runtime = Runtime(settings, engine_for(fleet, bench_tools()), fleet, pool, sink, url)
    process = psutil.Process()

    @get("/bench/stats", include_in_schema=False)  # not the API's: the fuzzer reads the document
    async def stats(reset: bool = False) -> dict:
        """Waits for the trace sink to catch up, then reports what the load generator cannot see from outside."""
        flushed = await sink.flush(timeout=60)
        if lag_file is not None:
            lags_ms.extend(_lags_from(lag_file))
        out = {
            "flushed": flushed, "written": sink.written, "dropped": sink.dropped, "lags_ms": list(lags_ms),
            "rss": process.memory_info().rss, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }
        if reset:
            lags_ms.clear()
        return out

    application = create_app(settings, runtime=runtime)
    application.register(stats)
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning"))
    try:
        await server.serve()
    finally:
        await runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-trace", action="store_true")
    parser.add_argument("--trace-writer", choices=("process", "inline"), default="process",
                        help="the trace written from a child process (the server's default) or the server's loop")
    parser.add_argument("--profile", help="write a cProfile of the whole server run to this file at exit")
    parser.add_argument("--scripted", action="store_true",
                        help="an expert that answers the planner with a plan (bench.fuzz)")
    args = parser.parse_args()
    configure_logging("info")  # what `stepwise serve` does: run-level events logged as JSON lines
    if not args.profile:
        asyncio.run(serve(args.database, args.port, not args.no_trace, args.scripted, args.trace_writer))
        return
    import cProfile

    profile = cProfile.Profile()
    try:
        profile.runcall(asyncio.run,
                        serve(args.database, args.port, not args.no_trace, args.scripted, args.trace_writer))
    finally:
        profile.dump_stats(args.profile)


if __name__ == "__main__":
    main()
