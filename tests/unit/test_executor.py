"""The executor: event-driven, concurrent where independent, ordered where not, bounded by one deadline."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from stepwise.reasoning import errors
from stepwise.reasoning import events as ev
from stepwise.reasoning.context import RunContext
from stepwise.reasoning.errors import PlanInvalid
from stepwise.reasoning.executor import run_plan, run_streamed_plan
from stepwise.reasoning.plan import references, validate_plan
from stepwise.reasoning.types import Plan, Step, ToolStep
from stepwise.tools import default_tools
from tests.conftest import deadline_in

TOOLS = default_tools()
EXPERTS = ["general"]


def calc(sid: int, expression: str, *deps: int) -> Step:
    return ToolStep(sid, "calculator", {"expression": expression}, list(deps))


def dag(*steps: Step):
    return validate_plan(Plan(list(steps)), TOOLS, EXPERTS)


def ctx(sink, deadline: float) -> RunContext:
    return RunContext(uuid.uuid4(), sink, deadline)


class Timeline:
    """A scheduling double: each step sleeps its given time and records when it ran."""

    def __init__(self, sleeps: dict[int, float]) -> None:
        self.sleeps = sleeps
        self.spans: dict[int, tuple[float, float]] = {}
        self.seen_inputs: dict[int, object] = {}

    async def __call__(self, step: Step, resolved):
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.seen_inputs[step.id] = resolved
        await asyncio.sleep(self.sleeps.get(step.id, 0))
        self.spans[step.id] = (start, loop.time())
        return step.id * 10


async def test_independent_steps_overlap_in_time():
    """Two steps with no dependency between them run at the same time."""
    timeline = Timeline({1: 0.2, 2: 0.2})
    sink = ev.Recorder()
    started = asyncio.get_running_loop().time()
    await run_plan(dag(calc(1, "1"), calc(2, "2")), timeline, ctx(sink, deadline_in(5)))
    elapsed = asyncio.get_running_loop().time() - started
    (s1, e1), (s2, e2) = timeline.spans[1], timeline.spans[2]
    assert s1 < e2 and s2 < e1
    assert elapsed < 0.39  # sequential would take 0.4 s


async def test_a_step_starts_only_after_its_dependencies_finish():
    """Order is respected: a dependent step starts after every step it needs has finished."""
    timeline = Timeline({1: 0.05, 2: 0.1})
    await run_plan(dag(calc(1, "1"), calc(2, "2"), calc(3, "$1+$2", 1, 2)), timeline,
                   ctx(ev.Recorder(), deadline_in(5)))
    assert timeline.spans[3][0] >= max(timeline.spans[1][1], timeline.spans[2][1])


async def test_references_are_substituted_with_outputs():
    """$N in a step's input becomes step N's output before the step runs."""
    timeline = Timeline({})
    outputs = await run_plan(dag(calc(1, "1"), calc(2, "$1*${1}", 1)), timeline, ctx(ev.Recorder(), deadline_in(5)))
    assert timeline.seen_inputs[2] == {"expression": "10*10"}
    assert outputs == {1: 10, 2: 20}


async def test_a_reference_is_a_dependency_even_when_depends_on_omits_it():
    """A step that mentions $1 waits for step 1 even if the planner forgot to list it."""
    timeline = Timeline({1: 0.05})
    await run_plan(dag(calc(1, "1"), calc(2, "$1+1")), timeline, ctx(ev.Recorder(), deadline_in(5)))
    assert timeline.spans[2][0] >= timeline.spans[1][1]


async def test_the_deadline_cancels_what_is_left_and_leaves_no_task_running():
    """When the run's deadline passes, running steps are cancelled, recorded as failed, and nothing lingers."""
    sink = ev.Recorder()
    before = asyncio.all_tasks()
    with pytest.raises(errors.DeadlineExceeded):
        await run_plan(dag(calc(1, "1"), calc(2, "2", 1)), Timeline({1: 10}), ctx(sink, deadline_in(0.1)))
    failed = [e for e in sink.events if isinstance(e, ev.StepFailed)]
    assert [(e.step_id, e.error) for e in failed] == [(1, "cancelled")]
    assert not any(isinstance(e, ev.StepStarted) and e.step_id == 2 for e in sink.events)
    assert asyncio.all_tasks() == before


