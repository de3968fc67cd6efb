"""The router: which expert serves a call. A target is an expert's name or a skill; candidates are ordered by
name (that expert first, then others sharing a skill with it) or by load among the skill's experts, then the
default. Each expert has a concurrency limit; an expert that is down or overloaded hands the call to the next
candidate, and the trace records both the failed call and the reroute. Every model call's event is emitted here."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TypeVar, overload

from stepwise.reasoning.constraints import ConstraintViolated, decode_output
from stepwise.reasoning.context import RunContext
from stepwise.reasoning.errors import BackendError, ReasoningError
from stepwise.reasoning.events import CANCELLED, ModelCalled, Purpose
from stepwise.reasoning.types import Completion, Constraint, Expert, Message, Sampling, Usage

T = TypeVar("T")


class Router:
    def __init__(self, experts: Mapping[str, Expert], default: str) -> None:
        if default not in experts:
            raise ValueError(f"the default expert {default!r} is not among {sorted(experts)}")
        self.experts = dict(experts)
        self.default = default
        self._limits = {name: asyncio.Semaphore(e.max_concurrency) for name, e in experts.items()}
        self.in_flight = dict.fromkeys(experts, 0)  # waiting for a slot or running
        self.violations = dict.fromkeys(experts, 0)  # outputs that broke their constraint
        skills: dict[str, list[str]] = {}
        for name, expert in experts.items():
            for skill in expert.skills:
                skills.setdefault(skill, []).append(name)
        self.skills = {s: names for s, names in skills.items() if s not in experts}  # a name wins over a skill

    def targets(self) -> list[str]:
        """What a plan's expert step may target: every expert's name and every skill."""
        return [*self.experts, *self.skills]

    def load(self, name: str) -> float:
        return self.in_flight[name] / self.experts[name].max_concurrency

    def candidates(self, target: str) -> list[Expert]:
        if target in self.experts:
            first = self.experts[target]
            others = [e for n, e in self.experts.items() if n != target and set(e.skills) & set(first.skills)]
            return [first, *sorted(others, key=lambda e: self.load(e.name))]
        if target in self.skills:
            return sorted((self.experts[n] for n in self.skills[target]), key=lambda e: self.load(e.name))
        return [self.experts[self.default]]

    @overload
    async def call(
        self, target: str, messages: list[Message], ctx: RunContext, *, purpose: Purpose, step_id: int | None = None,
        constraint: Constraint | None = None, sampling: Sampling | None = None, output_type: type[T],
        on_text: Callable[[str], None] | None = None, on_progress: Callable[[str], None] | None = None,
    ) -> tuple[Completion, T]: ...

    @overload
    async def call(
        self, target: str, messages: list[Message], ctx: RunContext, *, purpose: Purpose, step_id: int | None = None,
        constraint: Constraint | None = None, sampling: Sampling | None = None, output_type: None = None,
        on_text: Callable[[str], None] | None = None, on_progress: Callable[[str], None] | None = None,
    ) -> tuple[Completion, None]: ...

    async def call(
        self,
        target: str,
        messages: list[Message],
        ctx: RunContext,
        *,
        purpose: Purpose,
        step_id: int | None = None,
        constraint: Constraint | None = None,
        sampling: Sampling | None = None,
        output_type: type[T] | None = None,
        on_text: Callable[[str], None] | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> tuple[Completion, T | None]:
        """Generate with the best available expert for `target`; with `output_type`, also decode the output under
        it (a violation is counted against the expert and raised as OutputInvalid). Every attempt counts against
        the run's budget of model calls; the tokens of each answer against its budget of tokens. `on_text` gets the
        text as it is generated; so does `on_progress`, for display only: unlike `on_text` it does not stop a call
        that fails midway from going to the next expert."""
        loop = asyncio.get_running_loop()
        sink, run_id, deadline = ctx.sink, ctx.run_id, ctx.deadline
        streamed = False

        def relay(text: str) -> None:
            nonlocal streamed
            if on_text is not None:
                streamed = True
                on_text(text)
            if on_progress is not None:
                on_progress(text)

        extra = {"on_text": relay} if on_text is not None or on_progress is not None else {}
        last: BackendError | None = None
        rerouted_from = None
        for expert in self.candidates(target):
            ctx.charge_call()
            call_deadline = min(deadline, loop.time() + expert.timeout_s)
            started = time.perf_counter()
            self.in_flight[expert.name] += 1
            try:
                async with self._limits[expert.name]:
                    completion = await expert.backend.generate(
                        messages, constraint=constraint, sampling=sampling or Sampling(max_tokens=expert.max_tokens),
                        deadline=call_deadline, **extra,
                    )
            except (asyncio.CancelledError, BackendError) as exc:
                # A cancelled call is recorded too: it held a slot and may have generated tokens nobody will see.
                sink.emit(_called(run_id, step_id, purpose, expert, None, (time.perf_counter() - started) * 1000,
                                  rerouted_from, exc))
                if isinstance(exc, asyncio.CancelledError):
                    raise
                # Text already streamed to the caller cannot be taken back: no second expert after that.
                if not exc.retryable_elsewhere or loop.time() >= deadline or streamed:
                    raise
                last, rerouted_from = exc, expert.name
                continue
            finally:
                self.in_flight[expert.name] -= 1
            value, violation = None, None
            if output_type is not None:
                try:
                    value = decode_output(completion.text, output_type)
                except ConstraintViolated as exc:
                    self.violations[expert.name] += 1
                    cut = " (cut off at max_tokens)" if completion.finish_reason == "length" else ""
                    violation = ConstraintViolated(f"the {purpose} output broke its constraint{cut}: {exc}")
            sink.emit(_called(run_id, step_id, purpose, expert, completion, completion.latency_ms, rerouted_from,
                              violation))
            ctx.charge_tokens(completion.usage)
            if violation is not None:
                raise violation
            return completion, value
        assert last is not None
        raise last


def _called(run_id: uuid.UUID, step_id: int | None, purpose: Purpose, expert: Expert, c: Completion | None,
            latency_ms: float,
            rerouted_from: str | None, failure: ReasoningError | asyncio.CancelledError | None = None) -> ModelCalled:
    """The call as an event; a `failure` is recorded as its kind and as "<kind>: <message>" for the trace."""
    if isinstance(failure, asyncio.CancelledError):
        error = error_type = CANCELLED
    elif failure is not None:
        error, error_type = f"{failure.kind}: {failure}", failure.kind
    else:
        error = error_type = None
    usage = c.usage if c is not None else Usage()
    backend = expert.backend
    return ModelCalled(
        run_id=run_id, at=time.time(), step_id=step_id, purpose=purpose, expert=expert.name, backend=expert.kind,
        provider=backend.provider, request_model=c.model if c is not None else backend.model,
        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, cached_tokens=usage.cached_tokens,
        latency_ms=latency_ms, ttft_ms=c.ttft_ms if c is not None else None, cost=expert.cost(usage),
        finish_reason=c.finish_reason if c is not None else None, rerouted_from=rerouted_from, error=error,
        error_type=error_type,
    )
