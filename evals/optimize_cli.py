"""`stepwise optimize DATASET --objective accuracy [--max-p50 20s] [--max-cost-per-item X] --budget N --seed S`:
tune the configuration file's switches to a workload (evals/optimize.py), and write the chosen configuration, the
learned example bank, a report and a PNG of the frontiers.

Kept light at import, as evals/cli.py is: app/cli.py imports it to register the command."""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
from pathlib import Path
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min)?\s*$")


def duration_ms(text: str) -> float:
    """`20s`, `1.5m`, `800ms` or a bare number of seconds, in milliseconds."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 20s, 1.5m, 800ms)")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000}[unit]


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "optimize", help="tune the configuration (STEPWISE_CONFIG) to a workload: a search over candidate "
                         "configurations, each an eval run, and the chosen one checked on held-out items",
        description="stepwise optimize DATASET --objective accuracy [--max-p50 20s] [--max-cost-per-item X] "
                    "--budget N --seed S | stepwise optimize --from-runs 'SQL WHERE' …")
    p.add_argument("dataset", nargs="?", help="a dataset as `stepwise eval` takes it (dev, gsm_symbolic, game24, a "
                                              ".jsonl file); leave out with --from-runs")
    p.add_argument("--objective", choices=("accuracy",), default="accuracy",
                   help="what to maximise (accuracy; --latency-weight / --cost-weight make it a weighted mix)")
    p.add_argument("--max-p50", type=duration_ms, help="a limit on the median latency per item, e.g. 20s")
    p.add_argument("--max-cost-per-item", type=float, help="a limit on the mean cost per item (registry prices)")
    p.add_argument("--latency-weight", type=float, default=0.0, help="accuracy given up per second of p50 (default 0)")
    p.add_argument("--cost-weight", type=float, default=0.0, help="accuracy given up per unit of cost per item")
    p.add_argument("--budget", type=int, default=8, help="candidate configurations to evaluate, the default among "
                                                         "them (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seeds the train/held-out split and the search (default 0)")
    p.add_argument("--holdout", type=float, default=0.3,
                   help="share of each kind of item held out (default 0.3; the dev set keeps its own held-out part)")
    p.add_argument("--limit", type=int, help="items to load from the dataset (default: all; gsm_symbolic 100)")
    p.add_argument("--train-limit", type=int, help="at most this many train items (kinds in turn)")
    p.add_argument("--holdout-limit", type=int, help="at most this many held-out items (kinds in turn)")
    p.add_argument("--concurrency", type=int, default=1, help="items in flight at once (default 1)")
    p.add_argument("--deadline", type=float, help="seconds each item's run may take (default STEPWISE_DEADLINE_S)")
    p.add_argument("--compare-banks", action="store_true",
                   help="run the chosen configuration on the held-out items once more with the other example bank "
                        "(learned against hand-written)")
    p.add_argument("--from-runs", metavar="WHERE",
                   help="the workload is the recorded runs this SQL condition on `runs` selects (those with an "
                        "expected answer from an eval row)")
    p.add_argument("--sql-url", help="a .jsonl dataset's database for the sql tool (default STEPWISE_SQL_URL)")
    p.add_argument("--docs", type=Path, help="a .jsonl dataset's folder for the docs tool (default STEPWISE_DOCS)")
    p.add_argument("--out", type=Path, help="the folder to write (default ./optimize-DATASET)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the split, the default configuration and the search space; run nothing")


def run(args: argparse.Namespace, settings: Any) -> int:
    from stepwise.evals.datasets import DatasetError
    from stepwise.evals.devdb import DevDatabaseError

    try:
        return asyncio.run(_optimize(settings, args))
    except asyncio.CancelledError:  # a SIGTERM: the optimize run and its current eval run are recorded as cancelled
        print("stepwise optimize: stopped by SIGTERM", file=sys.stderr)
        return 128 + signal.SIGTERM
    except (DatasetError, DevDatabaseError, LookupError, ValueError) as exc:
        print(f"stepwise optimize: {exc}", file=sys.stderr)
        return 2


async def _workload(settings: Any, args: argparse.Namespace) -> Any:
    from stepwise.evals import datasets

    if args.from_runs:
        from stepwise.evals.cli import _pool
        from stepwise.evals.from_runs import workload

        pool = await _pool(settings)
        try:
            return await workload(pool, args.from_runs)
        finally:
            await pool.close()
    if not args.dataset:
        raise ValueError("name a dataset, or give --from-runs 'SQL WHERE'")
    limit = args.limit or (100 if args.dataset == "gsm_symbolic" else None)
    return datasets.load(args.dataset, limit=limit, sql_url=args.sql_url or settings.sql_url,
                         docs_dir=args.docs or settings.docs_dir)


async def _optimize(settings: Any, args: argparse.Namespace) -> int:
    import msgspec
    from rich.console import Console

    from stepwise.app.runtime import Runtime
    from stepwise.evals.cli import _wire_tools, cancel_on_sigterm
    from stepwise.evals.optimize import Optimizer
    from stepwise.evals.search import Objective, split_items

    cancel_on_sigterm()
    if args.budget < 1 or args.concurrency < 1:
        raise ValueError("--budget and --concurrency must be at least 1")
    console = Console(stderr=True)
    dataset = await _workload(settings, args)
    items = list(dataset.items())
    if not items:
        raise ValueError("the workload has no items" + (f" with an expected answer ({dataset.unanswered} without)"
                                                         if getattr(dataset, "unanswered", 0) else ""))
    if getattr(dataset, "unanswered", 0):
        console.print(f"{dataset.unanswered} selected question(s) have no expected answer and are left out")
    if any(i.answer_type == "function_calls" for i in items):
        raise ValueError(f"{dataset.name} items are single function-calling turns, which no switch here changes")
    train, heldout = split_items(items, holdout=args.holdout, seed=args.seed, kind_of=lambda i: i.meta.get("kind"),
                                 part_of=lambda i: i.meta.get("split"), train_limit=args.train_limit,
                                 holdout_limit=args.holdout_limit)
    if not train:
        raise ValueError("no train items: give more items or a smaller --holdout")
    objective = Objective(max_p50_ms=args.max_p50, max_cost_per_item=args.max_cost_per_item,
                          latency_weight=args.latency_weight, cost_weight=args.cost_weight)
    out = args.out or Path(f"optimize-{dataset.name.replace(':', '-')}")
    if args.dry_run:
        return _dry_run(settings, train, heldout, objective)
    if dataset.tools:
        settings = msgspec.structs.replace(settings, **await _wire_tools(settings, dataset.tools, console))
    console.print(f"{len(train)} train and {len(heldout)} held-out items; "
                  f"starting: database, model ({settings.model})…")
    runtime = await Runtime.start(settings)
    try:
        optimizer = Optimizer(runtime, dataset, train, heldout, out, concurrency=args.concurrency,
                              deadline_s=args.deadline, say=console.print)
        outcome = await optimizer.run(objective, budget=args.budget, seed=args.seed, compare_banks=args.compare_banks)
    finally:
        await runtime.close()
    chosen = outcome.chosen
    print(f"optimize run {outcome.optimize_run_id}: chosen candidate {chosen.number} of {len(outcome.candidates)} "
          f"(train accuracy {100 * chosen.measures.accuracy:.1f}%, p50 {chosen.measures.p50_ms / 1000:.1f} s)")
    for held in outcome.heldout:
        print(f"held out, {held.label}: accuracy {100 * held.measures.accuracy:.1f}% · p50 "
              f"{held.measures.p50_ms / 1000:.1f} s · cost/item {held.measures.cost_per_item:.6f} · "
              f"eval run {held.eval_run_id}")
    print("wrote " + ", ".join(str(f) for f in outcome.files))
    return 0


def _dry_run(settings: Any, train: list, heldout: list, objective: Any) -> int:
    """What a run would do: the parts, the objective, candidate 0 and each switch's choices."""
    from stepwise.app.registry import registry_for, sample_limit
    from stepwise.evals.search import search_space, settings_defaults

    registry = registry_for(settings)
    defaults = settings_defaults(settings, registry)
    print(f"train items ({len(train)}): {', '.join(i.id for i in train)}")
    print(f"held-out items ({len(heldout)}): {', '.join(i.id for i in heldout)}")
    print(f"objective: {objective}")
    print("candidate 0 (the default): " + ", ".join(f"{k}={v}" for k, v in defaults.items()))
    space = search_space(defaults, [e.name for e in registry.experts], learned=True,
                         sample_limit=sample_limit(settings, registry))
    for name, choices in space.items():
        print(f"  {name}: {' | '.join(map(str, choices))}")
    return 0
