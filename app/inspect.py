"""`stepwise runs`, `trace`, `prune` and `replay`: recorded runs read back from Postgres on the command line.

`runs` reads the `run_summary` view; `trace` folds a run's events (the same `reasoning.report.fold` that answers
`GET /v1/runs/{id}`) and draws its DAG; neither loads a model. `prune` deletes old runs' trace rows in one
transaction. `replay` runs a recorded question again (or one recorded step, as a one-step imperative plan) through
`Runtime.ask` and prints what changed."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import uuid
from collections.abc import Set as AbstractSet
from datetime import UTC, timedelta
from typing import Any

import asyncpg
import msgspec

from app import db
from app.migrate import migrate
from app.rendering import call_shown, failed, step_result, verdict_marks
from app.settings import Settings
from app.trace import RunLookupError, find_run, load_events, step_needs
from reasoning import events as ev
from reasoning.plan import render
from reasoning.report import RunReport, StepReport, fold
from reasoning.types import Plan, Step

COMMANDS = ("runs", "trace", "prune", "replay")
TRACE_TABLES = ("events", "steps", "model_calls", "tool_calls", "verdicts")  # deleted before `runs`
_AGE = re.compile(r"^(\d+(?:\.\d+)?)([dhms])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


class InspectError(Exception):
    """A request the trace cannot answer (no such run, an ambiguous id, a bad age); printed, exit status 1."""


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
                return asyncio.run(_runs(settings, args.limit))
            case "trace":
                return asyncio.run(_trace(settings, args.run_id))
            case "prune":
                return asyncio.run(_prune(settings, args.older_than, args.dry_run))
            case "replay":
                return asyncio.run(_replay(settings, args.run_id, args.step, args.same_plan))
    except InspectError as exc:
        print(f"stepwise: {exc}", file=sys.stderr)
        return 1
    raise ValueError(f"not an inspect command: {args.command}")


def parse_age(text: str) -> timedelta:
    """'30d', '12h', '45m' (or '90s') as a timedelta."""
    match = _AGE.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age like 30d, 12h or 45m")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def format_age(age: timedelta) -> str:
    """The largest unit that states `age` exactly: 30d, 36h, 90m, 45s."""
    seconds = age.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


async def connect(settings: Settings) -> asyncpg.Connection:
    """The configured database, migrated (so the views exist on a database older than them)."""
    url = await asyncio.to_thread(db.database_url, settings.database_url, settings.data_dir)
    conn = await db.connect(url, application_name="stepwise-inspect")
    try:
        await migrate(conn)
    except BaseException:
        await conn.close()
        raise
    return conn


async def resolve_run(conn: asyncpg.Connection, text: str) -> uuid.UUID:
    """A full run id, or the one run whose id starts with `text` (app.trace.find_run's rule)."""
    try:
        return await find_run(conn, text)
    except RunLookupError as exc:
        raise InspectError(str(exc)) from None


# ---- runs


async def _runs(settings: Settings, limit: int) -> int:
    conn = await connect(settings)
    try:
        rows = await conn.fetch("SELECT * FROM run_summary ORDER BY started_at DESC LIMIT $1", limit)
    finally:
        await conn.close()
    print(format_runs(rows))
    return 0


def format_runs(rows: list[Any]) -> str:
    lines = [f"{'run':<8}  {'started (UTC)':<19}  {'status':<9} {'latency':>8} {'steps':>5} "
             f"{'tokens in/out':>13} {'cost':>8}  question"]
    for r in rows:
        latency = f"{float(r['latency_ms']) / 1000:.1f} s" if r["latency_ms"] is not None else "-"
        steps = f"{r['steps']}" + (f"!{r['failed_steps']}" if r["failed_steps"] else "")
        question = r["question"] if len(r["question"]) <= 60 else r["question"][:59] + "…"
        lines.append(
            f"{str(r['run_id'])[:8]:<8}  {r['started_at'].astimezone(UTC):%Y-%m-%d %H:%M:%S}  "
            f"{r['status']:<9} {latency:>8} "
            f"{steps:>5} {str(r['input_tokens']) + '/' + str(r['output_tokens']):>13} {r['cost']:>8.4g}  {question}"
        )
    return "\n".join(lines)


# ---- trace


async def _trace(settings: Settings, ref: str) -> int:
    conn = await connect(settings)
    try:
        events = await load_events(conn, await resolve_run(conn, ref))
    finally:
        await conn.close()
    print(render_trace(events))
    return 0


class _Calls(msgspec.Struct):
    """What served one step, gathered from its ModelCalled and ToolCalled events."""

    experts: list[str] = []
    tools: list[str] = []
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


def render_trace(events: list[ev.AnyEvent]) -> str:
    """The run's answer and headline (as `stepwise ask` prints them), then its model calls and steps in time: each
    step under the step it waited for last, with its start offset, duration, what served it and its verdicts. A
    repaired plan starts a new tree after the replan, so a step's attempts under each plan are all shown."""
    from app.cli import tree  # app.cli imports this module to register the commands

    report = fold(events)
    t0 = report.started_at or events[0].at
    segments: list[list[ev.AnyEvent]] = [[]]
    for event in events[1:]:
        if isinstance(event, ev.Replanned):
            segments.append([])
        segments[-1].append(event)
    planned = any(isinstance(e, ev.ModelCalled) and e.purpose == "plan" for e in events)
    lines = [*tree(msgspec.structs.replace(report, steps=[])).splitlines(), f"question: {report.question}"]
    after: list[str] = []
    done_before: set[int] = set()
    for n, segment in enumerate(segments):
        calls: dict[int, _Calls] = {}
        for event in segment:
            match event:
                case ev.ModelCalled(step_id=None):
                    start_ms = (event.at - t0) * 1000 - event.latency_ms
                    failed_call = f" {failed(event.error)}" if event.error else ""
                    (after if event.purpose == "compose" else lines).append(
                        f"{event.purpose:<8} at {start_ms:.1f} ms for {event.latency_ms:.1f} ms · {event.expert} · "
                        f"{event.input_tokens} in ({event.cached_tokens} cached) / "
                        f"{event.output_tokens} out{failed_call}")
                case ev.ModelCalled(step_id=int() as step_id):
                    c = calls.setdefault(step_id, _Calls())
                    if event.error is None and event.expert not in c.experts:
                        c.experts.append(event.expert)
                    c.model_calls += 1
                    c.input_tokens += event.input_tokens
                    c.output_tokens += event.output_tokens
                case ev.ToolCalled():
                    c = calls.setdefault(event.step_id, _Calls())
                    if event.tool not in c.tools:
                        c.tools.append(event.tool)
                case ev.Replanned():
                    lines.append(f"replanned ({event.replan}) after step {event.failed_step} failed: {event.reason}")
        part = fold([events[0], *segment])
        if n:
            lines.append(f"steps of the repaired plan {n + 1}:")
        else:
            title = "steps" if planned else "steps (the caller's plan)"
            lines.append(f"{title}:" if len(segments) == 1 else f"{title}, plan 1:")
        lines += _step_tree(part, calls, t0, done_before) or ["   (none: no plan was made)"]
        done_before |= {s.id for s in part.steps if s.status == "finished"}
    return "\n".join(lines + after)


def _step_tree(report: RunReport, calls: dict[int, _Calls], t0: float,
               kept: AbstractSet[int] = frozenset()) -> list[str]:
    planned = {s.id: s for s in report.plan.steps} if report.plan else {}
    ran = {s.id: s for s in report.steps}
    ids = sorted(set(planned) | set(ran))
    parent: dict[int, int | None] = {}
    also: dict[int, list[int]] = {}
    for sid in ids:
        step = planned.get(sid)
        needs = sorted(step_needs(step) if step else set(ran[sid].depends_on) - {sid})
        needs = [n for n in needs if n in ran or n in planned]
        # a step hangs under the need that finished last: the one it actually waited for
        last = max(needs, key=lambda n: (ran[n].finished_at or 0) if n in ran else 0, default=None)
        parent[sid] = last
        also[sid] = [n for n in needs if n != last]
    children: dict[int | None, list[int]] = {}
    for sid in ids:
        children.setdefault(parent[sid], []).append(sid)
    lines: list[str] = []
    drawn: set[int] = set()

    def draw(sid: int, prefix: str, last: bool) -> None:
        drawn.add(sid)
        line = _step_line(sid, ran.get(sid), planned.get(sid), calls.get(sid), t0, also[sid], sid in kept)
        lines.append(f"{prefix}{'└─' if last else '├─'} {line}")
        kids = [k for k in children.get(sid, []) if k not in drawn]
        for i, kid in enumerate(kids):
            draw(kid, prefix + ("   " if last else "│  "), i == len(kids) - 1)

    # an invalid plan's cycle has no root: one of its steps is drawn at the top level, the rest under it
    roots = list(children.get(None, []))
    covered = _reachable(children, roots)
    for sid in ids:
        if sid not in covered:
            roots.append(sid)
            covered |= _reachable(children, [sid])
    for i, sid in enumerate(roots):
        draw(sid, "", i == len(roots) - 1)
    return lines


def _reachable(children: dict[int | None, list[int]], starts: list[int]) -> set[int]:
    seen: set[int] = set()
    todo = list(starts)
    while todo:
        sid = todo.pop()
        if sid not in seen:
            seen.add(sid)
            todo += children.get(sid, [])
    return seen


def _step_line(sid: int, step: StepReport | None, planned: Step | None, c: _Calls | None, t0: float, also: list[int],
               kept: bool) -> str:
    if step is None:
        if planned is None:  # not reached: the tree draws the steps that ran or were planned
            raise ValueError(f"step {sid} neither ran nor was planned")
        return f"[{sid}] {planned.target}: {_shown(planned)}  ({'kept from the plan before' if kept else 'not run'})"
    result = step_result(step)
    timing = f"at {(step.started_at - t0) * 1000:.1f} ms for {step.duration_ms or 0:.1f} ms"
    served = ""
    if c is not None:
        who = ", ".join(c.experts + [t for t in c.tools if t != step.target or step.kind != "tool"])
        tokens = f", {c.model_calls} call(s), {c.input_tokens} in / {c.output_tokens} out" if c.model_calls else ""
        served = f" · {who}{tokens}" if who or tokens else ""
    checks = verdict_marks(step.verdicts, reasons=True)
    after = f" (also after {', '.join(map(str, also))})" if also else ""
    return f"[{sid}] {step.target}: {_shown(step)} → {result} · {timing}{served}{after} {checks}".rstrip()


def _shown(step: Step | StepReport) -> str:
    text = call_shown(step.kind, step.target, step.input)
    text = render(step.input) if text is None else text
    return text if len(text) <= 80 else text[:79] + "…"


# ---- prune


class PruneResult(msgspec.Struct):
    runs: int
    deleted: dict[str, int]
    kept_referenced: dict[str, int]  # table → runs kept because a row of that table references them


async def _prune(settings: Settings, age: timedelta, dry_run: bool) -> int:
    conn = await connect(settings)
    try:
        result = await prune(conn, age, dry_run)
    finally:
        await conn.close()
    verb = "would delete" if dry_run else "deleted"
    print(f"{verb} {result.runs} run(s) started more than {format_age(age)} ago")
    for table, count in result.deleted.items():
        print(f"  {table:<12} {count:>8}")
    for table, count in result.kept_referenced.items():
        print(f"kept {count} run(s) that {table} references")
    return 0


async def prune(conn: asyncpg.Connection, age: timedelta, dry_run: bool = False) -> PruneResult:
    """Delete every trace row of the runs started before now - `age`, in one transaction (rolled back on a dry run).
    A run still marked running is kept until its deadline has passed too. Nothing outside the trace tables is
    touched: a run that a table of yours references by a foreign key is kept (eval_items has no such key: eval rows
    outlive the traces they point at)."""
    references_ = await conn.fetch(
        "SELECT c.conrelid::regclass::text AS tbl, a.attname AS col FROM pg_constraint c"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
        " WHERE c.contype = 'f' AND c.confrelid = 'runs'::regclass AND cardinality(c.conkey) = 1"
    )
    references_ = [r for r in references_ if r["tbl"] not in TRACE_TABLES]
    tx = conn.transaction()
    await tx.start()
    try:
        old = [r["run_id"] for r in await conn.fetch(
            "SELECT run_id FROM runs WHERE started_at < now() - $1::interval"
            " AND (status <> 'running' OR started_at + coalesce(deadline_s, 0) * interval '1 "
            "second' < now() - $1::interval)"
            " FOR UPDATE", age)]
        kept: dict[str, int] = {}
        for ref in references_:
            held = {r["id"] for r in await conn.fetch(
                f'SELECT DISTINCT {_ident(ref["col"])} AS id FROM {ref["tbl"]} WHERE '
                f'{_ident(ref["col"])} = ANY($1::uuid[])', old)}
            if held:
                kept[ref["tbl"]] = len(held)
                old = [run_id for run_id in old if run_id not in held]
        deleted = {}
        for table in (*TRACE_TABLES, "runs"):
            status = await conn.execute(f"DELETE FROM {table} WHERE run_id = ANY($1::uuid[])", old)
            deleted[table] = int(status.split()[-1])
    except BaseException:
        await tx.rollback()
        raise
    await (tx.rollback() if dry_run else tx.commit())
    return PruneResult(runs=deleted["runs"], deleted=deleted, kept_referenced=kept)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# ---- replay


async def _replay(settings: Settings, ref: str, step_id: int | None, same_plan: bool) -> int:
    from app.cli import Progress
    from app.runtime import Runtime  # loads the model library only here

    conn = await connect(settings)
    try:
        events = await load_events(conn, await resolve_run(conn, ref))
    finally:
        await conn.close()
    old = fold(events)
    deadline = events[0].deadline_s if isinstance(events[0], ev.RunStarted) else None
    plan = replay_plan(old, step_id, same_plan)
    print("starting: database, model…", file=sys.stderr)
    runtime = await Runtime.start(settings)
    try:
        new = await runtime.ask(old.question, deadline, Progress(), plan=plan)
    finally:
        await runtime.close()
    print(diff_reports(old, new, step_id))
    return 0 if new.status == "finished" else 1


def replay_plan(old: RunReport, step_id: int | None, same_plan: bool) -> Plan | None:
    """None (plan afresh), the recorded plan, or a one-step plan: step `step_id` with its recorded resolved input."""
    if step_id is not None:
        step = next((s for s in old.steps if s.id == step_id), None)
        if step is None:
            ran = ", ".join(str(s.id) for s in old.steps) or "none"
            raise InspectError(f"run {old.run_id} has no recorded step {step_id} (steps: {ran})")
        return Plan(steps=[Step(id=step.id, kind=step.kind, target=step.target, input=step.input, depends_on=[])])
    if same_plan:
        if old.plan is None:
            raise InspectError(f"run {old.run_id} recorded no plan")
        return old.plan
    return None


def diff_reports(old: RunReport, new: RunReport, step_id: int | None = None) -> str:
    """What changed between a run and its replay: answer, steps (all, or only `step_id`), verdicts, latency, usage."""
    lines = [f"replay of {old.run_id} ({old.status}) → run {new.run_id} ({new.status})"]
    a, b = _answer(old), _answer(new)
    alone = f" (composed from step {step_id} alone)" if step_id is not None else ""
    lines.append(f"answer:   {a!r} (unchanged){alone}" if a == b else f"answer:   {a!r} → {b!r}{alone}")
    if new.error is not None and new.error != old.error:
        lines.append(f"error:    {new.error.type}: {new.error.message}")
    olds = {s.id: s for s in old.steps}
    news = {s.id: s for s in new.steps}
    ids = [step_id] if step_id is not None else sorted(set(olds) | set(news))
    changed = 0
    step_lines, verdict_lines = [], []
    for sid in ids:
        o, n = olds.get(sid), news.get(sid)
        if o is None or n is None:
            gone, s = o is not None, o or n
            if s is None:  # not reached: ids are the steps of one run or the other
                continue
            step_lines.append(f"  [{sid}] {'removed' if gone else 'added'}: {s.target}: {_shown(s)} → {step_result(s)}")
            changed += 1
            continue
        what = [f"{name} {x} → {y}" for name, x, y in (
            ("target", o.target, n.target), ("input", _shown(o), _shown(n)), ("output", step_result(o), step_result(n)),
        ) if x != y]
        changed += bool(what)
        step_lines.append(f"  [{sid}] {o.target}: " + ("; ".join(what) if what else f"unchanged ({step_result(n)})"))
        vo, vn = _verdicts(o), _verdicts(n)
        if vo != vn:
            verdict_lines.append(f"  [{sid}] {vo or '-'} → {vn or '-'}")
    scope = f"step {step_id} only" if step_id is not None else f"{len(old.steps)} → {len(new.steps)}"
    lines.append(f"steps:    {scope}, {changed} changed")
    lines += step_lines
    lines.append("verdicts: unchanged" if not verdict_lines else "verdicts:")
    lines += verdict_lines
    lo, ln = (old.latency_ms or 0) / 1000, (new.latency_ms or 0) / 1000
    lines.append(f"latency:  {lo:.1f} s → {ln:.1f} s ({ln - lo:+.1f} s)")
    uo, un = old.usage, new.usage
    lines.append(f"tokens:   {uo.input_tokens} in ({uo.cached_tokens} cached) / {uo.output_tokens} out → "
                 f"{un.input_tokens} in ({un.cached_tokens} cached) / {un.output_tokens} out "
                 f"in {uo.model_calls} → {un.model_calls} model call(s)")
    if uo.cost or un.cost:
        lines.append(f"cost:     {uo.cost:.6g} → {un.cost:.6g}")
    return "\n".join(lines)


def _answer(report: RunReport) -> str | None:
    return report.answer.text if report.answer else None


def _verdicts(step: StepReport) -> str:
    return " ".join(f"{v.verifier}:{v.outcome}" for v in step.verdicts)
