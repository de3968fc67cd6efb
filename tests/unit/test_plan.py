"""Plan validation, references, and the schema the planner decodes under."""

from __future__ import annotations

import re

import msgspec
import pytest

from stepwise.reasoning.errors import PlanInvalid
from stepwise.reasoning.plan import inline_refs, plan_schema, references, render, substitute, validate_plan
from stepwise.reasoning.types import ExpertStep, ParallelCall, ParallelStep, Plan, ToolStep
from stepwise.tools import default_tools

TOOLS = default_tools()
EXPERTS = ["general"]


def calc(sid, expression, *deps):
    return ToolStep(sid, "calculator", {"expression": expression}, list(deps))


def check(*steps):
    return validate_plan(Plan(list(steps)), TOOLS, EXPERTS)


def test_a_valid_plan_is_indexed_for_the_executor():
    """Needs (depends_on plus references) and dependents come out of validation."""
    dag = check(calc(1, "1"), calc(2, "2"), calc(3, "$1+$2", 1, 2))
    assert dag.needs[1] == dag.needs[2] == frozenset()
    assert dag.needs[3] == {1, 2}
    assert dag.dependents == {1: [3], 2: [3], 3: []}


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([calc(1, "1", 2), calc(2, "2", 1)], "cycle"),
        ([calc(1, "1"), calc(2, "$7")], "step 2: refers to step 7, which does not exist"),
        ([calc(1, "1", 9)], "step 1: refers to step 9"),
        ([calc(1, "1"), calc(1, "2")], "step 1: duplicate step id"),
        ([calc(1, "$1")], "step 1: depends on itself"),
        ([ToolStep(1, "search", {"q": "x"})], "unknown tool 'search'"),
        ([ExpertStep(1, "oracle", "who?")], "unknown expert or skill 'oracle'"),
        ([ToolStep(1, "calculator", {"expr": "1"})], "arguments for 'calculator'"),
        ([ExpertStep(1, "general", " ")], "non-empty text"),
        ([], "no steps"),
    ],
)
def test_invalid_plans_are_rejected_naming_the_step_and_rule(steps, message):
    """Cycles, unknown references, duplicates, unknown targets and bad arguments are refused before anything runs."""
    with pytest.raises(PlanInvalid, match=message):
        check(*steps)


@pytest.mark.parametrize(
    ("step", "path"),
    [
        ({"kind": "tool", "target": "calculator", "input": "1+1"}, "$.steps[0].input"),
        ({"kind": "expert", "target": "general", "input": {"q": "who?"}}, "$.steps[0].input"),
        ({"kind": "tools", "target": "parallel", "input": [{"target": "calculator"}]}, "$.steps[0].input[0]"),
        ({"kind": "tools", "target": "parallel", "input": [{"target": "calculator", "input": {}, "x": 1}]},
         "$.steps[0].input[0]"),
        ({"kind": "robot", "target": "general", "input": "who?"}, "$.steps[0].kind"),
    ],
)
def test_an_input_not_of_its_kinds_shape_is_refused_when_the_plan_is_decoded(step, path):
    """A tool step's input is arguments, an expert step's text, a tools step's calls: anything else fails to decode,
    naming where."""
    with pytest.raises(msgspec.ValidationError, match=re.escape(path)):
        msgspec.json.decode(msgspec.json.encode({"steps": [{"id": 1, **step}]}), type=Plan)


def test_a_plan_as_stored_before_steps_were_typed_decodes_to_the_same_json():
    """A step is a ToolStep, ExpertStep or ParallelStep by its `kind`; a plan's JSON (stored in a trace, sent by a
    caller) decodes to them and encodes to the same JSON values again."""
    stored = {"steps": [
        {"id": 1, "kind": "tool", "target": "calculator", "input": {"expression": "6*7"}, "depends_on": []},
        {"id": 2, "kind": "expert", "target": "general", "input": "Say $1.", "depends_on": [1], "name": "said"},
        {"id": 3, "kind": "tools", "target": "parallel", "depends_on": [],
         "input": [{"target": "calculator", "input": {"expression": "1"}},
                   {"target": "calculator", "input": {"expression": "$1"}}]},
    ], "answer": 2}
    plan = msgspec.json.decode(msgspec.json.encode(stored), type=Plan)
    assert [type(s) for s in plan.steps] == [ToolStep, ExpertStep, ParallelStep]
    assert [s.kind for s in plan.steps] == ["tool", "expert", "tools"]
    assert msgspec.json.decode(msgspec.json.encode(plan)) == stored


def test_references_and_substitution_reach_into_parallel_calls():
    """A tools step's calls mention $N in their arguments; substituted, they are JSON, as the events carry them."""
    step = ParallelStep(1, "parallel", [ParallelCall("calculator", {"expression": "$2"}),
                                        ParallelCall("calculator", {"expression": "${3}+1"})])
    assert references(step.input) == {2, 3}
    assert substitute(step.input, {2: 5, 3: 6.0}) == [{"target": "calculator", "input": {"expression": "5"}},
                                                      {"target": "calculator", "input": {"expression": "6+1"}}]


def test_references_are_found_at_any_depth():
    """$N and ${N} are found in strings inside objects and lists."""
    assert references({"a": "$1 and ${2}", "b": ["$3"], "c": 4}) == {1, 2, 3}


def test_substitution_renders_numbers_plainly():
    """Integral floats lose their '.0'; structures become JSON."""
    outputs = {1: 391.0, 2: 0.1 + 0.2, 3: {"k": [1]}}
    assert substitute({"expression": "$1+${2}"}, outputs) == {"expression": "391+0.3"}
    assert render(outputs[3]) == '{"k":[1]}'


def test_the_plan_schema_embeds_each_tools_argument_schema():
    """A tool step's input is constrained by the tool's own argument schema; experts take text."""
    schema = plan_schema(TOOLS, EXPERTS)
    variants = schema["properties"]["steps"]["items"]["anyOf"]
    tool = next(v for v in variants if v["properties"]["kind"] == {"const": "tool"})
    assert tool["properties"]["target"] == {"const": "calculator"}
    assert tool["properties"]["input"]["properties"]["expression"]["type"] == "string"
    assert "$ref" not in msgspec.json.encode(schema).decode()
    expert = next(v for v in variants if v["properties"]["kind"] == {"const": "expert"})
    assert expert["properties"]["target"] == {"enum": ["general"]}


def test_inlining_keeps_a_field_named_title():
    """Only the schema keyword 'title' is dropped, not a property that happens to be called title."""

    class Doc(msgspec.Struct):
        title: str

    schema = inline_refs(msgspec.json.schema(Doc))
    assert schema["properties"] == {"title": {"type": "string"}}
    assert "title" not in {k for k in schema if k != "properties"}
