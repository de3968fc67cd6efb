"""Soak (issue 14 §3): the real server at a steady load for minutes, sampled every few seconds, reporting whether
what should stay flat does: its memory (RSS), open file descriptors, TCP connections (its own, and the Postgres
sessions of its database), trace lag, and latency (p99 per sample window). Each is fitted by least squares over the
samples after a warm-up minute; the slope per minute is the result, next to the first and last values.

    python -m bench.soak [--minutes 10] [--rate 40] [--every-s 10] [--write]

`stepwise serve` (tests/processes.py's StepwiseProcess: the real CLI, its own process) on a scratch database of the
shared Postgres, with the SGLang test server's scripted model (its own process; 0.01 s a token) as the one expert.
The load is open-loop: `--rate` requests a second, each a run of a one-expert-step plan (two model calls: the step
and the composer), at most 64 in flight (past that, a request due is skipped and counted). After the load the
server is stopped with SIGTERM and the trace is compared with what the clients saw: every run recorded in a terminal
state, every event the sink was handed written. `--write` puts the result between the `<!-- soak -->` markers of
RELIABILITY.md."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
import msgspec
import psutil

from bench.common import machine, scratch_database, table
from bench.reliability import REASON, sink_closed, write
from stepwise.app.openai_api import RUN_HEADER
from tests.processes import SGLangProcess, StepwiseProcess, experts_file

MAX_IN_FLIGHT = 64


class Sample(msgspec.Struct):
    t_min: float  # minutes since the load started
    rss_mib: float
    fds: int
    connections: int  # the server's TCP connections (clients' keep-alive ones, Postgres, the expert)
    pg_sessions: int  # Postgres sessions on the scratch database (pool, trace sink, cancel listener)
    lag_s: float  # /health's trace lag: how long the oldest unwritten event has waited
    backlog: int  # events emitted and not yet written
    p99_ms: float  # of the requests that ended in this window
    requests: int


class Load(msgspec.Struct):
    run_ids: set[str] = msgspec.field(default_factory=set)
    statuses: dict[int, int] = msgspec.field(default_factory=dict)
    window: list[float] = msgspec.field(default_factory=list)  # latencies since the last sample
    skipped: int = 0
    errors: int = 0


async def _one(client: httpx.AsyncClient, load: Load, slots: asyncio.Semaphore) -> None:
    try:
        started = time.perf_counter()
        reply = await client.post("/v1/reason", json=REASON)
        load.window.append(time.perf_counter() - started)
        load.statuses[reply.status_code] = load.statuses.get(reply.status_code, 0) + 1
        if run_id := reply.headers.get(RUN_HEADER):
            load.run_ids.add(run_id)
    except httpx.HTTPError:
        load.errors += 1
    finally:
        slots.release()


async def _drive(url: str, rate: float, until: float, load: Load) -> None:
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    tasks: set[asyncio.Task] = set()
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        due = time.monotonic()
        while due < until:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            due += 1 / rate
            if slots.locked():
                load.skipped += 1
                continue
            await slots.acquire()
            task = asyncio.create_task(_one(client, load, slots))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)


async def _sample(server: StepwiseProcess, database: str, admin: asyncpg.Connection, load: Load, t0: float) -> Sample:
    process = psutil.Process(server.process.pid)
    async with httpx.AsyncClient(timeout=30) as client:
        trace = (await client.get(f"{server.url}/health")).json()["trace"]
    window, load.window = load.window, []
    sessions = await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database)
    return Sample(
        t_min=(time.monotonic() - t0) / 60, rss_mib=process.memory_info().rss / 2**20, fds=process.num_fds(),
        connections=len(process.net_connections(kind="tcp")), pg_sessions=sessions, lag_s=trace["lag_s"],
        backlog=trace["emitted"] - trace["written"] - trace["dead_lettered"] - trace["dropped"],
        p99_ms=sorted(window)[min(len(window) - 1, int(len(window) * 0.99))] * 1000 if window else float("nan"),
        requests=len(window))


async def run(minutes: float, rate: float, every_s: float) -> dict:
    logs = Path(tempfile.mkdtemp(prefix="stepwise-soak-"))
    async with scratch_database("stepwise_soak") as url:
        database = url.rsplit("/", 1)[1]
        expert = await asyncio.to_thread(SGLangProcess, logs / "expert.log")
        server = None
        try:
            experts = experts_file(logs, expert.url, timeout_s=30, max_concurrency=MAX_IN_FLIGHT)
            server = await asyncio.to_thread(StepwiseProcess, url, experts, logs / "serve.log")
            admin = await asyncpg.connect(url)
            load, samples = Load(), []
            t0 = time.monotonic()
            driver = asyncio.create_task(_drive(server.url, rate, t0 + minutes * 60, load))
            while not driver.done():
                await asyncio.wait({driver}, timeout=every_s)
                samples.append(await _sample(server, database, admin, load, t0))
            await driver
            await admin.close()
            started = time.monotonic()
            server.terminate()
            code = await asyncio.to_thread(server.wait, 90)
            stop = f"exit status {code} {time.monotonic() - started:.1f} s after SIGTERM"
            closed = sink_closed(server)
        finally:
            if server is not None:
                server.kill()
            expert.close()
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT status, count(*) AS n FROM runs WHERE run_id::text = ANY($1) "
                                    "GROUP BY status", list(load.run_ids))
            events = await conn.fetchval("SELECT count(*) FROM events")
        finally:
            await conn.close()
    print(f"logs: {logs}", flush=True)
    return {"minutes": minutes, "rate": rate, "every_s": every_s, "samples": samples, "load": load, "stop": stop,
            "closed": closed, "stored": {r["status"]: r["n"] for r in rows}, "events": events}


def slope(samples: list[Sample], field: str, after_min: float = 1.0) -> tuple[float, float, float]:
    """Least-squares slope per minute of `field` over the samples after `after_min` (the warm-up), and the first and
    last of those values."""
    kept = [s for s in samples if s.t_min >= after_min and getattr(s, field) == getattr(s, field)]  # NaN out
    if len(kept) < 2:
        return float("nan"), float("nan"), float("nan")
    fit = statistics.linear_regression([s.t_min for s in kept], [float(getattr(s, field)) for s in kept])
    return fit.slope, float(getattr(kept[0], field)), float(getattr(kept[-1], field))


FIELDS = [("rss_mib", "RSS MiB", "{:.1f}"), ("fds", "open file descriptors", "{:.0f}"),
          ("connections", "server TCP connections", "{:.0f}"), ("pg_sessions", "Postgres sessions", "{:.0f}"),
          ("lag_s", "trace lag s", "{:.3f}"), ("backlog", "events not yet written", "{:.0f}"),
          ("p99_ms", "p99 ms (per window)", "{:.0f}")]


def render(result: dict) -> str:
    samples, load = result["samples"], result["load"]
    rows = []
    for field, name, fmt in FIELDS:
        per_min, first, last = slope(samples, field)
        values = [float(getattr(s, field)) for s in samples if s.t_min >= 1.0]
        rows.append((name, fmt.format(first), fmt.format(last), f"{min(values):g} – {max(values):g}" if values else "–",
                     f"{per_min:+.4g}"))
    stored, closed = result["stored"], result["closed"]
    terminal = sum(stored.get(s, 0) for s in ("finished", "failed", "cancelled"))
    requests = sum(load.statuses.values())
    return (
        f"`python -m bench.soak --minutes {result['minutes']:g} --rate {result['rate']:g} --every-s "
        f"{result['every_s']:g}` on {machine()}.\n\n"
        f"{requests:,} requests in {result['minutes']:g} min ({requests / result['minutes'] / 60:.1f}/s; statuses "
        f"{', '.join(f'{n:,}× {s}' for s, n in sorted(load.statuses.items()))}; {load.skipped} skipped with "
        f"{MAX_IN_FLIGHT} in flight, {load.errors} without a reply), {len(samples)} samples every "
        f"{result['every_s']:g} s; slopes fitted after the first minute (warm-up).\n\n"
        + table(["measure", "first (after 1 min)", "last", "range", "slope per minute"], rows)
        + f"\n\nRuns started {len(load.run_ids):,}, recorded in a terminal state {terminal:,} "
        f"({', '.join(f'{n:,} {s}' for s, n in sorted(stored.items()))}); trace events emitted "
        f"{closed.get('emitted', '?'):,} / rows in events {result['events']:,}, dropped {closed.get('dropped', '?')}; "
        f"server: {result['stop']}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=40.0, help="requests a second")
    parser.add_argument("--every-s", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--write", action="store_true", help="write the result into RELIABILITY.md")
    args = parser.parse_args()
    text = render(asyncio.run(run(args.minutes, args.rate, args.every_s)))
    print(text)
    if args.write:
        write(text, "soak")


if __name__ == "__main__":
    main()
