"""The trace sink alone: the events of N real runs (the engine with an instant model, recorded in memory first) are
emitted at once into a started TraceSink on a scratch Postgres database; rows per second = rows written (runs,
events, steps, tool_calls, model_calls, verdicts) ÷ time from the first emit until flush() returns; CPU per run =
user + system time over the same span, of this process (the sink) and of the Postgres backend it writes through.
Repeated; medians.

    python -m bench.sink [--runs 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import median, scratch_database, table
from bench.doubles import engine_for, instant_fleet
from bench.server import backends, count_rows, cpu_s
from stepwise.app import db
from stepwise.app.logs import configure_logging
from stepwise.app.trace import TraceSink
from stepwise.reasoning.events import Recorder
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.types import Plan, ToolStep

PLAN = Plan([
    ToolStep(1, "calculator", {"expression": "17*23"}), ToolStep(2, "calculator", {"expression": "45*12"}),
    ToolStep(3, "calculator", {"expression": "$1+$2"}, [1, 2]),
])


async def recorded_runs(n: int) -> list:
    engine = engine_for(instant_fleet())
    events = []
    for _ in range(n):
        recorder = Recorder()
        await engine.run("What is (17*23)+(45*12)?", RunOptions(deadline_s=60, plan=PLAN), sink=recorder)
        events.extend(recorder.events)
    return events


async def measure(runs: int, repeats: int) -> list[dict]:
    results = []
    async with scratch_database() as url:
        for _ in range(repeats):
            events = await recorded_runs(runs)  # new run ids every repeat
            sink = TraceSink(lambda: db.connect(url), maxsize=len(events) + 1)
            sink.start()
            before = await count_rows(url)
            sink.emit(events[0])  # the sink's connection opened, so its backend is there to be measured
            assert await sink.flush(timeout=60)
            postgres = await backends(url)
            postgres_cpu, cpu = cpu_s(postgres), time.process_time()
            started = time.perf_counter()
            for event in events[1:]:
                sink.emit(event)
            assert await sink.flush(timeout=300)
            elapsed = time.perf_counter() - started
            cpu, postgres_cpu = time.process_time() - cpu, cpu_s(postgres) - postgres_cpu
            await sink.close()
            written = await count_rows(url) - before
            results.append({"events": len(events), "rows": written, "s": elapsed, "dropped": sink.dropped,
                            "sink_ms_per_run": cpu * 1000 / runs, "postgres_ms_per_run": postgres_cpu * 1000 / runs})
            print(results[-1], flush=True)
    return results


def report(results: list[dict], runs: int) -> str:
    r = results[0]
    rows_s = median(x["rows"] / x["s"] for x in results)
    events_s = median(x["events"] / x["s"] for x in results)
    return (f"{runs:,} runs of a three-step calculator plan ({r['events']:,} events, "
            f"{r['rows']:,} rows) emitted at once; "
            f"medians of {len(results)} repeats.\n\n"
            + table(["events/s", "rows/s", "runs/s", "rows lost", "sink CPU ms/run", "Postgres CPU ms/run"],
                    [(f"{events_s:,.0f}", f"{rows_s:,.0f}", f"{median(runs / x['s'] for x in results):,.0f}",
                      max(x["dropped"] for x in results), f"{median(x['sink_ms_per_run'] for x in results):.3f}",
                      f"{median(x['postgres_ms_per_run'] for x in results):.3f}")]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configure_logging("warning")
    print(report(asyncio.run(measure(args.runs, args.repeats)), args.runs))


if __name__ == "__main__":
    main()
