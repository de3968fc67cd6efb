"""`stepwise runs`, `trace`, `prune` and `replay`: recorded runs read back from Postgres on the command line.

`runs` reads the `run_summary` view; `trace` folds a run's events (the same `reasoning.report.fold` that answers
`GET /v1/runs/{id}`) and draws its DAG; neither loads a model. `prune` deletes old runs' trace rows in one
transaction. `replay` runs a recorded question again (or one recorded step, as a one-step imperative plan) through
`Runtime.ask` and prints what changed."""

from __future__ import annotations

import argparse
import asyncio
import sys

from stepwise.app.inspection.common import InspectError
from stepwise.app.inspection.prune import parse_age, prune_old
from stepwise.app.inspection.replay import replay_run
from stepwise.app.inspection.runs import list_runs
from stepwise.app.inspection.trace import show_trace
from stepwise.app.settings import Settings

COMMANDS = ("runs", "trace", "prune", "replay")


def add_parsers(commands: argparse._SubParsersAction) -> None:
    runs = commands.add_parser("runs", help="list recent runs from the trace")
    runs.add_argument("--limit", type=int, default=20, help="how many runs, newest first (default 20)")
    trace = commands.add_parser("trace", help="print a recorded run as a tree of its steps, with timings and verdicts")
    trace.add_argument("run_id", help="a run id, or a unique prefix of one")
    prune = commands.add_parser("prune", help="delete the trace of runs older than an age")
    prune.add_argument("--older-than", required=True, type=parse_age, metavar="AGE", help="e.g. 30d, 12h, 45m")
    prune.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    replay = commands.add_parser("replay",
                                 help="run a recorded run's question again (or one step) and print what changed")
    replay.add_argument("run_id", help="a run id, or a unique prefix of one")
    what = replay.add_mutually_exclusive_group()
    what.add_argument("--step", type=int, help="rerun only this step, with its recorded resolved input")
    what.add_argument("--same-plan", action="store_true", help="run the recorded plan again instead of planning afresh")


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        match args.command:
            case "runs":
                return asyncio.run(list_runs(settings, args.limit))
            case "trace":
                return asyncio.run(show_trace(settings, args.run_id))
            case "prune":
                return asyncio.run(prune_old(settings, args.older_than, args.dry_run))
            case "replay":
                return asyncio.run(replay_run(settings, args.run_id, args.step, args.same_plan))
    except InspectError as exc:
        print(f"stepwise: {exc}", file=sys.stderr)
        return 1
    raise ValueError(f"not an inspect command: {args.command}")
