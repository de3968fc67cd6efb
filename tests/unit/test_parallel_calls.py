"""A step of several tool calls: each call decoded under its tool's schema, all run at once, each verified."""

from __future__ import annotations

import pytest

from stepwise.reasoning import events as ev
from stepwise.reasoning.errors import PlanInvalid
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.plan import PARALLEL, plan_schema
from stepwise.reasoning.report import fold
from stepwise.reasoning.types import ParallelCall, ParallelStep, Plan, ToolStep
from tests.unit.test_user_tools import engine


def calls(*pairs) -> list[ParallelCall]:
    return [ParallelCall(target, args) for target, args in pairs]


async def test_the_calls_of_one_step_run_concurrently_and_are_each_verified():
    """The three calls' intervals overlap; results come back in call order; references reach inside calls."""
    plan = Plan([
        ToolStep(1, "calculator", {"expression": "6*7"}),
        ParallelStep(2, PARALLEL, calls(("echo_later", {"text": "a"}), ("echo_later", {"text": "b $1"}),
                                        ("calculator", {"expression": "$1+1"})), [1]),
    ])
    recorder = ev.Recorder()
    await engine().run("q", RunOptions(deadline_s=10, plan=plan), sink=recorder)
    report = fold(recorder.events)
    assert report.steps[1].output == ["a", "b 42", 43]
    made = [e for e in recorder.events if isinstance(e, ev.ToolCalled) and e.step_id == 2]
    assert sorted(e.tool for e in made) == ["calculator", "echo_later", "echo_later"]
    spans = [(e.at - e.latency_ms / 1000, e.at) for e in made]
    assert all(a[0] < b[1] and b[0] < a[1] for a in spans for b in spans)  # every pair of calls overlapped
    verdicts = {v.verifier: v for v in report.steps[1].verdicts}
    assert verdicts["tool_recomputed"].outcome == "pass" and verdicts["tool_recomputed"].reason.startswith("3 calls")
    assert verdicts["result_type"].outcome == "pass"


@pytest.mark.parametrize(("step", "message"), [
    (ParallelStep(1, "fanout", calls(("calculator", {"expression": "1"}), ("calculator", {"expression": "2"}))),
     "target is 'parallel'"),
    (ParallelStep(1, PARALLEL, calls(("calculator", {"expression": "1"}))), "at least two calls"),
    (ParallelStep(1, PARALLEL, calls(("calculator", {"expression": "1"}), ("search", {"q": "x"}))),
     "call 2: unknown tool 'search'"),
    (ParallelStep(1, PARALLEL, calls(("calculator", {"expression": "1"}), ("calculator", {"expr": "1"}))),
     "call 2: arguments for 'calculator'"),
])
def test_bad_calls_are_refused_naming_the_call(step, message):
    """Each call is checked under its own tool's rules, and the error says which call."""
    with pytest.raises(PlanInvalid, match=message):
        engine().check_plan(Plan([step]))


def test_the_planner_is_offered_tools_steps_only_when_asked():
    """The plan schema has a "tools" variant, embedding every tool's argument schema, only with parallel_calls."""
    from stepwise.tools import default_tools

    plain = plan_schema(default_tools(), ["general"])
    with_calls = plan_schema(default_tools(), ["general"], parallel_calls=True)

    def kinds(schema):
        return [v["properties"]["kind"]["const"] for v in schema["properties"]["steps"]["items"]["anyOf"]]

    assert "tools" not in kinds(plain) and "tools" in kinds(with_calls)
    variant = next(v for v in with_calls["properties"]["steps"]["items"]["anyOf"]
                   if v["properties"]["kind"]["const"] == "tools")
    call = variant["properties"]["input"]["items"]["anyOf"][0]
    assert (call["properties"]["target"] == {"const": "calculator"}
            and "expression" in call["properties"]["input"]["properties"])
