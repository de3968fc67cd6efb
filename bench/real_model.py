"""Real model: ten questions through Runtime.ask on the default Qwen model (a scratch database, tracing on), one at
a time; from each run's events, the share of its wall time spent outside model calls (run latency minus the union
of the ModelCalled intervals, each [at - latency_ms, at]).

    python -m bench.real_model [--write] [--limit 10] [--model qwen]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from bench.common import machine, median, scratch_database, table
from bench.sections import write_section
from stepwise.app.logs import configure_logging
from stepwise.app.runtime import Runtime
from stepwise.app.settings import Settings
from stepwise.reasoning import events as ev
from stepwise.reasoning.events import Recorder

QUESTIONS = [
    "What is (17*23)+(45*12)?",
    "How many seconds are in a week?",
    "What is the capital of France?",
    "A shirt costs 25 dollars and is 20% off. What is the sale price?",
    "What is 15% of 240?",
    "How many minutes are in 3.5 hours?",
    "Who wrote Romeo and Juliet?",
    "A train travels at 60 km/h for 2.5 hours. How far does it go?",
    "What is 2 to the power of 10, minus 24?",
    "What is the capital of Japan, and how many letters does its name have?",
]


def union_s(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def outside_model(events: list) -> tuple[float, float, int]:
    """(run wall ms, ms outside model calls, model calls) from one run's events."""
    started = next(e for e in events if isinstance(e, ev.RunStarted)).at
    ended = next(e for e in events if isinstance(e, ev.RunFinished | ev.RunFailed))
    calls = [(e.at - e.latency_ms / 1000, e.at) for e in events if isinstance(e, ev.ModelCalled)]
    wall_ms = ended.at - started
    # Wall time between the RunStarted and RunFinished stamps (same clock as the calls' intervals).
    inside = union_s([(max(a, started), min(b, ended.at)) for a, b in calls])
    return wall_ms * 1000, (wall_ms - inside) * 1000, len(calls)


async def measure(model: str, limit: int) -> str:
    header = machine()
    async with scratch_database() as url:
        settings = Settings.from_env(dict(os.environ) | {"DATABASE_URL": url, "STEPWISE_MODEL": model})
        t0 = time.perf_counter()
        runtime = await Runtime.start(settings)
        load_s = time.perf_counter() - t0
        rows, shares, totals = [], [], [0.0, 0.0]
        try:
            for question in QUESTIONS[:limit]:
                recorder = Recorder()
                report = await runtime.ask(question, 300.0, recorder)
                wall, outside, calls = outside_model(recorder.events)
                shares.append(outside / wall)
                totals[0] += wall
                totals[1] += outside
                ended = report.error.type if report.error else report.status
                answer = report.answer.text if report.answer else f"({ended})"
                rows.append((question, len(report.steps), calls, f"{wall:,.0f}", f"{outside:.1f}",
                             f"{outside / wall:.3%}", answer[:60].replace("|", "/")))
                print(rows[-1], flush=True)
        finally:
            await runtime.close()
    rows.append(("**all runs**", "", "", f"{totals[0]:,.0f}", f"{totals[1]:.1f}", f"{totals[1] / totals[0]:.3%}",
                 f"median share {median(shares):.3%}"))
    return (f"`python -m bench.real_model --write` — {header}. Model: `{model}` (load {load_s:.0f} s, not counted); "
            f"tracing on into a scratch database.\n\n"
            + table(["question", "steps", "model calls", "run ms", "outside model calls ms", "share", "answer"], rows))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="qwen")
    parser.add_argument("--limit", type=int, default=len(QUESTIONS))
    parser.add_argument("--write", action="store_true", help="rewrite the real_model section of BENCHMARKS.md")
    args = parser.parse_args()
    configure_logging("warning")
    text = asyncio.run(measure(args.model, args.limit))
    print(text)
    if args.write:
        write_section("real_model", text)


if __name__ == "__main__":
    main()
