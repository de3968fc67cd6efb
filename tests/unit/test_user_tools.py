"""User-defined tools: a decorated function's typed parameters become its schema; the planner sees it; a request
can narrow the tools to an allowlist."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from stepwise.reasoning import events as ev
from stepwise.reasoning.engine import Engine
from stepwise.reasoning.errors import PlanInvalid
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.plan import tool_args_schema
from stepwise.reasoning.report import fold
from stepwise.reasoning.types import Plan, ToolStep
from stepwise.tools import load_tools, tool
from tests.doubles import InstantBackend, engine_with
from tests.fixtures import user_tools


def test_parameters_become_the_argument_schema():
    """Types, Annotated constraints, Literal choices and defaults all reach the JSON schema."""
    convert = tool_args_schema(user_tools.convert)
    assert convert["properties"]["rate"] == {"type": "number", "exclusiveMinimum": 0, "default": 1.0}
    assert convert["required"] == ["amount"]
    shout = tool_args_schema(user_tools.shout)
    assert shout["properties"]["style"] == {"enum": ["title", "upper"], "default": "upper"}
    assert user_tools.shout.description == "returns the text in capitals"


def test_a_parameter_without_a_type_is_refused():
    """No annotation, no schema: the decorator says which parameter."""
    with pytest.raises(TypeError, match="parameter 'x' needs a type annotation"):
        @tool
        def untyped(x):
            return x


async def test_sync_and_async_tools_run_on_decoded_arguments():
    """Arguments are decoded under the schema; sync functions run off the loop; results are JSON values."""
    assert await user_tools.convert.run(msgspec.convert({"amount": 10, "rate": 1.5},
                                                        user_tools.convert.args_type)) == 15.0
    assert await user_tools.shout.run(msgspec.convert({"text": "hi"}, user_tools.shout.args_type)) == {"text": "HI"}
    with pytest.raises(msgspec.ValidationError, match="rate"):
        msgspec.convert({"amount": 1, "rate": 0}, user_tools.convert.args_type)


def test_modules_are_loaded_next_to_the_built_in_tools_and_names_must_be_unique():
    """STEPWISE_TOOLS modules add their tools; a clash with an existing name is an error."""
    tools = load_tools(["tests.fixtures.user_tools"])
    assert set(tools) == {"calculator", "convert", "shout", "echo_later"}
    with pytest.raises(ValueError, match="'convert' .* already taken"):
        load_tools(["tests.fixtures.user_tools"], base={"convert": object()})


def engine() -> Engine:
    # the plans here are the caller's, all tool steps: the backend answers the composer's one call
    return engine_with(InstantBackend(text='{"text":"44","uses":[2]}'), load_tools(["tests.fixtures.user_tools"]))


async def test_a_user_tool_runs_in_a_plan_and_is_verified_like_any_other():
    """A deterministic user tool's result is recomputed by the verifier; its output feeds later steps."""
    plan = Plan([ToolStep(1, "convert", {"amount": 20, "rate": 1.1}),
                 ToolStep(2, "calculator", {"expression": "$1*2"}, [1])])
    recorder = ev.Recorder()
    await engine().run("20 at 1.1, doubled?", RunOptions(deadline_s=10, plan=plan), sink=recorder, run_id=uuid.uuid4())
    report = fold(recorder.events)
    assert [s.output for s in report.steps] == [22.0, 44]
    assert report.steps[0].verdicts[0].verifier == "tool_recomputed" and report.steps[0].verdicts[0].outcome == "pass"
    assert report.status == "finished" and report.answer.uses == [2]


def test_an_allowlist_narrows_what_may_be_planned_and_run():
    """Only allowed tools appear in the planner's schema and prompt; a plan using another one is refused."""
    e = engine()
    allowed = e.allowed_tools(["convert"])
    prefix, constraint = e.planner.prompt_for(allowed)
    targets = [v["properties"]["target"] for v in constraint.schema["properties"]["steps"]["items"]["anyOf"]]
    assert {"const": "convert"} in targets and {"const": "calculator"} not in targets
    assert "calculator" not in prefix[0].content and "convert" in prefix[0].content
    with pytest.raises(PlanInvalid, match="unknown tool 'calculator'"):
        e.check_plan(Plan([ToolStep(1, "calculator", {"expression": "1"})]), allowed)
    with pytest.raises(ValueError, match="unknown tools \\['search'\\]"):
        e.allowed_tools(["search"])
