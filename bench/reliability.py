"""The reliability suite: the real server under a bounded concurrent load while something goes wrong, one scenario at
a time, each reporting what was lost. One command:

    python -m bench.reliability [--clients 4] [--seconds 10] [--only NAME ...] [--write]

Every scenario runs `stepwise serve` in its own process (tests/processes.py) against a Postgres cluster of its own
(initdb in a temporary folder, its own port: restarting it disturbs nobody), with one expert: the SGLang test
server's scripted model in its own process (no model file; it answers the composer's Answer JSON, 0.01 s a token).
`--clients` clients (default 4) send requests back to back, each a run of a one-expert-step plan, while a poller asks
GET /health every 0.25 s. The fault happens mid-load; the load goes on a few seconds after it ends; then the server
is stopped with SIGTERM (graceful: it flushes its trace) unless the scenario did that itself, and the trace in
Postgres is compared with what clients and the server saw:

- runs started: distinct run ids the clients were given (the run id header), and how many of them Postgres has in a
  terminal state (finished, failed, cancelled) — the rest are runs left unrecorded;
- trace rows: events the server's trace sink was handed (`emitted`, from its `trace_writer_closed` log line) against
  rows in `events`, and the sink's own dropped and dead-lettered counts;
- 500s (a bug: an error no handler mapped), other 5xx (a failed run's status by design: 502 expert failed, 504
  deadline), p99 latency of the non-streamed requests, /health answers by status.

`--write` replaces the table between the `<!-- reliability -->` markers in RELIABILITY.md (`--section NAME`: those
of NAME)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import msgspec
import psutil

from bench.common import machine, table
from stepwise.app.migrate import migrate_url
from stepwise.app.openai_api import RUN_HEADER
from tests.processes import PostgresCluster, SGLangProcess, StepwiseProcess, experts_file

REPO = Path(__file__).resolve().parent.parent
PLAN = {"steps": [{"id": 1, "kind": "expert", "target": "general", "input": "Say done.", "depends_on": []}]}
REASON = {"question": "Say done.", "plan": PLAN, "deadline_s": 5}
CHAT = {"model": "general", "messages": [{"role": "user", "content": "Say done."}], "stream": True}
TERMINAL = ("finished", "failed", "cancelled")


class Tally(msgspec.Struct):
    """What the clients and the health poller saw."""

    run_ids: set[str] = msgspec.field(default_factory=set)
    statuses: Counter = msgspec.field(default_factory=Counter)  # HTTP status of each request that got one
    run_statuses: Counter = msgspec.field(default_factory=Counter)  # the report's status, for replies that carry one
    refused: int = 0  # requests that got no HTTP reply (connection refused or dropped)
    latencies: list[float] = msgspec.field(default_factory=list)
    health: Counter = msgspec.field(default_factory=Counter)  # "200 ok", "200 degraded", "503 down", "refused", ...
    disconnected: int = 0  # streams the client left on purpose


class Context(msgspec.Struct):
    server: StepwiseProcess
    expert: SGLangProcess
    cluster: PostgresCluster
    tally: Tally
    stop_load: asyncio.Event
    database_url: str
    experts: Path
    folder: Path
    stopped_server: bool = False
    notes: list[str] = msgspec.field(default_factory=list)


async def _reason(client: httpx.AsyncClient, tally: Tally) -> None:
    started = time.perf_counter()
    reply = await client.post("/v1/reason", json=REASON)
    tally.latencies.append(time.perf_counter() - started)
    tally.statuses[reply.status_code] += 1
    if run_id := reply.headers.get(RUN_HEADER):
        tally.run_ids.add(run_id)
    with contextlib.suppress(ValueError, AttributeError):
        tally.run_statuses[reply.json().get("status", "?")] += 1


async def _sse_then_leave(client: httpx.AsyncClient, tally: Tally) -> None:
    """POST /v1/reason with stream, read up to the first step's start, then close the connection."""
    async with client.stream("POST", "/v1/reason", json={**REASON, "stream": True}) as reply:
        tally.statuses[reply.status_code] += 1
        if run_id := reply.headers.get(RUN_HEADER):
            tally.run_ids.add(run_id)
        async for line in reply.aiter_lines():
            if line == "event: step_started":
                tally.disconnected += 1
                return


