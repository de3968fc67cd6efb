"""Plan validation, references, and the schema the planner decodes under."""

from __future__ import annotations

import msgspec
import pytest

from stepwise.reasoning.errors import PlanInvalid
from stepwise.reasoning.plan import inline_refs, plan_schema, references, render, substitute, validate_plan
from stepwise.reasoning.types import Plan, Step
from stepwise.tools import default_tools

TOOLS = default_tools()
EXPERTS = ["general"]


def calc(sid, expression, *deps):
    return Step(sid, "tool", "calculator", {"expression": expression}, list(deps))


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
        ([Step(1, "tool", "search", {"q": "x"})], "unknown tool 'search'"),
        ([Step(1, "expert", "oracle", "who?")], "unknown expert or skill 'oracle'"),
        ([Step(1, "tool", "calculator", {"expr": "1"})], "arguments for 'calculator'"),
        ([Step(1, "tool", "calculator", "1+1")], "takes an object of arguments"),
        ([Step(1, "expert", "general", " ")], "non-empty text"),
        ([], "no steps"),
    ],
)
def test_invalid_plans_are_rejected_naming_the_step_and_rule(steps, message):
    """Cycles, unknown references, duplicates, unknown targets and bad arguments are refused before anything runs."""
    with pytest.raises(PlanInvalid, match=message):
        check(*steps)


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
