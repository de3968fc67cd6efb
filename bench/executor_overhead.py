"""Executor overhead per step: run_plan (events into a Recorder and a queue, as the trace sink does) against a bare
asyncio TaskGroup running the same DAG shape, with an instant step; medians over repeats, interleaved.

    python bench/executor_overhead.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from reasoning.context import RunContext
from reasoning.events import FanOut, Recorder
from reasoning.executor import run_plan
from reasoning.plan import validate_plan
from reasoning.types import Plan, Step
from tools import default_tools

TOOLS = default_tools()


def chain(n: int) -> Plan:
    return Plan([Step(i, "tool", "calculator", {"expression": "1"}, [i - 1] if i > 1 else []) for i in range(1, n + 1)])


def fan_out(n: int) -> Plan:
    return Plan([Step(i, "tool", "calculator", {"expression": "1"}, []) for i in range(1, n + 1)])


class QueueSink:
    """What the trace sink's emit costs: a put on a bounded asyncio queue (drained between repeats)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue(1_000_000)

    def emit(self, event) -> None:
        self.queue.put_nowait(event)


async def instant(step, resolved):
    return 1


async def bare(plan: Plan) -> None:
    """The floor: a TaskGroup that starts each step when its predecessor is done, no events, no validation."""
    steps = plan.steps
    if all(not s.depends_on for s in steps):
        async with asyncio.TaskGroup() as tg:
            for s in steps:
                tg.create_task(instant(s, s.input))
    else:
        for s in steps:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(instant(s, s.input))


async def ours(plan: Plan, sink) -> None:
    dag = validate_plan(plan, TOOLS, {})
    await run_plan(dag, instant, RunContext(uuid.uuid4(), sink, asyncio.get_running_loop().time() + 60))


async def measure(repeats: int) -> list[tuple[str, int, float, float]]:
    rows = []
    for name, make, sizes in (("chain", chain, (1, 8, 64)), ("fan-out", fan_out, (8, 64))):
        for n in sizes:
            plan = make(n)
            t_bare, t_ours = [], []
            for _ in range(repeats):
                sink = FanOut(Recorder(), QueueSink())
                t0 = time.perf_counter()
                await bare(plan)
                t1 = time.perf_counter()
                await ours(plan, sink)
                t2 = time.perf_counter()
                t_bare.append(t1 - t0)
                t_ours.append(t2 - t1)
            rows.append((name, n, statistics.median(t_bare) * 1e6, statistics.median(t_ours) * 1e6))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    rows = asyncio.run(measure(args.repeats))
    print("| shape | steps | bare TaskGroup µs/run | stepwise µs/run | stepwise µs/step | ratio |")
    print("|---|---|---|---|---|---|")
    for name, n, b, o in rows:
        print(f"| {name} | {n} | {b:.1f} | {o:.1f} | {o / n:.1f} | {o / b:.1f}× |")


if __name__ == "__main__":
    main()
