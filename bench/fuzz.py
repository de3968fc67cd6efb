"""Fuzzing at scale: Schemathesis (`st run`) against the real app's own document, /schema/openapi.json.

    python -m bench.fuzz [--examples 2000] [--workers 2] [--seed 1] [--write]

The server is the real app under uvicorn (bench/server_app.py --scripted: create_app with a Runtime whose one expert
answers each constrained call with JSON its caller decodes: a plan for the planner, the composer's Answer, a reply
calling no function), tracing into a scratch Postgres database through the real TraceSink. Schemathesis runs every
phase (the document's examples, its coverage of each field's edges, `--examples` generated cases per operation, valid
and invalid, and stateful sequences that follow the run ids the replies give), with its checks of the replies against
the document and three of ours (bench/fuzz_checks.py): no 5xx, every refusal a JSON error whose 400 names the field,
and no request the document calls valid refused before its run starts.

What is counted comes from the server, not from the fuzzer: its /metrics (`stepwise_http_requests_total` by route and
status), then, once its trace sink has caught up, the runs table (every run the fuzzer started in a terminal state)
and the sink's dropped count. `--write` puts the table between the `<!-- fuzz -->` markers of RELIABILITY.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import asyncpg
import httpx

from bench.common import machine, scratch_database, table
from bench.reliability import write
from bench.server import Server

_REQUESTS = re.compile(r'^stepwise_http_requests_total\{method="([A-Z]+)",route="([^"]*)",status="(\d+)"\} (\S+)$',
                       re.M)
_FAILURE = re.compile(r"^\s*❌ (ST\d+ .*?): (\d+)$", re.M)
_CASES = re.compile(r"^\s*(\d+) generated.*$", re.M)


def st_command(url: str, examples: int, workers: int, seed: int, max_failures: int | None = None) -> list[str]:
    """`st run` with every check but two built-ins our own replace: not_a_server_error (ours allows a run's 504 for
    a deadline the client set under a second) and positive_data_acceptance (ours tells a refusal from a run that
    started and failed). Run with SCHEMATHESIS_HOOKS=bench.fuzz_checks."""
    command = [str(Path(sys.executable).with_name("st")), "--no-color", "run", f"{url}/schema/openapi.json",
               "--max-examples", str(examples), "--workers", str(workers), "--seed", str(seed),
               "--checks", "all", "--exclude-checks", "not_a_server_error,positive_data_acceptance",
               "--continue-on-failure", "--request-timeout", "60"]
    return command + (["--max-failures", str(max_failures)] if max_failures else [])


def st_env(tally: Path) -> dict[str, str]:
    repo = str(Path(__file__).resolve().parent.parent)
    return os.environ | {"SCHEMATHESIS_HOOKS": "bench.fuzz_checks", "FUZZ_TALLY": str(tally),
                         "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}


def requests_by_route(metrics: str) -> dict[tuple[str, str], Counter]:
    """(method, route) → Counter of statuses, from the server's Prometheus text."""
    out: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for method, route, status, value in _REQUESTS.findall(metrics):
        out[method, route][int(status)] += int(float(value))
    return out


async def run(examples: int, workers: int, seed: int) -> dict:
    logs = Path(tempfile.mkdtemp(prefix="stepwise-fuzz-"))
    async with scratch_database("stepwise_fuzz") as url:
        server = await asyncio.to_thread(Server, url, True, str(logs), ("--scripted",))
        try:
            started = time.monotonic()
            tally_path = logs / "tally.json"
            proc = await asyncio.to_thread(subprocess.run, st_command(server.base, examples, workers, seed),
                                           env=st_env(tally_path), capture_output=True, text=True,
                                           cwd=logs)  # st keeps a .schemathesis folder where it runs
            seconds = time.monotonic() - started
            (logs / "st.txt").write_text(proc.stdout + proc.stderr)
            async with httpx.AsyncClient(timeout=120) as client:
                metrics = (await client.get(f"{server.base}/metrics")).text
            stats = await server.stats()  # waits for the trace sink to catch up
        finally:
            await asyncio.to_thread(server.stop)
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT status, count(*) AS n FROM runs GROUP BY status")
            runs = Counter({r["status"]: r["n"] for r in rows})
            events = await conn.fetchval("SELECT count(*) FROM events")
        finally:
            await conn.close()
    output = proc.stdout + proc.stderr
    cases = _CASES.search(output)
    print(f"schemathesis output and server log: {logs}", flush=True)
    return {
        "examples": examples, "workers": workers, "seed": seed, "seconds": seconds, "exit": proc.returncode,
        "routes": requests_by_route(metrics), "failures": _FAILURE.findall(output),
        "cases": int(cases.group(1)) if cases else None, "runs": runs, "events": events,
        "dropped": stats["dropped"], "flushed": stats["flushed"],
        "tally": json.loads(tally_path.read_text()) if tally_path.exists() else {},
    }


def render(result: dict) -> str:
    rows, totals = [], Counter()
    for (method, route), statuses in sorted(result["routes"].items(), key=lambda kv: (kv[0][1], kv[0][0])):
        n = sum(statuses.values())
        by_class = Counter()
        for status, count in statuses.items():
            by_class[f"{status // 100}xx"] += count
        fives = {s: c for s, c in statuses.items() if s >= 500}
        totals.update(by_class)
        totals["all"] += n
        four = ", ".join(f"{c}× {s}" for s, c in sorted(statuses.items()) if 400 <= s < 500) or "0"
        five = ", ".join(f"{c}× {s}" for s, c in sorted(fives.items())) or "0"
        rows.append((f"{method} {route}", n, by_class["2xx"], four, five))
    rows.append(("**all**", totals["all"], totals["2xx"], totals["4xx"], totals["5xx"]))
    failures = "; ".join(f"{name}: {count}" for name, count in result["failures"]) or "none"
    runs = result["runs"]
    unrecorded = runs.get("running", 0)
    tally = "; ".join(f"{count}× {what}" for what, count in sorted(result["tally"].items())) or "none"
    return (
        f"`python -m bench.fuzz --examples {result['examples']} --workers {result['workers']} --seed {result['seed']}` "
        f"on {machine()}; Schemathesis {_version()}, {result['cases'] or '?'} test cases in {result['seconds']:.0f} s "
        f"(exit status {result['exit']}).\n\n"
        + table(["route", "requests", "2xx", "4xx", "5xx"], rows)
        + f"\n\nChecks that failed: {failures}. Allowed and counted apart (bench/fuzz_checks.py): {tally}. "
        f"Runs the fuzzer started: {sum(runs.values()):,} "
        f"({', '.join(f'{n:,} {s}' for s, n in sorted(runs.items()))}), "
        f"{unrecorded} left `running`; {result['events']:,} trace events written, {result['dropped']} dropped."
    )


def _version() -> str:
    from importlib.metadata import version

    return version("schemathesis")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000, help="generated cases per operation (Schemathesis -n)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="write the table into RELIABILITY.md")
    args = parser.parse_args()
    result = asyncio.run(run(args.examples, args.workers, args.seed))
    text = render(result)
    print(text)
    if args.write:
        write(text, "fuzz")


if __name__ == "__main__":
    main()