async def test_a_failing_step_cancels_its_siblings_and_is_the_error_reported():
    """The first failure ends the run: running siblings are cancelled and the failure itself propagates."""

    async def run_step(step, resolved):
        if step.id == 1:
            raise errors.ToolError(1, "boom")
        await asyncio.sleep(10)

    sink = ev.Recorder()
    with pytest.raises(errors.ToolError, match="boom"):
        await run_plan(dag(calc(1, "1"), calc(2, "2")), run_step, ctx(sink, deadline_in(5)))
    failed = {e.step_id: e.error for e in sink.events if isinstance(e, ev.StepFailed)}
    assert failed == {1: "tool_error: boom", 2: "cancelled"}


async def test_every_step_emits_started_then_finished_with_its_resolved_input():
    """Each step's events: StepStarted, then StepFinished carrying the substituted input and the output."""
    sink = ev.Recorder()
    await run_plan(dag(calc(1, "2"), calc(2, "$1+1", 1)), Timeline({}), ctx(sink, deadline_in(5)))
    kinds = [(type(e).__name__, e.step_id) for e in sink.events]
    assert kinds == [("StepStarted", 1), ("StepFinished", 1), ("StepStarted", 2), ("StepFinished", 2)]
    finished = [e for e in sink.events if isinstance(e, ev.StepFinished)]
    assert finished[1].input == {"expression": "10+1"} and finished[1].output == 20


async def arriving(*items):
    """A plan streaming in: each item is a step, or a pause (seconds) before the next."""
    for item in items:
        if isinstance(item, float):
            await asyncio.sleep(item)
        else:
            yield item


def admit_all(step: Step) -> frozenset[int]:
    return frozenset(step.depends_on) | frozenset(references(step.input))


async def test_a_streamed_step_starts_before_the_plan_is_complete():
    """Step 1 runs while the rest of the plan is still arriving; step 2 waits only for step 1."""
    timeline = Timeline({1: 0.05})
    loop = asyncio.get_running_loop()
    stream_started = loop.time()
    outputs = await run_streamed_plan(arriving(calc(1, "1"), 0.2, calc(2, "$1+1", 1)), admit_all, timeline,
                                      ctx(ev.Recorder(), deadline_in(5)))
    assert timeline.spans[1][0] - stream_started < 0.2  # before the plan's second step arrived at 0.2 s
    assert timeline.spans[2][0] >= timeline.spans[1][1]
    assert outputs == {1: 10, 2: 20}


async def test_a_streamed_step_that_arrives_before_what_it_needs_waits_for_it():
    """Order of arrival does not matter: a step needing a later step starts when that one finishes."""
    timeline = Timeline({})
    await run_streamed_plan(arriving(calc(2, "$1", 1), 0.05, calc(1, "1")), admit_all, timeline,
                            ctx(ev.Recorder(), deadline_in(5)))
    assert timeline.spans[2][0] >= timeline.spans[1][1]


async def test_a_plan_found_invalid_at_its_end_cancels_the_steps_already_running():
    """The stream's final validation failing stops everything started so far, recorded as cancelled."""

    async def invalid_at_end():
        yield calc(1, "1")
        await asyncio.sleep(0.05)
        raise PlanInvalid("refers to step 9, which does not exist", 2)

    sink = ev.Recorder()
    with pytest.raises(PlanInvalid, match="step 2"):
        await run_streamed_plan(invalid_at_end(), admit_all, Timeline({1: 10}), ctx(sink, deadline_in(5)))
    assert [(e.step_id, e.error) for e in sink.events if isinstance(e, ev.StepFailed)] == [(1, "cancelled")]
