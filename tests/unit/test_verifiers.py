"""The deterministic verifiers: recomputation, declared result types, numeric sanity, non-empty expert answers."""

from __future__ import annotations

import msgspec
import pytest

from reasoning.types import Expect, Step
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


def expecting(kind: str, target: str, expect: dict) -> Step:
    return Step(1, kind, target, "q" if kind == "expert" else {"expression": "1"}, [], expect=msgspec.convert(expect, Expect))


@pytest.mark.parametrize(
    ("kind", "expect", "output", "outcome"),
    [
        ("tool", {"min": 0, "max": 100}, 42, "pass"),
        ("tool", {"min": 0, "max": 100}, 420, "replan"),
        ("tool", {"min": 0}, -3.5, "replan"),
        ("expert", {"max": 10, "unit": "km"}, "About 12 km.", "retry"),
        ("expert", {"max": 20, "unit": "km"}, "About 12 km.", "pass"),
        ("expert", {"unit": "km"}, "About 12 miles.", "retry"),
        ("expert", {"min": 1}, "between 3 and 4", "retry"),
    ],
)
async def test_numeric_sanity_holds_a_step_to_the_range_and_unit_its_plan_states(kind, expect, output, outcome):
    """`expect` in the plan: a number outside [min, max] or text without the unit is refused — a tool step needs a new
    plan, an expert step another try; text with no single number cannot meet a range."""
    target = "calculator" if kind == "tool" else "general"
    verdict = await NumericSanity().verify(expecting(kind, target, expect), None, output, ask=None)
    assert verdict.outcome == outcome, verdict.reason


def test_a_step_without_expect_encodes_as_before():
    """`expect` is left out of a step's JSON when the plan does not state it (traces and replies keep their shape)."""
    assert b"expect" not in msgspec.json.encode(Step(1, "tool", "calculator", {"expression": "1"}))
    assert msgspec.json.decode(b'{"id":1,"kind":"expert","target":"g","input":"q","expect":{"unit":"km"}}', type=Step).expect == Expect(unit="km")
