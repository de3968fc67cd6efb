"""Runs a validated plan: each step starts the moment its inputs exist (no polling), independent steps run
concurrently, and one deadline bounds the whole run.

A finished step starts its ready dependents itself, from inside the TaskGroup, so the scheduler costs a
counter decrement and a task creation per step.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from reasoning import errors
from reasoning.context import RunContext
from reasoning.events import StepFailed, StepFinished, StepStarted
from reasoning.plan import Dag, substitute
from reasoning.types import Step

RunStep = Callable[[Step, Any], Awaitable[Any]]
"""Executes one step given its input with references substituted; returns the step's output."""


async def run_plan(dag: Dag, run_step: RunStep, ctx: RunContext) -> dict[int, Any]:
    """Run every step of `dag` within the run's deadline; return outputs by step id."""
    sink, run_id = ctx.sink, ctx.run_id
    outputs: dict[int, Any] = {}
    waiting = {sid: len(needs) for sid, needs in dag.needs.items()}
    failures: list[BaseException] = []

    async def execute(step: Step) -> None:
        structlog.contextvars.bind_contextvars(step_id=step.id)
        started = time.time()
        sink.emit(StepStarted(run_id=run_id, at=started, step_id=step.id))
        resolved: Any = step.input
        try:
            resolved = substitute(step.input, outputs)
            output = await run_step(step, resolved)
        except BaseException as exc:
            reason = "cancelled" if isinstance(exc, asyncio.CancelledError) else _describe(exc)
            sink.emit(_failed(run_id, step, resolved, started, reason))
            if not isinstance(exc, asyncio.CancelledError):
                failures.append(exc)
            raise
        outputs[step.id] = output
        sink.emit(
            StepFinished(
                run_id=run_id, at=time.time(), step_id=step.id, kind=step.kind, target=step.target,
                input=resolved, depends_on=step.depends_on, started_at=started, output=output,
            )
        )
        for dependent in dag.dependents[step.id]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                group.create_task(execute(dag.steps[dependent]), name=f"step:{dependent}")

    try:
        async with asyncio.timeout_at(ctx.deadline):
            async with asyncio.TaskGroup() as group:
                for sid in dag.roots:
                    group.create_task(execute(dag.steps[sid]), name=f"step:{sid}")
    except TimeoutError as exc:
        raise errors.DeadlineExceeded(f"the run's deadline passed with {len(dag.steps) - len(outputs)} step(s) unfinished") from exc
    except BaseExceptionGroup as group_error:
        # The first failure caused the others' cancellation: it is the one to report.
        raise (failures[0] if failures else group_error) from None
    finally:
        structlog.contextvars.unbind_contextvars("step_id")
    return outputs


def _describe(exc: BaseException) -> str:
    if isinstance(exc, errors.StepFailed):
        return f"{exc.kind}: {exc.reason}"
    if isinstance(exc, errors.ReasoningError):
        return f"{exc.kind}: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _failed(run_id: uuid.UUID, step: Step, resolved: Any, started: float, reason: str) -> StepFailed:
    return StepFailed(
        run_id=run_id, at=time.time(), step_id=step.id, kind=step.kind, target=step.target, input=resolved,
        depends_on=step.depends_on, started_at=started, error=reason,
    )
