"""The deterministic verifiers: recomputation, declared result types, numeric sanity, non-empty expert answers."""

from __future__ import annotations

import pytest

from reasoning.types import Step
from tests.fixtures import user_tools
from tools import default_tools, load_tools
from verifiers import default_verifiers
from verifiers.basic import ExpertAnswered, NumericSanity, ResultTyped, ToolRecomputed

STEP = Step(1, "tool", "calculator", {"expression": "6*7"})


async def no_model(*args, **kwargs):
    raise AssertionError("deterministic verifiers make no model call")


async def test_a_correct_tool_result_passes():
    """Recomputing 6*7 gives the step's 42."""
    verdict = await ToolRecomputed(default_tools()).verify(STEP, {"expression": "6*7"}, 42, no_model)
    assert verdict.outcome == "pass"


async def test_a_tampered_tool_result_fails():
    """A result that recomputation does not reproduce fails, saying both values."""
    verdict = await ToolRecomputed(default_tools()).verify(STEP, {"expression": "6*7"}, 41, no_model)
    assert verdict.outcome == "fail" and "42" in verdict.reason and "41" in verdict.reason


async def test_a_result_must_have_the_type_its_tool_declares():
    """The calculator returns numbers; a @tool function its return annotation; anything else fails."""
    tools = load_tools(["tests.fixtures.user_tools"])
    check = ResultTyped(tools)
    assert (await check.verify(STEP, {}, 42, no_model)).outcome == "pass"
    assert (await check.verify(STEP, {}, "42 apples", no_model)).outcome == "fail"
    shout = Step(2, "tool", "shout", {"text": "x"})
    assert (await check.verify(shout, {}, {"text": "X"}, no_model)).outcome == "pass"
    assert (await check.verify(shout, {}, ["X"], no_model)).outcome == "fail"
    assert user_tools.convert.result_type is float


async def test_numbers_must_be_finite_and_an_expert_asked_for_a_number_must_give_one():
    """NaN or infinity anywhere in a result fails; 'Reply with a number.' answered in words is retried."""
    sanity = NumericSanity()
    assert (await sanity.verify(STEP, {}, float("inf"), no_model)).outcome == "fail"
    assert (await sanity.verify(STEP, {}, {"a": [1, float("nan")]}, no_model)).outcome == "fail"
    ask_number = Step(3, "expert", "general", "How many legs does a spider have? Reply with a number.")
    assert (await sanity.verify(ask_number, ask_number.input, "eight", no_model)).outcome == "retry"
    assert (await sanity.verify(ask_number, ask_number.input, "8", no_model)).outcome == "pass"


async def test_an_empty_expert_answer_asks_for_a_retry():
    """Whitespace is not an answer."""
    step = Step(2, "expert", "general", "Who wrote Hamlet?")
    assert (await ExpertAnswered().verify(step, step.input, "  ", no_model)).outcome == "retry"
    assert (await ExpertAnswered().verify(step, step.input, "Shakespeare", no_model)).outcome == "pass"
    assert (await ExpertAnswered().verify(step, step.input, 42, no_model)).outcome == "fail"


def test_model_verifiers_are_chosen_by_name():
    """self_consistency and llm_judge join on request; an unknown name is refused."""
    names = [v.name for v in default_verifiers(default_tools(), ("self_consistency", "llm_judge"))]
    assert names[-2:] == ["self_consistency", "llm_judge"]
    with pytest.raises(ValueError, match="unknown verifiers \\['oracle'\\]"):
        default_verifiers(default_tools(), ("oracle",))
