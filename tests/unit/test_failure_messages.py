"""A failed run's message is written for the person who typed the question: what failed in their terms and what they
can do; the error as recorded (rules of plans, advice meant for the planner) stays in `detail` and the trace."""

from __future__ import annotations

import time
import uuid

import msgspec

from stepwise.app.rendering import tree
from stepwise.reasoning import events as ev
from stepwise.reasoning.context import Budget
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.report import fold
from stepwise.reasoning.types import Plan, Step, ToolStep
from stepwise.tools import default_tools
from stepwise.verifiers.policy import VerdictPolicy
from tests.doubles import Script, engine_with


def calc(sid: int, expression: str) -> Step:
    return ToolStep(sid, "calculator", {"expression": expression}, [])


async def run(script: Script, question: str, plan: Plan | None = None, deadline_s: float = 10,
              budget: Budget = Budget()):
    engine = engine_with(script, default_tools(), policy=VerdictPolicy(max_replans=1))
    recorder = ev.Recorder()
    await engine.run(question, RunOptions(deadline_s=deadline_s, plan=plan, budget=budget), sink=recorder)
    return fold(recorder.events)


def encode(value) -> str:
    return msgspec.json.encode(value).decode()


async def test_planner_advice_never_reaches_the_asker():
    """The planner reads `$57` as a reference twice: the asker, who typed `$57` as money, reads that no plan was found
    and to rephrase, not "write money without $"; the detail keeps the rule for the trace's reader."""
    broken = encode(Plan([calc(1, "$57*2")]))
    report = await run(Script(broken, broken), "What is twice $57?")
    assert report.status == "failed" and report.error.type == "plan_invalid"
    assert "write money without $" not in report.error.message and "step" not in report.error.message
    assert (report.error.message.startswith("No way to answer the question was found")
            and "Rephrase" in report.error.message)
    assert "write money without $" in report.error.detail


async def test_a_callers_plan_that_breaks_a_rule_is_named_to_the_caller():
    """The caller wrote the plan (no planner call): the message names the rule it broke, for them to fix."""
    report = await run(Script(), "Twice?", plan=Plan([calc(1, "$57*2")]))
    assert report.error.type == "plan_invalid" and "refers to step 57" in report.error.message
    assert report.error.message.startswith("The plan given with the question is not valid")


async def test_a_failed_tool_step_is_named_by_what_it_computed_and_the_tools_reason():
    """A calculation the calculator refuses: the message shows the expression and "division by zero", and what to
    check; neither the step's kind nor the arguments' JSON."""
    script = Script(encode(Plan([calc(1, "10/(5-5)")])))  # the repair plan is as broken
    report = await run(script, "What is 10 split into 5-5 parts?", plan=Plan([calc(1, "10/(5-5)")]))
    assert report.error.type == "tool_error"
    message = report.error.message
    assert "calculator: 10/(5-5) (division by zero)" in message and "Check the values" in message
    assert "tool_error" not in message and "{" not in message and "refused" in report.error.detail


async def test_a_deadline_says_how_long_and_how_to_allow_more():
    """A run that outlives its deadline: the message gives the deadline and the option that allows more time."""
    report = await run(Script(hang=True), "Anything?", deadline_s=0.2)
    assert report.error.type == "deadline_exceeded"
    assert ("0.2s" in report.error.message and "--deadline" in report.error.message
            and "deadline_s" in report.error.message)


async def test_a_budget_names_the_limit_reached():
    """A run that reaches its model-call limit: the message names the limit, and that raising it is the remedy."""
    report = await run(Script(), "Anything?", budget=Budget(max_model_calls=0))
    assert report.error.type == "budget_exceeded" and "max_model_calls" in report.error.message
    assert "Raise the limit" in report.error.message


def failed_run(error_type: str, error: str):
    run_id = uuid.uuid4()
    now = time.time()
    return fold([ev.RunStarted(run_id=run_id, at=now, question="q", deadline_s=5),
                 ev.RunFailed(run_id=run_id, at=now, error_type=error_type, error=error, latency_ms=1.0)])


def test_a_server_that_cannot_be_reached_is_named_with_how_to_check_it():
    """backend_unavailable: the message keeps the server's address and points at `stepwise experts`."""
    report = failed_run("backend_unavailable", "http://127.0.0.1:9/v1/chat/completions: connection refused")
    assert ("could not be reached (http://127.0.0.1:9" in report.error.message
            and "stepwise experts" in report.error.message)


def test_a_reply_cut_off_at_max_tokens_says_so():
    """A constrained reply cut off at max_tokens: the message says the token limit cut it and to allow more."""
    report = failed_run("constraint_violated", "the expert output broke its constraint (cut off at max_tokens): EOF")
    assert ("cut off at its token limit (max_tokens)" in report.error.message
            and "Allow more tokens" in report.error.message)


def test_every_failure_message_ends_with_what_to_do():
    """Each kind of failure the HTTP map knows reads as a sentence of what failed, then one of what to do, and never
    names its error type (`backend_timeout` is for programs; `cancelled` is also a word)."""
    from stepwise.app.status import STATUS_BY_ERROR

    for kind in STATUS_BY_ERROR:
        message = failed_run(kind, "detail").error.message
        assert message.endswith(".") and message.count(". ") >= 1, (kind, message)
        assert "_" not in kind or kind not in message, (kind, message)


def test_ask_prints_the_askers_message_when_there_is_no_answer():
    """`stepwise ask`'s first line for a failed run is the message, not the error's type and detail."""
    report = failed_run("backend_timeout", "no reply in 30s")
    head = tree(report).splitlines()[0]
    assert head == f"No answer. {report.error.message}" and "backend_timeout" not in head
