"""The JSON planner's prompt: the static prefix (the catalogue, the rules, and worked examples that match the configured
tools), and the words of it the planner reads back from the plans it writes."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import msgspec

from stepwise.reasoning import events as ev
from stepwise.reasoning.context import RunContext
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.planner import Planner, example_turns
from stepwise.reasoning.report import fold
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import Expect, Expert, Step
from stepwise.tools import default_tools
from stepwise.tools.docs import DocSearch
from tests.doubles import Script, engine_with

ROUTER = Router({"general": Expert(name="general", backend=None)}, "general")
DOCS = DocSearch(Path(__file__).resolve().parent.parent / "fixtures" / "docs")


def example_targets(tools) -> list[set[str]]:
    turns = example_turns(ROUTER, tools)
    return [{step["target"] for step in json.loads(t.content)["steps"]} for t in turns if t.role == "assistant"]


def test_examples_are_valid_plans_that_target_the_default_expert():
    """Every worked example is a plan in the planner's own JSON, naming the router's default expert."""
    targets = example_targets(default_tools())
    assert {"calculator"} in targets and {"general"} in targets and len(targets) == 4


def test_a_configured_docs_tool_gets_its_own_worked_example():
    """With the docs tool present, one more example shows a docs step; without it, none mentions docs."""
    assert {"docs"} in example_targets(default_tools() | {"docs": DOCS})
    assert not any("docs" in t for t in example_targets(default_tools()))


SPIDERS = ('{"steps":[{"id":1,"kind":"expert","target":"general","input":"How many legs does a '
           'spider have? Reply with a '
           'number.","depends_on":[]},{"id":2,"kind":"tool","target":"calculator","input":{"expression":"$1*3"},"depends_on":[1]}]}')


def _planner(*texts: str) -> tuple[Planner, Script]:
    backend = Script(*texts, streams=True)
    return Planner(Router({"general": Expert(name="general", backend=backend)}, "general"), default_tools()), backend


def _ctx() -> RunContext:
    return RunContext(uuid.uuid4(), ev.Recorder(), time.monotonic() + 60)


async def test_an_expert_question_asking_for_a_number_alone_is_planned_as_expecting_one():
    """"… Reply with a number." (the worked example's words) becomes Expect(number=True) on that step, streamed or
    not; other steps state nothing."""
    planner, _ = _planner(SPIDERS)
    streamed: list[Step] = []
    plan = await planner.plan("How many legs do 3 spiders have?", _ctx(), on_step=streamed.append)
    assert plan.steps[0].expect == Expect(number=True) and streamed == plan.steps
    assert plan.steps[1].expect is msgspec.UNSET


async def test_a_planned_expert_answering_such_a_question_in_words_is_asked_again():
    """The run retries the step answered "eight" with the verifier's reason, and computes from the "8" it gets next."""
    backend = Script(SPIDERS, "eight", "8", '{"text":"24 legs.","uses":[2]}')
    engine = engine_with(backend, default_tools(), planner=lambda router: Planner(router, default_tools()))
    recorder = ev.Recorder()
    await engine.run("How many legs do 3 spiders have?", RunOptions(deadline_s=10, stream_plan=False), sink=recorder)
    report = fold(recorder.events)
    retried = [v.reason for v in report.steps[0].verdicts if v.outcome == "retry"]
    assert retried == ["asked for a number, got 'eight'"] and report.steps[1].output == 24
    assert "asked for a number, got 'eight'" in backend.seen[2][-1].content


async def test_a_replan_shows_the_steps_as_written_and_one_written_again_is_unchanged():
    """The replan prompt has no `expect` the model did not write, and the step it writes again equals the done one
    (so its result is kept)."""
    planner, backend = _planner(SPIDERS, SPIDERS)
    done = (await planner.plan("How many legs do 3 spiders have?", _ctx())).steps
    again = await planner.replan("How many legs do 3 spiders have?", _ctx(), ("calculator",), [(done[0], 8)], done[1],
                                 "why")
    assert "expect" not in backend.seen[1][-1].content
    assert '{"id":1,"kind":"expert","target":"general"' in backend.seen[1][-1].content  # in the schema's field order
    assert "Reply with a number." in backend.seen[1][-1].content and again.steps[0] == done[0]