async def _chat_stream_then_leave(client: httpx.AsyncClient, tally: Tally) -> None:
    """POST /v1/chat/completions with stream, read up to the first chunk with text, then close the connection."""
    async with client.stream("POST", "/v1/chat/completions", json=CHAT) as reply:
        tally.statuses[reply.status_code] += 1
        if run_id := reply.headers.get(RUN_HEADER):
            tally.run_ids.add(run_id)
        async for line in reply.aiter_lines():
            if line.startswith("data: {") and any(c["delta"].get("content") for c in json.loads(line[6:])["choices"]):
                tally.disconnected += 1
                return


async def _client(url: str, request: Callable[[httpx.AsyncClient, Tally], Awaitable[None]], tally: Tally,
                  stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while not stop.is_set():
            try:
                await request(client, tally)
            except httpx.TransportError:
                tally.refused += 1
                await asyncio.sleep(0.05)  # a server that is gone: do not spin


async def _poll_health(url: str, tally: Tally, stop: asyncio.Event, every_s: float = 0.25) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        while not stop.is_set():
            try:
                reply = await client.get("/health")
                try:
                    status = reply.json().get("status", "(not a health body)")
                except ValueError:
                    status = reply.text[:40]
                tally.health[f"{reply.status_code} {status}"] += 1
            except httpx.TransportError:
                tally.health["no reply"] += 1
            await asyncio.sleep(every_s)


# ---- the faults ----------------------------------------------------------------------------------------------------

async def _nothing(ctx: Context, seconds: float) -> None:
    await asyncio.sleep(seconds)


async def _pg_restart(ctx: Context, seconds: float) -> None:
    await asyncio.sleep(seconds / 3)
    await asyncio.to_thread(ctx.cluster.restart)
    await asyncio.sleep(seconds * 2 / 3)


async def _poll_trace(url: str, run_id: str, reads: Counter, stop: asyncio.Event) -> None:
    """GET /v1/runs/{run_id} back to back (a route that reads the trace), counting the statuses."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while not stop.is_set():
            try:
                reads[(await client.get(f"/v1/runs/{run_id}")).status_code] += 1
            except httpx.TransportError:
                reads["no reply"] += 1


async def _pg_restarts_health_hammered(ctx: Context, seconds: float) -> None:
    """Six restarts (fast and immediate shutdowns alternating) while three more pollers ask /health every 5 ms and one
    reads a run's trace back to back: a pooled session Postgres ended answers its next query with errors that only
    show at that rate."""
    stop, reads = asyncio.Event(), Counter()
    await asyncio.sleep(1)  # a finished run to read
    pollers = [asyncio.create_task(_poll_health(ctx.server.url, ctx.tally, stop, every_s=0.005)) for _ in range(3)]
    pollers.append(asyncio.create_task(_poll_trace(ctx.server.url, next(iter(ctx.tally.run_ids)), reads, stop)))
    try:
        for mode in ("fast", "immediate") * 3:
            await asyncio.sleep(seconds / 8)
            await asyncio.to_thread(ctx.cluster.stop, mode)
            await asyncio.sleep(0.3)
            await asyncio.to_thread(ctx.cluster.start)
        await asyncio.sleep(seconds / 8)
    finally:
        stop.set()
        await asyncio.gather(*pollers)
        ctx.notes.append("GET /v1/runs/{id} meanwhile: " + ", ".join(f"{n}× {code}" for code,
                                                                     n in sorted(reads.items(), key=str)))


async def _sessions_killed(ctx: Context, seconds: float) -> None:
    """Every second, pg_terminate_backend on each of the server's sessions (the trace sink's and the pool's)."""
    deadline = time.monotonic() + seconds
    killed = 0
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        admin = await asyncpg.connect(ctx.cluster.url)
        try:
            killed += await admin.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'stepwise' OR (datname = $1 AND pid <> pg_backend_pid())",
                ctx.database_url.rsplit("/", 1)[1])
        finally:
            await admin.close()
    ctx.notes.append(f"{killed} sessions terminated")


async def _pg_down_30s(ctx: Context, seconds: float) -> None:
    await asyncio.sleep(3)
    await asyncio.to_thread(ctx.cluster.stop)
    await asyncio.sleep(30)
    await asyncio.to_thread(ctx.cluster.start)
    await asyncio.sleep(5)


