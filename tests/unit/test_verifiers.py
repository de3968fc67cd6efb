"""The first verifiers: deterministic tool results are recomputed; expert output must be non-empty text."""

from __future__ import annotations

from reasoning.types import Step
from tools import default_tools
from verifiers.basic import ExpertAnswered, ToolRecomputed

STEP = Step(1, "tool", "calculator", {"expression": "6*7"})


async def test_a_correct_tool_result_passes():
    """Recomputing 6*7 gives the step's 42."""
    verdict = await ToolRecomputed(default_tools()).verify(STEP, {"expression": "6*7"}, 42)
    assert verdict.outcome == "pass"


async def test_a_tampered_tool_result_fails():
    """A result that recomputation does not reproduce fails, saying both values."""
    verdict = await ToolRecomputed(default_tools()).verify(STEP, {"expression": "6*7"}, 41)
    assert verdict.outcome == "fail" and "42" in verdict.reason and "41" in verdict.reason


async def test_an_empty_expert_answer_asks_for_a_retry():
    """Whitespace is not an answer."""
    step = Step(2, "expert", "general", "Who wrote Hamlet?")
    assert (await ExpertAnswered().verify(step, step.input, "  ")).outcome == "retry"
    assert (await ExpertAnswered().verify(step, step.input, "Shakespeare")).outcome == "pass"
    assert (await ExpertAnswered().verify(step, step.input, 42)).outcome == "fail"
