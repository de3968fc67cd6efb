"""Measurements behind the explanations in BENCHMARKS.md (not tables of their own):

    python -m bench.diagnose emit    # engine overhead with today's sinks against two cheaper emit paths (what-if)
    python -m bench.diagnose write   # where a trace batch's write time goes, per COPY / statement

`emit` runs Engine.run on the overhead benchmark's plans three ways, interleaved: the current sinks; LogSink's
"is this a run-level event" test as a set lookup on the event's type instead of isinstance against a tuple of six
msgspec classes; and that plus the trace enqueue at the cost of a deque append instead of asyncio.Queue.put_nowait.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import time

import asyncpg

import stepwise.app.trace as trace_module
from bench.common import median, scratch_database
from bench.doubles import chain, engine_for, fan_out, instant_fleet
from bench.overhead import fit
from bench.sink import recorded_runs
from stepwise.app import db
from stepwise.app.logs import LogSink, configure_logging
from stepwise.app.trace import TraceSink
from stepwise.reasoning.events import FanOut, Recorder
from stepwise.reasoning.options import RunOptions


class DequeEnqueue:
    def __init__(self) -> None:
        self.buffer: collections.deque = collections.deque()

    def emit(self, event) -> None:
        self.buffer.append(event)


async def emit(repeats: int) -> None:
    engine = engine_for(instant_fleet())
    shapes = {("chain", 1): chain(1), ("chain", 8): chain(8), ("chain", 64): chain(64), ("fan-out", 8): fan_out(8),
              ("fan-out", 64): fan_out(64)}
    variants = {
        "current sinks": lambda: (TraceSink(None, maxsize=10**7), LogSink()),
        # LogSink already tests types by set membership (the other what-if this measured, since adopted).
        "enqueue as deque append": lambda: (DequeEnqueue(), LogSink()),
    }
    times = {(v, k): [] for v in variants for k in shapes}
    gc.disable()
    for r in range(repeats):
        gc.collect()
        built = {v: make() for v, make in variants.items()}
        for key, plan in shapes.items():
            names = list(variants)
            for v in names[r % 3:] + names[:r % 3]:
                trace, logs = built[v]
                sink = FanOut(Recorder(), trace, logs)
                t0 = time.perf_counter()
                await engine.run("q", RunOptions(deadline_s=60, plan=plan), sink=sink)
                times[v, key].append(time.perf_counter() - t0)
    gc.enable()
    m = {key: median(x) * 1e6 for key, x in times.items()}
    print(f"Engine.run, medians of {repeats} interleaved repeats")
    us = {(v, shape, n): value for (v, (shape, n)), value in m.items()}
    for v in variants:
        per_run, step, _, branch = fit(us, v)
        print(f"{v:28s} per run {per_run:6.1f} µs · per step (8→64) {step:5.1f} µs · per branch {branch:5.1f} µs")


async def write(runs: int) -> None:
    spent: collections.Counter = collections.Counter()
    copy, many = asyncpg.Connection.copy_records_to_table, asyncpg.Connection.executemany

    async def timed_copy(self, name, **kw):
        t = time.perf_counter()
        try:
            return await copy(self, name, **kw)
        finally:
            spent[f"COPY {name}"] += time.perf_counter() - t

    async def timed_many(self, query, args, **kw):
        t = time.perf_counter()
        try:
            return await many(self, query, args, **kw)
        finally:
            if query.startswith("INSERT"):
                label = "runs: insert at start"
            else:
                label = "runs: update with sums at the end" if "finished_at" in query else "runs: answer"
            spent[label] += time.perf_counter() - t

    asyncpg.Connection.copy_records_to_table, asyncpg.Connection.executemany = timed_copy, timed_many
    try:
        async with scratch_database() as url:
            events = await recorded_runs(runs)
            conn = await db.connect(url)
            t = time.perf_counter()
            for i in range(0, len(events), 5000):  # the sink's batch size
                await trace_module.write_batch(conn, events[i:i + 5000])
            total = time.perf_counter() - t
            await conn.close()
    finally:
        asyncpg.Connection.copy_records_to_table, asyncpg.Connection.executemany = copy, many
    print(f"write_batch of {runs} runs ({len(events)} events): {total:.2f} s")
    for label, s in spent.most_common():
        print(f"  {label:34s} {s:.3f} s  {s / total:5.1%}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["emit", "write"])
    parser.add_argument("--repeats", type=int, default=250)
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    configure_logging("warning")
    asyncio.run(emit(args.repeats) if args.what == "emit" else write(args.runs))


if __name__ == "__main__":
    main()
