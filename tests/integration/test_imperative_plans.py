"""Imperative mode: POST /v1/reason with the caller's plan runs it without the planner, with the same trace shape;
an invalid plan is a 400 naming the step and the problem."""

from __future__ import annotations

import msgspec
import pytest

from stepwise.reasoning.report import RunReport

pytestmark = pytest.mark.model


def calc(sid: int, expression: str, *deps: int) -> dict:
    return {"id": sid, "kind": "tool", "target": "calculator", "input": {"expression": expression},
            "depends_on": list(deps)}


async def test_a_callers_plan_runs_without_the_planner_and_traces_like_a_planned_one(smollm2_server, pg):
    """No planning call is made; the steps, verdicts and rows are those of any run. (The plan names its answer, so
    no model call at all is needed, and none is allowed: the test cannot wait on a slow model.)"""
    plan = {"steps": [calc(1, "17*23"), calc(2, "45*12"), calc(3, "$1+$2", 1, 2)], "answer": 3}
    reply = smollm2_server.client.post("/v1/reason", json={"question": "What is (17*23)+(45*12)?", "plan": plan,
                                                           "budget": {"max_model_calls": 0}})
    report = msgspec.json.decode(reply.content, type=RunReport)
    assert reply.status_code == 200, reply.text
    assert [s.output for s in report.steps] == [391, 540, 931]
    assert all(v.outcome == "pass" for s in report.steps for v in s.verdicts)
    assert msgspec.to_builtins(report.plan) == plan
    smollm2_server.client.get(f"/v1/runs/{report.run_id}")  # flushes the trace
    purposes = [r["purpose"] for r in await pg.fetch("SELECT purpose FROM model_calls WHERE run_id = $1",
                                                     report.run_id)]
    assert "plan" not in purposes
    types = [r["type"] for r in await pg.fetch("SELECT type FROM events WHERE run_id = $1 ORDER BY id", report.run_id)]
    assert types[:3] == ["run_started", "plan_ready", "step_started"] and types.count("step_finished") == 3
    assert await pg.fetchval("SELECT count(*) FROM tool_calls WHERE run_id = $1", report.run_id) == 3


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ({"steps": [calc(1, "1"), calc(2, "$7")]}, "plan: step 2: refers to step 7, which does not exist"),
        ({"steps": [calc(1, "1", 2), calc(2, "2", 1)]}, "plan: step 1: the plan has a cycle through steps [1, 2]"),
        ({"steps": [{"id": 1, "kind": "tool", "target": "search", "input": {}, "depends_on": []}]},
         "plan: step 1: unknown tool 'search'"),
        ({"steps": [{"id": 1, "kind": "tool", "target": "calculator", "input": {"expr": "1"}, "depends_on": []}]},
         "plan: step 1: arguments for 'calculator'"),
    ],
)
def test_an_invalid_plan_is_a_400_naming_the_step_and_the_problem(smollm2_server, plan, message):
    """Validation runs before anything else; nothing is run or recorded for a refused plan."""
    reply = smollm2_server.client.post("/v1/reason", json={"question": "q", "plan": plan})
    assert reply.status_code == 400 and message in reply.json()["detail"]


def test_a_malformed_step_is_a_400_naming_its_path(smollm2_server):
    """A field the plan schema does not have, or a wrong kind, is named with its path in the plan."""
    bad = {"steps": [{**calc(1, "1"), "colour": "red"}]}
    reply = smollm2_server.client.post("/v1/reason", json={"question": "q", "plan": bad})
    assert reply.status_code == 400 and "colour" in reply.text
    wrong_kind = {"steps": [{**calc(1, "1"), "kind": "robot"}]}
    reply = smollm2_server.client.post("/v1/reason", json={"question": "q", "plan": wrong_kind})
    assert reply.status_code == 400 and "steps[0].kind" in reply.text


def test_a_tool_allowlist_is_checked_and_enforced(smollm2_server):
    """An unknown tool in the allowlist is a 400 naming it; a plan using a tool outside the allowlist is refused."""
    unknown = smollm2_server.client.post("/v1/reason", json={"question": "q", "tools": ["nope"]})
    assert unknown.status_code == 400 and "tools: unknown tools ['nope']" in unknown.json()["detail"]
    outside = smollm2_server.client.post("/v1/reason", json={"question": "q", "tools": [],
                                                             "plan": {"steps": [calc(1, "1")]}})
    assert outside.status_code == 400 and "step 1: unknown tool 'calculator'" in outside.json()["detail"]


def test_a_plan_may_state_an_expected_range_that_the_verifiers_hold_it_to(smollm2_server):
    """`expect` travels with the step into the report and the verifiers (a result inside the range passes; the
    unit tests cover those outside it); a range no result can meet is a 400 naming the step. No model call is
    needed (the plan names its answer step, whose number answers the quantity question, so nothing is composed) and
    none is allowed: the run cannot wait on a model slow on a loaded machine (a composer call once ran into the
    deadline here), and would say at once, as budget_exceeded, if it tried."""
    inside = {"steps": [{**calc(1, "6*7"), "expect": {"min": 40, "max": 50}}], "answer": 1}
    reply = smollm2_server.client.post("/v1/reason", json={"question": "6*7?", "plan": inside,
                                                           "budget": {"max_model_calls": 0}})
    assert reply.status_code == 200, reply.text
    assert reply.json()["steps"][0]["verdicts"][-1]["outcome"] == "pass" and reply.json()["usage"]["model_calls"] == 0
    assert reply.json()["plan"]["steps"][0]["expect"] == {"min": 40.0, "max": 50.0}
    impossible = {"steps": [{**calc(1, "6*7"), "expect": {"min": 5, "max": 1}}]}
    reply = smollm2_server.client.post("/v1/reason", json={"question": "6*7?", "plan": impossible})
    assert reply.status_code == 400 and "step 1: expect: min 5 is above max 1" in reply.json()["detail"]
