"""Parallel efficiency: a plan of W independent expert steps through the real Engine (imperative mode), on a model
backend whose every call takes a fixed latency (asleep on the event loop, like a remote server). The critical path
of the whole run is two calls (the steps' level, then the composer); of the steps phase (first StepStarted to last
StepFinished, from the events) one call. A bare asyncio floor (the same sleeps in a TaskGroup, then one more) runs
interleaved, to separate the event loop's lateness on a loaded machine from the orchestrator's own time. Sequential
mode runs the same steps one at a time (the engine's `sequential` option).

    python -m bench.parallel [--latency-ms 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio

from bench.common import median, table
from bench.doubles import engine_for, fan_out, instant_fleet
from stepwise.app.logs import configure_logging
from stepwise.reasoning import events as ev
from stepwise.reasoning.engine import Engine
from stepwise.reasoning.events import Recorder
from stepwise.reasoning.options import RunOptions

WIDTHS = (1, 2, 4, 8, 16)
SEQUENTIAL_WIDTH = 8


async def timed_run(engine: Engine, width: int, sequential: bool) -> tuple[float, float]:
    """(whole run s, steps phase s), both from the run's own events."""
    recorder = Recorder()
    await engine.run("bench", RunOptions(deadline_s=120, plan=fan_out(width, "expert"), sequential=sequential),
                     sink=recorder)
    events = recorder.events
    end = events[-1]
    assert isinstance(end, ev.RunFinished), end
    starts = [e.at for e in events if isinstance(e, ev.StepStarted)]
    ends = [e.at for e in events if isinstance(e, ev.StepFinished)]
    assert len(starts) == len(ends) == width
    return end.latency_ms / 1000, max(ends) - min(starts)


async def floor_run(width: int, latency_s: float) -> tuple[float, float]:
    """The same shape with nothing but asyncio: W sleeps in a TaskGroup, then one more (the composer's place). What
    it takes beyond 2 × latency is the event loop's own lateness on this machine at this moment."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.TaskGroup() as group:
        for _ in range(width):
            group.create_task(asyncio.sleep(latency_s))
    steps = loop.time() - started
    await asyncio.sleep(latency_s)
    return loop.time() - started, steps


async def measure(latency_s: float, repeats: int) -> dict:
    engine = engine_for(instant_fleet(latency_s))
    variants = [(w, False) for w in WIDTHS] + [(SEQUENTIAL_WIDTH, True)] + [(w, "floor") for w in WIDTHS]
    runs: dict[tuple, list[tuple[float, float]]] = {v: [] for v in variants}
    await timed_run(engine, 2, False)  # warm
    for r in range(repeats):
        for width, mode in variants[r % len(variants):] + variants[:r % len(variants)]:
            if mode == "floor":
                runs[width, mode].append(await floor_run(width, latency_s))
            else:
                runs[width, mode].append(await timed_run(engine, width, mode))
    return {v: (median(a for a, _ in xs), median(b for _, b in xs)) for v, xs in runs.items()}


def report(results: dict, latency_s: float, repeats: int) -> str:
    rows = []
    for width in WIDTHS:
        whole, steps = results[width, False]
        floor_whole, _ = results[width, "floor"]
        rows.append((width, f"{whole * 1000:,.1f}", f"{whole / (2 * latency_s):.4f}", f"{steps * 1000:,.1f}",
                     f"{steps / latency_s:.4f}",
                     f"{floor_whole / (2 * latency_s):.4f}", f"{(whole - floor_whole) * 1000:+.1f}"))
    seq_whole, seq_steps = results[SEQUENTIAL_WIDTH, True]
    par_whole, par_steps = results[SEQUENTIAL_WIDTH, False]
    w16 = results[16, False][0] / (2 * latency_s)
    w16_floor = results[16, "floor"][0] / (2 * latency_s)
    how = "the engine's `sequential` option"
    speed = par_steps and seq_steps / par_steps
    return (
        f"Medians of {repeats} interleaved repeats; every model call takes {latency_s * 1000:.0f} ms.\n\n"
        + table(["width", "whole run ms", "÷ critical path (2 calls)", "steps phase ms", "÷ critical path (1 call)",
                 "bare asyncio ÷ critical path", "stepwise − bare ms"], rows)
        + f"\n\nSequential ({how}), width {SEQUENTIAL_WIDTH}: whole run {seq_whole * 1000:,.1f} ms, steps phase "
        f"{seq_steps * 1000:,.1f} ms. Orchestrated over sequential: **{speed:.2f}×** on the steps phase, "
        f"{seq_whole / par_whole:.2f}× on the whole run (one serial composer call in both bounds it near "
        f"({SEQUENTIAL_WIDTH} + 1) ÷ 2 = {(SEQUENTIAL_WIDTH + 1) / 2:.1f}×).\n\n"
        f"Targets: fan-out 16 ≤ 1.005 × critical path: {'hit' if w16 <= 1.005 else 'miss'} ({w16:.4f}×, whole run; "
        f"bare asyncio on the same machine in the same run: {w16_floor:.4f}×); "
        f"orchestrated ≥ 7× faster than sequential at width 8: {'hit' if speed >= 7 else 'miss'} "
        f"({speed:.2f}× on the steps phase)."
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    configure_logging("warning")
    print(report(asyncio.run(measure(args.latency_ms / 1000, args.repeats)), args.latency_ms / 1000, args.repeats))


if __name__ == "__main__":
    main()
