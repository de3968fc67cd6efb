"""`stepwise replay`: a recorded question run again (or one recorded step, as a one-step imperative
plan) through `Runtime.ask`, and what changed."""

from __future__ import annotations

import sys

import msgspec

from stepwise.app.inspection.common import InspectError, connect, resolve_run
from stepwise.app.rendering import Progress, brief, step_result
from stepwise.app.settings import Settings
from stepwise.app.trace import load_events
from stepwise.reasoning import events as ev
from stepwise.reasoning.report import RunReport, StepReport, fold
from stepwise.reasoning.types import Plan, Step


async def replay_run(settings: Settings, ref: str, step_id: int | None, same_plan: bool) -> int:
    from stepwise.app.runtime import Runtime  # loads the model library only here

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
        recorded = {"id": step.id, "kind": step.kind, "target": step.target, "input": step.input, "depends_on": []}
        try:
            return Plan(steps=[msgspec.convert(recorded, Step)])
        except msgspec.ValidationError as exc:
            raise InspectError(f"step {step_id}'s recorded input is not a {step.kind} step's: {exc}") from None
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
            step_lines.append(f"  [{sid}] {'removed' if gone else 'added'}: {s.target}: {brief(s)} → {step_result(s)}")
            changed += 1
            continue
        what = [f"{name} {x} → {y}" for name, x, y in (
            ("target", o.target, n.target), ("input", brief(o), brief(n)), ("output", step_result(o), step_result(n)),
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
