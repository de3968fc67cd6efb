"""With the real SmolLM2 (weak, fast), the planner's output always decodes under the plan schema: constrained
decoding, not a request to please reply in JSON."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from stepwise.reasoning.context import RunContext
from stepwise.reasoning.events import ModelCalled, Recorder
from stepwise.reasoning.planner import Planner
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import Expert, ExpertStep, ToolStep
from stepwise.tools import default_tools

pytestmark = pytest.mark.model

QUESTIONS = [
    "What is (17*23)+(45*12)?",
    "What is the capital of France?",
    "A shop sells 5 apples at 3 dollars each and 2 pears at 4 dollars each. What is the total?",
    "Compute 2**10 minus 24, then divide by 10.",
]


@pytest.fixture(scope="module")
async def planner(smollm2_llama):
    backend = smollm2_llama.new_backend()
    router = Router({"general": Expert(name="general", backend=backend, skills=["facts"],
                                       description="answers a short factual question in words")}, "general")
    yield Planner(router, default_tools())
    await backend.aclose()


@pytest.mark.parametrize("question", QUESTIONS)
async def test_every_plan_decodes_under_the_schema(planner, question):
    """Whatever SmolLM2 writes is a Plan whose tool steps carry calculator arguments and expert steps text."""
    sink = Recorder()
    deadline = asyncio.get_running_loop().time() + 120
    plan = await planner.plan(question, RunContext(uuid.uuid4(), sink, deadline))
    assert 1 <= len(plan.steps) <= 8
    for step in plan.steps:
        assert isinstance(step, ToolStep | ExpertStep)
        if isinstance(step, ToolStep):
            assert step.target == "calculator" and set(step.input) == {"expression"}
        else:
            assert step.target == "general" and step.input
    (call,) = [e for e in sink.events if isinstance(e, ModelCalled)]
    assert call.purpose == "plan" and call.output_tokens > 0 and call.finish_reason == "stop"
