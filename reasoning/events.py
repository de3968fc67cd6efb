"""Run events: one tagged union, past tense. The same objects feed the HTTP reply, the logs and the trace tables.

`at` is wall-clock seconds since the epoch (time.time()); durations come from a monotonic clock.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal, Protocol

import msgspec

from stepwise.reasoning.types import Answer, Outcome, Plan, Step, StepKind

PlanPurpose = Literal["plan", "replan"]
Purpose = Literal["plan", "replan", "expert", "verify", "compose", "repair"]
"""What a model call was for (ModelCalled.purpose): planning, a step's expert, a verifier, the composer, a repair."""

CANCELLED = "cancelled"
"""The error (RunFailed: the error type) of a run, step or model call that was cancelled rather than failing itself."""


class _Cancellable:
    """An event whose `error` may say it was cancelled by its run (a deadline, another step's failure, the client
    going away) rather than failing itself: a cancelled model call is no fault of its backend, a cancelled step not
    the step that failed the run."""

    __slots__ = ()
    error: str | None

    @property
    def cancelled(self) -> bool:
        return self.error == CANCELLED


class Event(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=False):
    run_id: uuid.UUID
    at: float


class RunStarted(Event, tag="run_started"):
    question: str
    deadline_s: float


class PlanReady(Event, tag="plan_ready"):
    plan: Plan


class PlanProgressed(Event, tag="plan_progressed"):
    """The planner is still writing: the tokens of its (first) sample so far, and the line it has just finished, if
    one — a step as written. Emitted for each finished line and, between lines, at most once a second, so a client
    or `stepwise ask` shows a planning call of tens of seconds alive without a trace row per token."""

    purpose: PlanPurpose
    tokens: int
    line: str | None = None


class ProgramsSampled(Event, tag="programs_sampled"):
    """The planner's sampled programs and the vote between them: each program's text, its value where its steps
    could be computed before the run (tools that may run again freely: arithmetic, read-only queries, sandboxed
    programs), and its compile error if it had one."""

    programs: list[str]
    values: list[Any]
    errors: list[str | None]
    chosen: int  # index into programs
    votes: int  # samples that agreed with the chosen one
    worked: float | None = None  # a worked solution's final number, when one was asked for (no majority)
    worked_sampled: list[float | None] = []  # sampled worked solutions' numbers (STEPWISE_PLAN_WORKED_SAMPLES)


class StepStarted(Event, tag="step_started"):
    step_id: int
    step: Step  # as planned; a streamed plan's steps start before the plan is complete


class ModelCalled(Event, _Cancellable, tag="model_called"):
    """One call to one expert, successful or not (`error` says why not; a failed call has no tokens)."""

    step_id: int | None
    purpose: Purpose
    expert: str
    backend: str
    provider: str
    request_model: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    latency_ms: float
    ttft_ms: float | None = None
    cost: float = 0.0
    finish_reason: str | None = None
    operation: str = "chat"
    rerouted_from: str | None = None  # the expert that failed this call before this one took it
    error: str | None = None  # "<kind>: <message>", as the trace shows it
    error_type: str | None = None  # the error's kind (reasoning.errors; "cancelled"), for whoever counts them


class ToolCalled(Event, tag="tool_called"):
    step_id: int
    tool: str
    args: Any
    result: Any
    error: str | None
    latency_ms: float


class StepVerified(Event, tag="step_verified"):
    step_id: int
    verifier: str
    outcome: Outcome
    reason: str


class _StepEnded(Event):
    """What both endings of a step record: the step itself with its resolved input, and when it started."""

    step_id: int
    kind: StepKind
    target: str
    input: Any
    depends_on: list[int]
    started_at: float


class StepFinished(_StepEnded, tag="step_finished"):
    output: Any


class StepFailed(_StepEnded, _Cancellable, tag="step_failed"):
    error: str


class StepEscalated(Event, tag="step_escalated"):
    """A cascade's cheaper expert answered an expert step and its answer was not kept (a verifier did not pass it,
    or it found nothing in the documents): the step is asked again of `to_expert`, its planned expert."""

    step_id: int
    from_expert: str
    to_expert: str
    reason: str


class Replanned(Event, tag="replanned"):
    """A step failed for good; the planner was asked for a repaired plan. Completed steps it keeps are not re-run."""

    failed_step: int
    reason: str
    replan: int  # 1 for the first repair of this run


class AnswerReady(Event, tag="answer_ready"):
    answer: Answer


class RunFinished(Event, tag="run_finished"):
    latency_ms: float


class RunFailed(Event, tag="run_failed"):
    error_type: str
    error: str
    latency_ms: float

    @property
    def status(self) -> Literal["cancelled", "failed"]:
        """How the run ended: cancelled (by DELETE /v1/runs/{id} or the client going away), else failed."""
        return "cancelled" if self.error_type == CANCELLED else "failed"


AnyEvent = (
    RunStarted | PlanProgressed | PlanReady | ProgramsSampled | StepStarted | ModelCalled | ToolCalled | StepVerified
    | StepFinished | StepFailed | StepEscalated | Replanned | AnswerReady | RunFinished | RunFailed
)


class EventSink(Protocol):
    """Receives every event of a run. `emit` must not block: sinks that do I/O queue the event."""

    def emit(self, event: AnyEvent) -> None: ...


class FanOut:
    """Sends each event to several sinks, in order."""

    __slots__ = ("_sinks",)

    def __init__(self, *sinks: EventSink) -> None:
        self._sinks = sinks

    def emit(self, event: AnyEvent) -> None:
        for sink in self._sinks:
            sink.emit(event)


class Recorder:
    """Keeps a run's events in memory, in order (the source of the HTTP reply)."""

    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: list[AnyEvent] = []

    def emit(self, event: AnyEvent) -> None:
        self.events.append(event)


class PlanProgress:
    """An `on_progress` target for a planning call: counts the text deltas (a streaming server sends about one token
    each) and emits PlanProgressed for each finished line, and at most every `every_s` seconds in between."""

    __slots__ = ("_sink", "_run_id", "_purpose", "_every_s", "_tokens", "_line", "_last")

    def __init__(self, sink: EventSink, run_id: uuid.UUID, purpose: PlanPurpose, every_s: float = 1.0) -> None:
        self._sink, self._run_id, self._every_s = sink, run_id, every_s
        self._purpose: PlanPurpose = purpose
        self._tokens = 0
        self._line = ""
        self._last = time.monotonic()

    def __call__(self, delta: str) -> None:
        self._tokens += 1
        *finished, self._line = (self._line + delta).split("\n")
        for line in filter(str.strip, finished):
            self._emit(line.strip())
        if not finished and time.monotonic() - self._last >= self._every_s:
            self._emit(None)

    def _emit(self, line: str | None) -> None:
        self._last = time.monotonic()
        self._sink.emit(PlanProgressed(run_id=self._run_id, at=time.time(), purpose=self._purpose, tokens=self._tokens,
                                       line=line))
