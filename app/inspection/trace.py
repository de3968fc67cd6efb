"""`stepwise trace`: a recorded run's events folded (the same `reasoning.report.fold` that answers
`GET /v1/runs/{id}`) and drawn as a tree of its steps, with timings and verdicts; no model is loaded."""

from __future__ import annotations

from collections.abc import Set as AbstractSet

import msgspec

from stepwise.app.inspection.common import connect, resolve_run
from stepwise.app.rendering import brief, failed, step_result, tree, verdict_marks
from stepwise.app.settings import Settings
from stepwise.app.trace import load_events, step_needs
from stepwise.reasoning import events as ev
from stepwise.reasoning.report import RunReport, StepReport, fold
from stepwise.reasoning.types import Step


async def show_trace(settings: Settings, ref: str) -> int:
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
        return f"[{sid}] {planned.target}: {brief(planned)}  ({'kept from the plan before' if kept else 'not run'})"
    result = step_result(step)
    timing = f"at {(step.started_at - t0) * 1000:.1f} ms for {step.duration_ms or 0:.1f} ms"
    served = ""
    if c is not None:
        who = ", ".join(c.experts + [t for t in c.tools if t != step.target or step.kind != "tool"])
        tokens = f", {c.model_calls} call(s), {c.input_tokens} in / {c.output_tokens} out" if c.model_calls else ""
        served = f" · {who}{tokens}" if who or tokens else ""
    checks = verdict_marks(step.verdicts, reasons=True)
    after = f" (also after {', '.join(map(str, also))})" if also else ""
    return f"[{sid}] {step.target}: {brief(step)} → {result} · {timing}{served}{after} {checks}".rstrip()
