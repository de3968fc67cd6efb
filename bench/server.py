"""Server throughput on loopback: two server processes (bench/server_app.py: the real app, an instant model, tracing
on into a scratch Postgres database, and tracing off), a bounded load generator (keep-alive HTTP/1.1 clients on raw
asyncio streams, cheap so the 2 cores go to the server; each level stops after a fixed request count or a time cap),
1/4/16/64 concurrent clients, the two servers interleaved level by level, repeated; medians over the repeats.

Each request is POST /v1/reason with an imperative plan of three calculator steps (two independent, one joining
them), so no planner call; the composer's call goes to the instant model.

    python -m bench.server [--requests 2000] [--cap-s 15] [--repeats 3] [--inline] [--before REF] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
import msgspec
import psutil

from bench.common import machine, median, scratch_database, table
from bench.sections import write_section
from stepwise.app.experts import wait_healthy

CLIENTS = (1, 4, 16, 64)
REPO = Path(__file__).resolve().parent.parent
BODY = msgspec.json.encode({
    "question": "What is (17*23)+(45*12)?",
    "plan": {"steps": [
        {"id": 1, "kind": "tool", "target": "calculator", "input": {"expression": "17*23"}, "depends_on": []},
        {"id": 2, "kind": "tool", "target": "calculator", "input": {"expression": "45*12"}, "depends_on": []},
        {"id": 3, "kind": "tool", "target": "calculator", "input": {"expression": "$1+$2"}, "depends_on": [1, 2]},
    ]},
})
TABLES = ("runs", "events", "steps", "tool_calls", "model_calls", "verdicts")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url: str, trace: bool, logs: str, extra: tuple[str, ...] = (), cwd: str | None = None) -> None:
        self.trace = trace
        self.url = url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "bench.server_app", "--database", url, "--port", str(self.port)]
        name = f"server-{'trace' if trace else 'notrace'}{'-before' if cwd else ''}.log"
        self.log = open(os.path.join(logs, name), "w")  # noqa: SIM115 — the server's log, open while it runs
        argv += ([] if trace else ["--no-trace"]) + list(extra)
        # cwd: another checkout of the code (python -m looks there first), for a before/after comparison
        self.process = subprocess.Popen(argv, stderr=self.log, stdout=self.log, cwd=cwd)
        wait_healthy(f"{self.base}/health", 60, self.process, poll_s=0.2)
        self.ps = psutil.Process(self.process.pid)

    async def stats(self, reset: bool = False) -> dict:
        async with httpx.AsyncClient(timeout=120) as client:
            reply = await client.get(f"{self.base}/bench/stats", params={"reset": str(reset).lower()})
            reply.raise_for_status()
            return reply.json()

    def stop(self) -> None:
        self.process.send_signal(2)  # SIGINT: uvicorn shuts down, the runtime flushes and closes its sink
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


async def _client(port: int, budget: list[int], deadline: float, latencies: list[float], statuses: dict[int, int],
                  failures: list[bytes]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (b"POST /v1/reason HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
               b"content-length: %d\r\n\r\n" % len(BODY)) + BODY
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split()[1])
            fields = (line.partition(b":") for line in lines[1:])
            length = next(int(v) for k, _, v in fields if k.lower() == b"content-length")
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
            if status != 200 or b'"status":"finished"' not in body:
                failures.append(body)  # counted and shown, not hidden: the run's report says what failed
    finally:
        writer.close()


async def load(port: int, clients: int, requests: int, cap_s: float) -> dict:
    budget, latencies, statuses, failures = [requests], [], {}, []
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, budget, started + cap_s, latencies, statuses, failures)
                           for _ in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies), "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "failed": len(failures), "failures": [_error_of(body) for body in failures],
    }


def _error_of(body: bytes) -> str:
    try:
        error = msgspec.json.decode(body).get("error") or {}
        return f"{error.get('type')}: {error.get('message', '')[:160]}"
    except (msgspec.DecodeError, AttributeError):
        return body[:160].decode(errors="replace")


def cpu_s(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


async def backends(url: str) -> list[psutil.Process]:
    """The Postgres server processes serving the scratch database (the trace sink's connection among them)."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        pids = [r["pid"] for r in rows]
    finally:
        await conn.close()
    return [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)]


