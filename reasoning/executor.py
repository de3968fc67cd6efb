"""Runs a plan: each step starts the moment its inputs exist (no polling), independent steps run concurrently, and
one deadline bounds the whole run. The plan may be complete (`run_plan`) or still streaming from the planner
(`run_streamed_plan`): then a step starts as soon as it and the steps it needs are there.

A finished step starts its ready dependents itself, from inside the TaskGroup, so the scheduler costs a
counter decrement (or a set removal) and a task creation per step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog

from stepwise.reasoning import errors
from stepwise.reasoning.context import RunContext
from stepwise.reasoning.events import CANCELLED, StepFailed, StepFinished, StepStarted
from stepwise.reasoning.plan import Dag, substitute
from stepwise.reasoning.types import Step

RunStep = Callable[[Step, Any], Awaitable[Any]]
"""Executes one step given its input with references substituted; returns the step's output."""


class _Execution:
    """The state one run's steps share: outputs, the first failure, and the TaskGroup they run in."""

    def __init__(self, run_step: RunStep, ctx: RunContext, on_finished: Callable[[int], None],
                 outputs: dict[int, Any] | None = None) -> None:
        self.run_step = run_step
        self.ctx = ctx
        self.on_finished = on_finished
        self.outputs: dict[int, Any] = {} if outputs is None else outputs
        self.failures: list[BaseException] = []
        self.group: asyncio.TaskGroup | None = None
        self.started = 0

    def start(self, step: Step) -> None:
        if self.group is None:
            raise RuntimeError("steps start only inside run()")
        self.started += 1
        self.group.create_task(self._execute(step), name=f"step:{step.id}")

    async def _execute(self, step: Step) -> None:
        structlog.contextvars.bind_contextvars(step_id=step.id)
        sink, run_id = self.ctx.sink, self.ctx.run_id
        started = time.time()
        sink.emit(StepStarted(run_id=run_id, at=started, step_id=step.id, step=step))
        resolved: Any = step.input
        try:
            resolved = substitute(step.input, self.outputs)
            output = await self.run_step(step, resolved)
        except BaseException as exc:
            reason = CANCELLED if isinstance(exc, asyncio.CancelledError) else _describe(exc)
            sink.emit(StepFailed(
                run_id=run_id, at=time.time(), step_id=step.id, kind=step.kind, target=step.target, input=resolved,
                depends_on=step.depends_on, started_at=started, error=reason,
            ))
            if not isinstance(exc, asyncio.CancelledError):
                self.failures.append(exc)
            raise
        self.outputs[step.id] = output
        sink.emit(StepFinished(
            run_id=run_id, at=time.time(), step_id=step.id, kind=step.kind, target=step.target, input=resolved,
            depends_on=step.depends_on, started_at=started, output=output,
        ))
        self.on_finished(step.id)

    async def run(self, body: Callable[[], Awaitable[None]]) -> dict[int, Any]:
        """Run `body` (which starts steps) and every step it and they start, under the run's deadline."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a plan runs inside an asyncio task")
        cancelling = task.cancelling()
        try:
            async with asyncio.timeout_at(self.ctx.deadline):
                async with asyncio.TaskGroup() as self.group:
                    await body()
        except TimeoutError as exc:
            raise errors.DeadlineExceeded(f"the run's deadline passed with "
                                          f"{self.started - len(self.outputs)} step(s) still running") from exc
        except BaseExceptionGroup as group_error:
            # Python 3.11's TaskGroup cancels its parent when a step fails and, if that happens while it is already
            # exiting, never uncancels it (fixed in 3.12). The leaked request would stop the run's own deadline from
            # turning into TimeoutError later on (say, during a replan): give it back.
            while task.cancelling() > cancelling:
                task.uncancel()
            # The first failure caused the others' cancellation: it is the one to report. (A failure of `body` itself,
            # such as a streamed plan found invalid at its end, is in the group too.)
            raise (self.failures[0] if self.failures else group_error.exceptions[0]) from None
        finally:
            structlog.contextvars.unbind_contextvars("step_id")
        return self.outputs


async def run_plan(dag: Dag, run_step: RunStep, ctx: RunContext, outputs: dict[int, Any] | None = None) -> dict[int,
                                                                                                                Any]:
    """Run every step of a validated plan within the run's deadline; return outputs by step id. Steps already in
    `outputs` (kept from an earlier plan) count as finished and are not run; `outputs` is filled in place, so what
    finished is known even when the run fails."""
    outputs = {} if outputs is None else outputs
    waiting = {sid: len(needs - outputs.keys()) for sid, needs in dag.needs.items() if sid not in outputs}

    def finished(sid: int) -> None:
        for dependent in dag.dependents[sid]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                execution.start(dag.steps[dependent])

    async def start_ready() -> None:
        for sid, count in waiting.items():
            if count == 0:
                execution.start(dag.steps[sid])

    execution = _Execution(run_step, ctx, finished, outputs)
    return await execution.run(start_ready)


async def run_streamed_plan(steps: AsyncIterator[Step], admit: Callable[[Step], frozenset[int]], run_step: RunStep,
                            ctx: RunContext, outputs: dict[int, Any] | None = None) -> dict[int, Any]:
    """Run steps as they arrive. `admit` checks each arriving step and returns the ids it needs; a step whose needs
    have all finished starts at once, others when their last need finishes. The iterator validates the complete
    plan when it ends (raising PlanInvalid cancels whatever runs); a step waiting on an id that never came is
    then flagged by that validation. `outputs` (new, or empty) is filled in place, as by `run_plan`."""
    missing: dict[int, set[int]] = {}
    dependents: dict[int, list[int]] = {}
    arrived: dict[int, Step] = {}
    done: set[int] = set()

    def finished(sid: int) -> None:
        done.add(sid)
        for dependent in dependents.pop(sid, ()):
            left = missing[dependent]
            left.discard(sid)
            if not left:
                del missing[dependent]
                execution.start(arrived[dependent])

    async def start_as_they_come() -> None:
        async for step in steps:
            needs = admit(step)
            arrived[step.id] = step
            left = set(needs) - done
            if not left:
                execution.start(step)
                continue
            missing[step.id] = left
            for need in left:
                dependents.setdefault(need, []).append(step.id)

    execution = _Execution(run_step, ctx, finished, outputs)
    return await execution.run(start_as_they_come)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, errors.StepFailed):
        return f"{exc.kind}: {exc.reason}"
    if isinstance(exc, errors.ReasoningError):
        return f"{exc.kind}: {exc}"
    return f"{type(exc).__name__}: {exc}"
