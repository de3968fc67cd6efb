"""A run's report, folded from its events: the HTTP reply, `stepwise ask --json`, and `GET /v1/runs/{id}` (which
folds the events read back from Postgres) all come from this one function, so they cannot disagree."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Literal

import msgspec

from stepwise.reasoning import events as ev
from stepwise.reasoning.errors import explain
from stepwise.reasoning.plan import render
from stepwise.reasoning.types import Answer, Plan, StepKind, Usage, Verdict


class StepReport(msgspec.Struct):
    id: int
    kind: StepKind
    target: str
    input: Any
    depends_on: list[int]
    status: Literal["running", "finished", "failed"]
    started_at: float
    finished_at: float | None = None
    duration_ms: float | None = None
    output: Any = None
    error: str | None = None
    verdicts: list[Verdict] = []


class UsageReport(Usage):
    """A run's model calls: how many, their tokens summed (Usage's fields) and their cost."""

    model_calls: int = 0
    cost: float = 0.0


class ErrorReport(msgspec.Struct):
    type: str
    message: str
    """For the person who asked: what failed, in their terms, and what they can do (reasoning.errors.explain)."""
    detail: str = ""
    """The error as recorded in the trace (runs.error), for whoever debugs the run."""


class RunReport(msgspec.Struct):
    run_id: uuid.UUID
    status: Literal["running", "finished", "failed", "cancelled"]
    question: str
    answer: Answer | None = None
    plan: Plan | None = None
    steps: list[StepReport] = []
    usage: UsageReport = msgspec.field(default_factory=UsageReport)
    started_at: float | None = None
    latency_ms: float | None = None
    error: ErrorReport | None = None
    replans: int = 0


def fold(events: Iterable[ev.AnyEvent]) -> RunReport:  # noqa: C901 -- one flat case per event kind
    """The report of one run from its events, in the order they were emitted."""
    events = list(events)
    started = next((e for e in events if isinstance(e, ev.RunStarted)), None)
    if started is None:
        raise ValueError("no run_started event")
    report = RunReport(run_id=started.run_id, status="running", question=started.question, started_at=started.at)
    steps: dict[int, StepReport] = {}
    failed: int | None = None  # the step that failed last (not merely cancelled): what a failed run's message names
    tool_errors: dict[int, str] = {}  # a step's last tool error, in the tool's own words
    planned = False  # whether the model wrote a plan (else it was the caller's)
    for event in events:
        match event:
            case ev.PlanReady():
                report.plan = event.plan
            case ev.StepStarted(step=step):
                steps[event.step_id] = StepReport(
                    id=step.id, kind=step.kind, target=step.target, input=step.input, depends_on=step.depends_on,
                    status="running", started_at=event.at,
                )
            case ev.StepVerified():
                steps[event.step_id].verdicts.append(Verdict(event.verifier, event.outcome, event.reason))
            case ev.StepFinished() | ev.StepFailed():
                step = steps[event.step_id]
                step.input, step.finished_at = event.input, event.at
                step.duration_ms = round((event.at - event.started_at) * 1000, 3)
                if isinstance(event, ev.StepFinished):
                    step.status, step.output = "finished", event.output
                else:
                    step.status, step.error = "failed", event.error
                    if not event.cancelled:
                        failed = event.step_id
            case ev.ToolCalled(error=error) if error is not None:
                tool_errors[event.step_id] = error
            case ev.ModelCalled():
                planned = planned or event.purpose in ("plan", "replan")
                u = report.usage
                u.model_calls += 1
                u.input_tokens += event.input_tokens
                u.output_tokens += event.output_tokens
                u.cached_tokens += event.cached_tokens
                u.cost += event.cost
            case ev.Replanned():
                report.replans += 1
            case ev.AnswerReady():
                report.answer = event.answer
            case ev.RunFinished():
                report.status, report.latency_ms = "finished", event.latency_ms
            case ev.RunFailed():
                report.status = event.status
                report.latency_ms = event.latency_ms
                step_failed = steps.get(failed) if failed is not None else None
                tool_error = tool_errors.get(failed) if failed is not None else None
                report.error = _error(event, step_failed, tool_error, planned)
    report.steps = sorted(steps.values(), key=lambda s: s.id)
    return report


def _error(event: ev.RunFailed, step: StepReport | None, tool_error: str | None, planned: bool) -> ErrorReport:
    """The recorded error, and the words for the person who asked: the failed step as they would recognise it (what it
    computed, looked up or asked) and its own reason, never a rule of plans or advice meant for the planner."""
    shown = why = None
    if step is not None:
        text = step.input
        if isinstance(text, dict):  # a tool's arguments: its one text argument (expression, query, code) if it has one
            texts = [v for v in text.values() if isinstance(v, str)]
            text = texts[0] if len(texts) == 1 else render(text)
        shown = f"{step.target}: {_clip(str(text))}"
        if event.error_type == "step_rejected":
            # once per retry
            why = "; ".join(dict.fromkeys(f"{v.verifier}: {v.reason}" for v in step.verdicts if v.outcome != "pass"))
        elif event.error_type == "tool_error":
            why = tool_error
        why = why or (step.error or "").split(": ", 1)[-1] or None  # the step's error without its kind
    return ErrorReport(event.error_type, explain(event.error_type, event.error, shown, why and _clip(why, 300),
                                                 planned=planned), event.error)


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