async def count_rows(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return sum([await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES])
    finally:
        await conn.close()


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


def checkout(ref: str) -> str:
    """The repository's files at `ref` in a temporary folder (git archive: no checkout, nobody's tree touched)."""
    folder = tempfile.mkdtemp(prefix=f"stepwise-{ref}-")
    archive = subprocess.run(["git", "archive", ref], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return folder


async def measure(requests: int, cap_s: float, repeats: int, before: str | None = None,
                  inline: bool = False) -> tuple[dict, dict]:
    """Per (clients, variant) the rows of each repeat; variants: True (tracing on), False (off), with `inline`
    "inline": tracing on written from the server's own loop, and with `before` (a git ref or a folder of code),
    "before": tracing on with that code, measured in the same run."""
    logs = tempfile.mkdtemp(prefix="stepwise-bench-server-")
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(scratch_database())
        servers: dict = {True: Server(url, True, logs), False: Server(url, False, logs)}
        if inline:
            servers["inline"] = Server(url, True, logs, extra=("--trace-writer", "inline"))
        if before:
            # A database of its own, migrated by that code: its tables may differ from this code's (`events.payload`
            # was jsonb before migration 0008), and its writer encodes rows for its own.
            own = await stack.enter_async_context(scratch_database(migrated=False))
            code = before if Path(before).is_dir() else checkout(before)
            subprocess.run([sys.executable, "-c", "import asyncio, sys; from stepwise.app.migrate import migrate_url; "
                            "asyncio.run(migrate_url(sys.argv[1]))", own], cwd=code, check=True, capture_output=True)
            servers["before"] = Server(own, True, logs, cwd=code)
        try:
            for server in servers.values():  # warm up: imports, first-call paths, allocator pools
                await load(server.port, 16, 500, cap_s)
                await server.stats(reset=True)
            memory = {t: {"after_warmup": s.ps.memory_info().rss} for t, s in servers.items()}
            results: dict[tuple[int, bool | str], list[dict]] = {}
            order = list(servers)
            for _ in range(repeats):
                for clients in CLIENTS:
                    order = order[1:] + order[:1]  # each variant first in turn
                    for trace in order:
                        server = servers[trace]
                        before = await count_rows(server.url) if trace else 0
                        pg = await backends(server.url) if trace else []
                        writer = server.ps.children()  # the trace writer process, if it has one
                        cpu_before = (cpu_s([server.ps]), cpu_s(pg), cpu_s(writer))
                        row = await load(server.port, clients, requests, cap_s)
                        stats = await server.stats(reset=True)
                        n = max(row["requests"], 1)
                        row |= {
                            "server_cpu_ms": (cpu_s([server.ps]) - cpu_before[0]) / n * 1000,
                            "pg_cpu_ms": (cpu_s(pg) - cpu_before[1]) / n * 1000,
                            "writer_cpu_ms": (cpu_s(writer) - cpu_before[2]) / n * 1000,
                            "rows": (await count_rows(server.url)) - before if trace else 0,
                            "lag_p50": pct(stats["lags_ms"], 0.5), "lag_p99": pct(stats["lags_ms"], 0.99),
                            "lagged_runs": len(stats["lags_ms"]), "dropped": stats["dropped"],
                            "flushed": stats["flushed"],
                        }
                        results.setdefault((clients, trace), []).append(row)
                        shown = {k: round(v, 2) if isinstance(v, float) else v
                                 for k, v in row.items() if k != "failures"}
                        print(clients, trace, shown, flush=True)
                for trace, server in servers.items():
                    memory[trace].setdefault("repeats", []).append(server.ps.memory_info().rss)
            for trace, server in servers.items():
                stats = await server.stats()
                memory[trace] |= {"end": server.ps.memory_info().rss, "peak": stats["peak_rss"],
                                  "dropped": stats["dropped"]}
        finally:
            for server in servers.values():
                server.stop()
            print(f"server logs: {logs}", flush=True)
    return results, memory


def _label(variant: bool | str, before: str | None) -> str:
    labels = {True: "on", False: "off", "inline": "on, written inline"}
    return labels.get(variant) or f"on, code of {before}"  # type: ignore[call-overload]


def report(results: dict, memory: dict, requests: int, cap_s: float, repeats: int, before: str | None = None,
           inline: bool = False) -> str:
    variants = [True, *(["inline"] if inline else []), *(["before"] if before else []), False]
    rows, rps = [], {}
    for clients in CLIENTS:
        for trace in variants:
            xs = results[clients, trace]
            rps[clients, trace] = median(x["rps"] for x in xs)
            rows.append((
                clients, _label(trace, before), f"{rps[clients, trace]:,.0f}", f"{median(x['p50_ms'] for x in xs):.1f}",
                f"{median(x['p99_ms'] for x in xs):.1f}",
                f"{median(x['rows'] for x in xs):,.0f}" if trace else "–",
                f"{median(x['lag_p50'] for x in xs):.0f} / {median(x['lag_p99'] for x in xs):.0f}" if trace else "–",
                f"{max(x['dropped'] for x in xs)}" if trace else "–",
                sum(x["failed"] for x in xs),
                f"{median(x['server_cpu_ms'] for x in xs):.2f}",
                f"{median(x['writer_cpu_ms'] for x in xs):.2f}" if trace else "–",
                f"{median(x['pg_cpu_ms'] for x in xs):.2f}" if trace else "–",
            ))
    costs = {(c, t): 1 - rps[c, t] / rps[c, False] for c in CLIENTS for t in variants if t is not False}
    best_on = max(rps[c, True] for c in CLIENTS)
    worst_on = min(rps[c, True] for c in CLIENTS)
    met = sum(rps[c, True] >= 500 for c in CLIENTS)
    mib = 1024 * 1024
    mem_rows = [(_label(t, before), f"{m['after_warmup'] / mib:.1f}",
                 " → ".join(f"{x / mib:.1f}" for x in m["repeats"]),
                 f"{(m['end'] - m['after_warmup']) / mib:+.1f}", f"{(m['repeats'][-1] - m['repeats'][0]) / mib:+.1f}",
                 f"{m['peak'] / mib:.1f}") for t, m in memory.items()]
    lost = max(memory[t]["dropped"] for t in variants if t is not False)
    failures = sorted({f for xs in results.values() for x in xs for f in x["failures"]})
    failed_note = ("\n\nFailed runs (distinct errors): " + "; ".join(f"`{f}`" for f in failures[:5])
                   if failures else "")
    worst_cost = max(costs[c, True] for c in CLIENTS)
    growth = (memory[True]["repeats"][-1] - memory[True]["repeats"][0]) / mib
    cost_lines = "; ".join(
        f"{_label(t, before)}: " + ", ".join(f"{c} clients {costs[c, t]:+.1%}" for c in CLIENTS)
        for t in variants if t is not False)
    return (
        f"Each level: {requests:,} requests or {cap_s:g} s, whichever first; medians of {repeats} repeats, the "
        f"{len(variants)} servers taking turns level by level. Rows = rows written to runs, events, steps, tool_calls, "
        "model_calls and verdicts during the level; lag = from a run's RunFinished to the commit of the batch holding "
        "it (p50 / p99 ms); CPU per request = user + system time of the server process, of its trace writer process "
        "(tracing on, written from a child: the default), and of the Postgres backends serving the scratch database, "
        "over the level.\n\n"
        + table(["clients", "tracing", "req/s", "p50 ms", "p99 ms", "trace rows written", "trace lag p50 / p99 ms",
                 "rows lost", "failed runs (all repeats)", "server CPU ms/req", "writer process CPU ms/req",
                 "Postgres CPU ms/req"], rows)
        + "\n\nThroughput lost to tracing (1 − on ÷ off; negative: noise): " + cost_lines
        + failed_note
        + "\n\n" + table(["tracing", "RSS after warm-up MiB", "RSS after each repeat MiB", "growth from warm-up MiB",
                          "growth from the first repeat MiB", "peak RSS MiB"], mem_rows)
        + f"\n\nTargets (tracing on, this code): ≥ 500 req/s: hit at {met} of {len(CLIENTS)} client levels (best "
        f"{best_on:,.0f} req/s, worst {worst_on:,.0f}); tracing ≤ 5% of throughput: "
        f"{'hit' if worst_cost <= 0.05 else 'miss'} (worst {worst_cost:+.1%}); 0 rows lost: "
        f"{'hit' if lost == 0 else 'miss'} ({lost}); flat memory: {'hit' if abs(growth) < 2 else 'miss'} "
        f"({growth:+.1f} MiB from the end of the first repeat to the end of the last)."
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--cap-s", type=float, default=15.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--inline", action="store_true",
                        help="also a traced server writing its trace from its own loop (STEPWISE_TRACE_WRITER=inline)")
    parser.add_argument("--before", help="a git ref, or a folder holding the code: also a traced server running "
                                         "that code, side by side")
    parser.add_argument("--write", action="store_true", help="write the result into BENCHMARKS.md (section 3)")
    args = parser.parse_args()
    started = time.perf_counter()
    results, memory = asyncio.run(measure(args.requests, args.cap_s, args.repeats, args.before, args.inline))
    body = report(results, memory, args.requests, args.cap_s, args.repeats, args.before, args.inline)
    print(body)
    if args.write:
        command = (f"python -m bench.server --requests {args.requests} --cap-s {args.cap_s:g} --repeats {args.repeats}"
                   + (" --inline" if args.inline else "") + (f" --before {args.before}" if args.before else ""))
        write_section("server", f"`{command}` — {machine()}; took {time.perf_counter() - started:.0f} s.\n\n{body}")


if __name__ == "__main__":
    main()