async def _expert_killed(ctx: Context, seconds: float) -> None:
    await asyncio.sleep(seconds / 3)
    ctx.expert.kill()  # SIGKILL while clients' runs are generating
    await asyncio.sleep(2)
    await asyncio.to_thread(ctx.expert.start)
    await asyncio.sleep(seconds * 2 / 3)


def _inject(**fault) -> Callable[[Context, float], Awaitable[None]]:
    async def inject(ctx: Context, seconds: float) -> None:
        await asyncio.sleep(seconds / 3)
        await asyncio.to_thread(ctx.expert.inject, **fault)
        await asyncio.sleep(seconds * 2 / 3)

    return inject


async def _stop(server: StepwiseProcess, timeout_s: float = 90) -> str:
    """SIGTERM, then wait for the exit: its status and how long the stop took."""
    started = time.monotonic()
    server.terminate()
    code = await asyncio.to_thread(server.wait, timeout_s)
    return f"exit status {code} {time.monotonic() - started:.1f} s after SIGTERM"


async def _sigterm(ctx: Context, seconds: float) -> None:
    await asyncio.sleep(seconds / 2)
    ctx.stopped_server = True
    ctx.notes.append(await _stop(ctx.server))


async def _sigterm_while_postgres_down(ctx: Context, seconds: float) -> None:
    await asyncio.sleep(2)
    await asyncio.to_thread(ctx.cluster.stop)
    await asyncio.sleep(3)
    ctx.stopped_server = True
    stopped = await _stop(ctx.server)
    spilled = sink_closed(ctx.server).get("spilled")
    ctx.notes.append(f"{stopped}, {spilled} events spilled to a file")
    await asyncio.to_thread(ctx.cluster.start)
    # the next start on the same data folder and database replays the spill file first
    after = await asyncio.to_thread(StepwiseProcess, ctx.database_url, ctx.experts, ctx.folder / "serve-after.log")
    try:
        await asyncio.to_thread(_caught_up, after)
        after.terminate()
        await asyncio.to_thread(after.wait, 60)
    finally:
        after.kill()
    replayed = sink_closed(after).get("replayed")
    ctx.notes.append(f"the next start replayed {replayed}")


def sink_closed(server: StepwiseProcess) -> dict:
    """The trace's counts as the server logged them at its stop: the writer process's totals over every child it
    started (`trace_writer_closed`), or the in-process sink's (`trace_sink_closed`, STEPWISE_TRACE_WRITER=inline)."""
    for name in ("trace_writer_closed", "trace_sink_closed"):
        if lines := server.log_events(name):
            return lines[-1]
    return {}


async def _trace_writer_killed(ctx: Context, seconds: float) -> None:
    """SIGKILL the server's trace writer process a third and two thirds of the way in (the server starts another)."""
    for _ in range(2):
        await asyncio.sleep(seconds / 3)
        writers = [p for p in psutil.Process(ctx.server.process.pid).children()
                   if "stepwise.app.trace_process" in " ".join(p.cmdline())]
        for writer in writers:
            writer.kill()
        ctx.notes.append(f"{len(writers)} trace writer process killed")
    await asyncio.sleep(seconds / 3)


