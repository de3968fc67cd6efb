"""Regenerates every table of BENCHMARKS.md (between its `<!-- bench:… -->` markers; the prose stays), each under a
line naming the machine it ran on. The real-model benchmark takes ten minutes or more: `--skip-real` keeps its table.

    python -m bench.run_all [--skip-real] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

from bench import overhead, parallel, server, sink
from bench import sections as bench_sections
from bench.common import machine
from stepwise.app.logs import configure_logging


def _print(name: str, text: str) -> None:
    print(f"--- {name}\n{text}\n")


def _section(command: str, body: str, started: float) -> str:
    return f"`{command}` — {machine()}; took {time.perf_counter() - started:.0f} s.\n\n{body}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-real", action="store_true", help="keep the real-model table as it is")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats, printed instead of written: checks the harness")
    args = parser.parse_args()
    configure_logging("warning")
    q = args.quick
    write_section = _print if q else bench_sections.write_section
    repeats = 30 if q else 300
    t = time.perf_counter()
    us = asyncio.run(overhead.measure(repeats))
    write_section("overhead", _section(f"python -m bench.overhead --repeats {repeats}", overhead.report(us, repeats),
                                       t))

    repeats, latency = (2 if q else 7), 0.2
    t = time.perf_counter()
    results = asyncio.run(parallel.measure(latency, repeats))
    write_section("parallel", _section(f"python -m bench.parallel --repeats {repeats}",
                                       parallel.report(results, latency, repeats), t))

    requests, cap, repeats = (300, 5.0, 2) if q else (1500, 15.0, 5)
    t = time.perf_counter()
    results, memory = asyncio.run(server.measure(requests, cap, repeats))
    write_section("server",
                  _section(f"python -m bench.server --requests {requests} --cap-s {cap:g} --repeats {repeats}",
                                     server.report(results, memory, requests, cap, repeats), t))

    runs, repeats = (300, 2) if q else (2000, 5)
    t = time.perf_counter()
    rows = asyncio.run(sink.measure(runs, repeats))
    write_section("sink", _section(f"python -m bench.sink --runs {runs} --repeats {repeats}", sink.report(rows, runs),
                                   t))

    if not args.skip_real:
        # Last and alone: the model's two threads would take the cores the timings above need.
        subprocess.run([sys.executable, "-m", "bench.real_model", *(["--limit", "2"] if q else ["--write"])],
                       check=True)
    print("printed (--quick: BENCHMARKS.md untouched)" if q else "BENCHMARKS.md updated")


if __name__ == "__main__":
    main()
