"""`stepwise eval`: run a dataset in a mode (`stepwise eval gsm_symbolic --limit 20 --mode direct`), write a report
of eval runs (`stepwise eval report 3 4 5 --out DIR`), or compare two (`stepwise eval compare 3 4`).

Kept light at import: app/cli.py imports it to register the command; the runtime, datasets and matplotlib load only
when the command runs."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from stepwise.evals.modes import MODES


def add_parser(commands: Any) -> None:
    p = commands.add_parser("eval", help="run a dataset through the system and record the results; "
                                         "`eval report RUN…`; `eval compare A B`",
                            description="stepwise eval DATASET [--mode M --limit N --concurrency C] "
                                        "| eval report RUN… [--out DIR] | eval compare A B")
    p.add_argument("dataset", help="dev (the bundled dev set, its tools wired), gsm_symbolic, game24, bfcl_simple, "
                                   "bfcl_multiple, bfcl_parallel, bfcl_parallel_multiple, a .jsonl file of "
                                   "{id, question, answer, answer_type}; or `report` / `compare`")
    p.add_argument("runs", nargs="*", type=int, help="report: eval run ids; compare: A (the baseline) and B")
    p.add_argument("--mode", choices=MODES, default="orchestrated",
                   help="direct: one model call (two for one function call among several functions); "
                        "orchestrated: the full system; "
                        "sequential: the planned steps one at a time")
    p.add_argument("--limit", type=int, help="items to run (default 20; dev: all of the chosen split)")
    p.add_argument("--offset", type=int, default=0, help="skip this many items first")
    p.add_argument("--concurrency", type=int, default=1, help="items in flight at once (default 1)")
    p.add_argument("--seed", type=int, default=42, help="gsm_symbolic: the generator's seed (default 42)")
    p.add_argument("--split", choices=("dev", "heldout"), help="dev: only this part of the set (default both)")
    p.add_argument("--kind", help="dev: only this kind of question (arithmetic, comparison, sql, docs, game24)")
    p.add_argument("--deadline", type=float, help="seconds each item's run may take (default STEPWISE_DEADLINE_S)")
    p.add_argument("--sql-url", help="a .jsonl dataset's database for the sql tool (default STEPWISE_SQL_URL)")
    p.add_argument("--docs", type=Path, help="a .jsonl dataset's folder for the docs tool (default STEPWISE_DOCS)")
    p.add_argument("--out", type=Path, default=Path("eval-report"),
                   help="report: the folder to write (default ./eval-report)")


def run(args: argparse.Namespace, settings: Any) -> int:
    from stepwise.evals.datasets import DatasetError
    from stepwise.evals.devdb import DevDatabaseError

    try:
        if args.dataset == "report":
            return asyncio.run(_report(settings, args.runs, args.out))
        if args.dataset == "compare":
            return asyncio.run(_compare(settings, args.runs))
        return asyncio.run(_eval(settings, args))
    except asyncio.CancelledError:  # a SIGTERM (see `cancel_on_sigterm`): the run is recorded as cancelled
        print("stepwise eval: stopped by SIGTERM; the items done so far are recorded", file=sys.stderr)
        return 128 + signal.SIGTERM
    except (DatasetError, DevDatabaseError, LookupError, NotImplementedError, ValueError) as exc:
        print(f"stepwise eval: {exc}", file=sys.stderr)
        return 2


def cancel_on_sigterm() -> None:
    """A SIGTERM (a CI job's timeout, `kill`) cancels the running task as Ctrl-C does: the eval run is then closed as
    `cancelled`, its items and traces written, rather than left `running` by a process that died mid-item."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def _pool(settings: Any):
    from stepwise.app import db
    from stepwise.app.migrate import migrate

    url = await asyncio.to_thread(db.database_url, settings.database_url, settings.data_dir)
    pool = await db.create_pool(url, max_size=2)
    async with pool.acquire() as conn:
        await migrate(conn)
    return pool


async def _report(settings: Any, runs: list[int], out: Path) -> int:
    from stepwise.evals import report, store

    if not runs:
        raise ValueError("report: name one or more eval run ids")
    pool = await _pool(settings)
    try:
        summaries = await store.summaries(pool, runs)
        failures = {r: await store.failures(pool, r) for r in runs}
    finally:
        await pool.close()
    out.mkdir(parents=True, exist_ok=True)
    images = report.plot(summaries, out)
    (out / "report.md").write_text(report.markdown(summaries, failures, images))
    for s in summaries:
        print(report.summary_line(s))
    print(f"wrote {out / 'report.md'} and {', '.join(p.name for p in images)}")
    return 0


async def _compare(settings: Any, runs: list[int]) -> int:
    from stepwise.evals import report, store

    if len(runs) != 2:
        raise ValueError("compare: name two eval run ids, the baseline first")
    pool = await _pool(settings)
    try:
        a, b = await store.summaries(pool, runs)
        better, worse = await store.flips(pool, a.eval_run_id, b.eval_run_id)
    finally:
        await pool.close()
    print(report.compare_text(a, b, better, worse))
    return 0


async def _eval(settings: Any, args: argparse.Namespace) -> int:
    import msgspec
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from stepwise.app.runtime import Runtime
    from stepwise.evals import datasets, report
    from stepwise.evals.runner import run_eval

    cancel_on_sigterm()
    if args.runs:
        raise ValueError(f"unexpected arguments {args.runs}: `stepwise eval DATASET [options]`")
    if args.concurrency < 1 or (args.limit is not None and args.limit < 1):
        raise ValueError("--limit and --concurrency must be at least 1")
    limit = args.limit or (None if args.dataset == "dev" else 20)
    dataset = datasets.load(args.dataset, limit=limit, offset=args.offset, seed=args.seed,
                            sql_url=args.sql_url or settings.sql_url, docs_dir=args.docs or settings.docs_dir,
                            split=args.split, kind=args.kind)
    items = list(dataset.items())
    first = items[0] if items else None
    if first is None:
        raise ValueError(f"{args.dataset} has no items from offset {args.offset}")
    if first.answer_type == "function_calls" and args.mode != "direct":
        raise ValueError(f"{args.dataset} items are single function-calling turns: run them with --mode direct")
    console = Console(stderr=True)
    if dataset.tools:
        settings = msgspec.structs.replace(settings, **await _wire_tools(settings, dataset.tools, console))
    console.print(f"starting: database, model ({settings.model})…")
    runtime = await Runtime.start(settings)
    right = done = 0
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[score]}"), TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task(f"{dataset.name} · {args.mode}", total=len(items), score="")

            def on_item(item, row) -> None:
                nonlocal right, done
                done += 1
                right += bool(row["correct"])
                progress.update(task, advance=1, score=f"{right}/{done} correct")

            summary = await run_eval(runtime, dataset, args.mode, concurrency=args.concurrency, limit=limit,
                                     deadline_s=args.deadline, on_item=on_item,
                                     config={"offset": args.offset, "seed": args.seed, "split": args.split,
                                             "kind": args.kind, "argv": sys.argv[1:],
                                             "tools": sorted(runtime.engine.tools)})
    finally:
        await runtime.close()
    print(report.summary_line(summary))
    return 0 if summary.status == "finished" else 1


async def _wire_tools(settings: Any, tools: dict[str, Any], console: Any) -> dict[str, Any]:
    """A dataset's tools as settings: a bundled database (`sql_file`) is loaded into a database of its own on the
    eval's Postgres and read through a read-only role; the python tool is offered only if its sandbox starts here."""
    from stepwise.app import db
    from stepwise.evals import devdb

    tools = dict(tools)
    sql_file = tools.pop("sql_file", None)
    if sql_file is not None:
        console.print(f"loading {sql_file.name} into the database {devdb.DATABASE} (once per version of the file)…")
        admin_url = await asyncio.to_thread(db.database_url, settings.database_url, settings.data_dir)
        tools["sql_url"] = await devdb.reader_url(admin_url, sql_file)
    if tools.get("python_tool"):
        # the sandbox is checked by making the tool, as the runtime will
        from stepwise.tools.python_tool import PythonTool

        try:
            await asyncio.to_thread(PythonTool)
        except Exception as exc:  # whatever the sandbox lacks, the eval runs without the python tool
            console.print(f"the python tool is off: {type(exc).__name__}: {exc}")
            tools["python_tool"] = False
    return tools
