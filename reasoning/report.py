"""A run's report, folded from its events: the HTTP reply, `stepwise ask --json`, and `GET /v1/runs/{id}` (which
folds the events read back from Postgres) all come from this one function, so they cannot disagree."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Literal

import msgspec

from reasoning import events as ev
from reasoning.types import Answer, Plan, Verdict


class StepReport(msgspec.Struct):
    id: int
    kind: str
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


class UsageReport(msgspec.Struct):
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0


class ErrorReport(msgspec.Struct):
    type: str
    message: str


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


def fold(events: Iterable[ev.AnyEvent]) -> RunReport:
    """The report of one run from its events, in the order they were emitted."""
    report: RunReport | None = None
    steps: dict[int, StepReport] = {}
    for event in events:
        match event:
            case ev.RunStarted():
                report = RunReport(run_id=event.run_id, status="running", question=event.question, started_at=event.at)
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
            case ev.ModelCalled():
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
                report.status = "cancelled" if event.error_type == "cancelled" else "failed"
                report.latency_ms = event.latency_ms
                report.error = ErrorReport(event.error_type, event.error)
    if report is None:
        raise ValueError("no run_started event")
    report.steps = sorted(steps.values(), key=lambda s: s.id)
    return report
