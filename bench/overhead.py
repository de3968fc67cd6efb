"""Orchestration overhead with an instant in-process backend, interleaved in one run (each repeat runs every variant
on every shape, in rotating order) and reported as medians:

- bare asyncio TaskGroup: the floor (one TaskGroup per level for a chain, one for all branches of a fan-out);
- LangGraph: a compiled StateGraph with the same DAG of no-op async nodes, `ainvoke`;
- stepwise executor: `validate_plan` + `run_plan`, an instant step, events into the sinks a Runtime run has
  (Recorder, TraceSink's enqueue, LogSink);
- stepwise engine: `Engine.run` with the plan given (imperative mode) of no-op tool steps: validation, the tool call,
  the default verifiers, the composer's call to an instant model, and every event into the same sinks;
- the same two with a sink that drops every event: what the sinks cost is the difference.

The garbage collector is off while timing and runs between rounds (LangGraph's garbage would otherwise trigger
collections inside the other variants' timings). Per step = the difference between sizes ÷ the difference in steps
(1→8 and 8→64); per run = the 1-step chain minus one step (1→8).

    python -m bench.overhead [--repeats 200]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import uuid
from typing import TypedDict

from bench.common import median, table
from bench.doubles import bench_tools, chain, engine_for, fan_out, instant_fleet
from stepwise.app.logs import LogSink, configure_logging
from stepwise.app.trace import TraceSink
from stepwise.reasoning.context import RunContext
from stepwise.reasoning.events import FanOut, Recorder
from stepwise.reasoning.executor import run_plan
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.plan import validate_plan
from stepwise.reasoning.types import Plan

SHAPES = [("chain", 1), ("chain", 8), ("chain", 64), ("fan-out", 8), ("fan-out", 64)]
VARIANTS = ["bare TaskGroup", "LangGraph", "stepwise executor", "stepwise engine", "executor, events dropped",
            "engine, events dropped"]
TARGET_RUN_US, TARGET_STEP_US = 50.0, 20.0


def _not_connected():
    raise AssertionError("the benchmark never starts the sink's writer: only emit (the enqueue) is measured")


class Sinks:
    """What Runtime.ask gives a run: a recorder for the reply (new per run, as there), the process's trace sink
    (only its enqueue; a fresh one per repeat keeps its queue short) and log sink."""

    def __init__(self) -> None:
        self.renew()
        self.logs = LogSink()

    def renew(self) -> None:
        self.trace = TraceSink(_not_connected, maxsize=1_000_000)

    def for_run(self) -> tuple[Recorder, FanOut]:
        recorder = Recorder()
        return recorder, FanOut(recorder, self.trace, self.logs)


class _Dropped:
    def emit(self, event) -> None:
        pass


_DROP = _Dropped()


async def _instant(step, resolved):
    return 1


async def bare(plan: Plan) -> None:
    steps = plan.steps
    if all(not s.depends_on for s in steps):
        async with asyncio.TaskGroup() as tg:
            for s in steps:
                tg.create_task(_instant(s, s.input))
    else:
        for s in steps:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_instant(s, s.input))


def langgraph_for(plan: Plan):
    try:
        from langgraph.graph import END, START, StateGraph
    except ImportError as exc:
        raise SystemExit("LangGraph is the baseline here: pip install -e '.[bench]'") from exc

    class State(TypedDict, total=False):
        x: int

    async def noop(state: State) -> dict:
        return {}

    graph = StateGraph(State)
    for step in plan.steps:
        graph.add_node(f"s{step.id}", noop)
    for step in plan.steps:
        for need in step.depends_on or [None]:
            graph.add_edge(START if need is None else f"s{need}", f"s{step.id}")
    needed = {need for step in plan.steps for need in step.depends_on}
    for step in plan.steps:
        if step.id not in needed:
            graph.add_edge(f"s{step.id}", END)
    return graph.compile()


async def measure(repeats: int) -> dict:
    tools = bench_tools()
    engine = engine_for(instant_fleet(), tools)
    plans = {(shape, n): (chain if shape == "chain" else fan_out)(n) for shape, n in SHAPES}
    graphs = {key: langgraph_for(plan) for key, plan in plans.items()}

    shared = Sinks()

    async def run_executor(plan: Plan) -> None:
        _, sink = shared.for_run()
        dag = validate_plan(plan, tools, ())
        await run_plan(dag, _instant, RunContext(uuid.uuid4(), sink, asyncio.get_running_loop().time() + 60))

    async def run_engine(plan: Plan) -> None:
        recorder, sink = shared.for_run()
        await engine.run("bench", RunOptions(deadline_s=60, plan=plan), sink=sink)
        assert type(recorder.events[-1]).__name__ == "RunFinished", recorder.events[-1]

    async def run_executor_dropped(plan: Plan) -> None:
        dag = validate_plan(plan, tools, ())
        await run_plan(dag, _instant, RunContext(uuid.uuid4(), _DROP, asyncio.get_running_loop().time() + 60))

    async def run_engine_dropped(plan: Plan) -> None:
        await engine.run("bench", RunOptions(deadline_s=60, plan=plan), sink=_DROP)

    runners = {
        "bare TaskGroup": bare,
        "LangGraph": None,
        "stepwise executor": run_executor,
        "stepwise engine": run_engine,
        "executor, events dropped": run_executor_dropped,
        "engine, events dropped": run_engine_dropped,
    }
    times: dict[tuple, list[float]] = {(v, s, n): [] for v in VARIANTS for s, n in SHAPES}
    for key in plans:  # warm every path once
        await bare(plans[key])
        await graphs[key].ainvoke({"x": 0})
        await run_executor(plans[key])
        await run_engine(plans[key])
        await run_executor_dropped(plans[key])
        await run_engine_dropped(plans[key])
    # The collector stays off while timing and runs between rounds: otherwise LangGraph's garbage triggers
    # collections that land in whichever variant runs next.
    gc.collect()
    gc.freeze()
    gc.disable()
    for r in range(repeats):
        gc.collect()
        shared.renew()
        for i, (shape, n) in enumerate(SHAPES):
            plan = plans[shape, n]
            k = (r + i) % len(VARIANTS)
            order = VARIANTS[k:] + VARIANTS[:k]
            for variant in order:
                if variant == "LangGraph":
                    graph = graphs[shape, n]
                    t0 = time.perf_counter()
                    await graph.ainvoke({"x": 0})
                else:
                    runner = runners[variant]
                    t0 = time.perf_counter()
                    await runner(plan)
                times[variant, shape, n].append(time.perf_counter() - t0)
    gc.enable()
    gc.unfreeze()
    return {key: median(values) * 1e6 for key, values in times.items()}


def fit(us: dict, variant: str) -> tuple[float, float, float, float]:
    """(per run, per sequential step 8→64, per sequential step 1→8, per parallel branch 8→64) in µs."""
    step = (us[variant, "chain", 64] - us[variant, "chain", 8]) / 56
    short = (us[variant, "chain", 8] - us[variant, "chain", 1]) / 7
    branch = (us[variant, "fan-out", 64] - us[variant, "fan-out", 8]) / 56
    return us[variant, "chain", 1] - short, step, short, branch


def report(us: dict, repeats: int) -> str:
    rows = []
    for shape, n in SHAPES:
        row = [shape, n]
        for v in VARIANTS[:4]:
            row.append(f"{us[v, shape, n]:,.1f}")
        base = us["bare TaskGroup", shape, n]
        row += [f"{us['stepwise executor', shape, n] / base:.1f}×", f"{us['stepwise engine', shape, n] / base:.1f}×",
                f"{us['LangGraph', shape, n] / us['stepwise engine', shape, n]:.1f}×"]
        rows.append(row)
    by_size = table(["shape", "steps", *[f"{v} µs/run" for v in VARIANTS[:4]], "executor ÷ bare", "engine ÷ bare",
                     "LangGraph ÷ engine"], rows)
    fits = []
    for v in VARIANTS:
        per_run, per_step, short, per_branch = fit(us, v)
        verdict = ""
        if v.startswith("stepwise") or v.endswith("dropped"):
            ok_run, ok_step = per_run <= TARGET_RUN_US, max(per_step, per_branch) <= TARGET_STEP_US
            verdict = (f"per run {'hit' if ok_run else 'miss'} ({per_run / TARGET_RUN_US:.2f}× of 50 µs); "
                       f"per step {'hit' if ok_step else 'miss'} "
                       f"({max(per_step, per_branch) / TARGET_STEP_US:.2f}× of 20 µs)")
        fits.append((v, f"{per_run:,.1f}", f"{short:,.1f}", f"{per_step:,.1f}", f"{per_branch:,.1f}", verdict))
    return (f"Medians of {repeats} interleaved repeats.\n\n" + by_size + "\n\n"
            + table(["variant", "per run µs", "per sequential step µs (1→8)", "per sequential step µs (8→64)",
                     "per parallel branch µs (8→64)", "target (≤ 50 µs/run, ≤ 20 µs/step)"], fits))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    configure_logging("warning")
    print(report(asyncio.run(measure(args.repeats)), args.repeats))


if __name__ == "__main__":
    main()