def _caught_up(server: StepwiseProcess, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        trace = httpx.get(f"{server.url}/health", timeout=10).json()["trace"]
        if trace["written"] == trace["emitted"] or time.monotonic() > deadline:
            return
        time.sleep(0.1)


class Scenario(msgspec.Struct, frozen=True):
    name: str
    what: str
    fault: Callable[[Context, float], Awaitable[None]]
    request: Callable[[httpx.AsyncClient, Tally], Awaitable[None]] = _reason
    env: tuple[tuple[str, str], ...] = ()  # the server's settings for this scenario


SCENARIOS = [
    Scenario("baseline", "no fault", _nothing),
    Scenario("postgres_restarted", "Postgres restarted (pg_ctl -m fast) a third of the way in", _pg_restart),
    Scenario("postgres_restarted_6x",
             "Postgres restarted six times (fast and immediate stops alternating) while 3 more "
             "pollers ask /health every 5 ms and one reads a run's trace back to back", _pg_restarts_health_hammered),
    Scenario("sessions_killed",
             "every second, each of the server's Postgres sessions terminated (pg_terminate_backend)",
             _sessions_killed),
    Scenario("postgres_down_30s", "Postgres stopped 3 s in, started again 30 s later; 5 s more load", _pg_down_30s),
    Scenario("postgres_down_30s_small_queue", "the same with STEPWISE_TRACE_QUEUE=1000: events past it wait in files",
             _pg_down_30s, env=(("STEPWISE_TRACE_QUEUE", "1000"),)),
    Scenario("expert_killed", "the expert's process SIGKILLed mid-generation, restarted 2 s later", _expert_killed),
    Scenario("expert_hangs", "8 expert requests wait 60 s (past the runs' 5 s deadline)", _inject(delay_s=60, times=8)),
    Scenario("expert_500", "8 expert requests answer HTTP 500", _inject(status=500, times=8)),
    Scenario("expert_malformed", "8 expert requests answer 200 with a stream chunk cut off mid-JSON",
             _inject(malformed=True, times=8)),
    Scenario("sse_disconnect", "every client leaves its SSE stream at the first step_started", _nothing,
             _sse_then_leave),
    Scenario("chat_stream_disconnect", "every client leaves its chat stream at the first chunk with text", _nothing,
             _chat_stream_then_leave),
    Scenario("trace_writer_killed", "the server's trace writer process SIGKILLed a third and two thirds of the way in",
             _trace_writer_killed),
    Scenario("sigterm_under_load", "SIGTERM half-way; clients keep trying (refused)", _sigterm),
    Scenario("sigterm_while_postgres_down",
             "Postgres stopped 2 s in, SIGTERM 3 s later; Postgres started after the exit, "
             "then the server again (it replays the spill file) and stopped once its trace caught up",
             _sigterm_while_postgres_down),
]


# ---- running one ---------------------------------------------------------------------------------------------------

class Result(msgspec.Struct):
    scenario: Scenario
    tally: Tally
    stored: Counter  # runs.status of the clients' run ids, as Postgres has them ("missing": no row)
    events_rows: int
    sink: dict  # the server's trace counters at its stop (sink_closed)
    exit_status: int | None
    lingering: int  # runs the server still counted in progress before it stopped
    seconds: float
    notes: list[str]

    @property
    def recorded(self) -> int:
        return sum(self.stored[s] for s in TERMINAL)

    def p99_ms(self) -> float | None:
        xs = sorted(self.tally.latencies)
        return xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1000 if xs else None


async def _in_progress(url: str) -> int | None:
    """stepwise_runs_in_progress from /metrics (None if the server does not answer)."""
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient(timeout=10) as client:
            text = (await client.get(f"{url}/metrics")).text
        match = re.search(r"^stepwise_runs_in_progress (\S+)$", text, re.MULTILINE)
        return int(float(match.group(1))) if match else None
    return None


async def run_scenario(scenario: Scenario, cluster: PostgresCluster, clients: int, seconds: float,
                       logs: Path) -> Result:
    database = f"rel_{scenario.name}"
    admin = await asyncpg.connect(cluster.url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {database}")
    finally:
        await admin.close()
    url = cluster.url.rsplit("/", 1)[0] + f"/{database}"
    await migrate_url(url)
    folder = logs / scenario.name
    folder.mkdir(parents=True, exist_ok=True)
    expert = await asyncio.to_thread(SGLangProcess, folder / "expert.log")
    experts = experts_file(folder, expert.url, timeout_s=30)
    server = await asyncio.to_thread(StepwiseProcess, url, experts, folder / "serve.log", env=dict(scenario.env))
    tally, stop = Tally(), asyncio.Event()
    ctx = Context(server, expert, cluster, tally, stop, url, experts, folder)
    started = time.monotonic()
    try:
        load = [asyncio.create_task(_client(server.url, scenario.request, tally, stop)) for _ in range(clients)]
        poller = asyncio.create_task(_poll_health(server.url, tally, stop))
        try:
            await scenario.fault(ctx, seconds)
        finally:
            stop.set()
            await asyncio.gather(*load, poller)
        elapsed = time.monotonic() - started
        lingering = -1
        if not ctx.stopped_server:
            # the streams' runs end on the server after the clients leave: wait for them (or report them left behind)
            for _ in range(100):
                lingering = await _in_progress(server.url)
                if lingering is None:  # no answer from /metrics: unknown
                    lingering = -1
                    break
                if lingering == 0:
                    break
                await asyncio.sleep(0.1)
            ctx.notes.append(await _stop(server))
        exit_status = server.process.returncode
    finally:
        server.kill()
        expert.close()
    closed = sink_closed(server)
    if closed.get("overflowed"):
        ctx.notes.append(f"{closed['overflowed']} events waited in overflow files")
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT run_id::text AS run_id, status FROM runs WHERE run_id::text = ANY($1)",
                                list(tally.run_ids))
        events_rows = await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()
    stored = Counter(row["status"] for row in rows)
    stored["missing"] = len(tally.run_ids) - len(rows)
    return Result(scenario, tally, stored, events_rows, closed, exit_status, lingering, elapsed, ctx.notes)


def render(results: list[Result], clients: int, seconds: float) -> str:
    rows = []
    for r in results:
        t, sink = r.tally, r.sink
        fives = {code: n for code, n in sorted(t.statuses.items()) if code >= 500}
        other5 = ", ".join(f"{n}×{code}" for code, n in fives.items() if code != 500) or "0"
        p99 = r.p99_ms()
        rows.append((
            r.scenario.name, len(t.run_ids),
            f"{r.recorded} ({r.stored['finished']} finished, {r.stored['failed']} failed, "
            f"{r.stored['cancelled']} cancelled)", r.stored["running"] + r.stored["missing"],
            f"{sink.get('emitted', '?')} / {r.events_rows}",
            f"{sink.get('dropped', '?')} / {sink.get('dead_lettered', '?')}",
            fives.get(500, 0), other5, t.refused, "–" if p99 is None else f"{p99:.0f}",
            "–" if r.lingering < 0 else r.lingering,
            ", ".join(f"{n}× {k}" for k, n in sorted(t.health.items())), "; ".join(r.notes),
        ))
    return (
        f"`python -m bench.reliability --clients {clients} --seconds {seconds:g}` on {machine()}.\n\n"
        + table(["scenario", "runs started", "recorded in a terminal state", "unrecorded",
                 "trace events emitted / rows written",
                 "dropped / dead-lettered", "500s", "other 5xx (failed runs)", "no reply", "p99 ms",
                 "runs still in progress after the load", "GET /health", "server"], rows)
        + "\n\n" + "\n".join(f"- `{r.scenario.name}`: {r.scenario.what} ({r.seconds:.0f} s of load)." for r in results)
    )


async def main_async(clients: int, seconds: float, only: list[str]) -> str:
    chosen = [s for s in SCENARIOS if not only or s.name in only]
    logs = Path(tempfile.mkdtemp(prefix="stepwise-reliability-"))
    cluster = await asyncio.to_thread(PostgresCluster)
    results = []
    try:
        for scenario in chosen:
            result = await run_scenario(scenario, cluster, clients, seconds, logs)
            print(json.dumps({"scenario": scenario.name, "runs": len(result.tally.run_ids), "recorded": result.recorded,
                              "stored": dict(result.stored), "sink": result.sink, "events_rows": result.events_rows,
                              "statuses": dict(result.tally.statuses), "health": dict(result.tally.health),
                              "refused": result.tally.refused, "notes": result.notes}), flush=True)
            results.append(result)
    finally:
        cluster.close()
        print(f"logs: {logs}", flush=True)
    return render(results, clients, seconds)


def write(text: str, section: str = "reliability", path: Path = REPO / "RELIABILITY.md") -> None:
    """Replace what is between the section's markers, keeping the prose around it."""
    page = path.read_text()
    start, end = f"<!-- {section} -->", f"<!-- /{section} -->"
    if start not in page:
        raise SystemExit(f"{path} has no {start} … {end} markers")
    head, _, rest = page.partition(start)
    _, _, tail = rest.partition(end)
    path.write_text(f"{head}{start}\n{text}\n{end}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="load per scenario (postgres_down_30s: 38 s)")
    parser.add_argument("--only", nargs="*", default=[], choices=[s.name for s in SCENARIOS])
    parser.add_argument("--write", action="store_true", help="write the table into RELIABILITY.md")
    parser.add_argument("--section", default="reliability", help="the markers to write between (default: reliability)")
    args = parser.parse_args()
    text = asyncio.run(main_async(args.clients, args.seconds, args.only))
    print(text)
    if args.write:
        write(text, args.section)


if __name__ == "__main__":
    main()
