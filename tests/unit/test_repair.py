"""Verdicts that change outcomes: a rejected expert answer is retried with the reason as feedback; a step that
still fails gets the plan repaired, keeping the results of unchanged steps; repairs are bounded."""

from __future__ import annotations

import asyncio

import msgspec

from stepwise.reasoning import events as ev
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.report import fold
from stepwise.reasoning.types import Answer, ExpertStep, Plan, Step, ToolStep
from stepwise.tools import default_tools
from stepwise.verifiers.policy import VerdictPolicy
from tests.doubles import Script, engine_with


def encode(value) -> str:
    return msgspec.json.encode(value).decode()


def calc(sid: int, expression: str, *deps: int) -> Step:
    return ToolStep(sid, "calculator", {"expression": expression}, list(deps))


async def run(script: Script, question: str, plan: Plan | None = None, policy: VerdictPolicy = VerdictPolicy(),
              stream_plan: bool = False):
    engine = engine_with(script, default_tools(), policy=policy)
    recorder = ev.Recorder()
    await engine.run(question, RunOptions(deadline_s=10, plan=plan, stream_plan=stream_plan), sink=recorder)
    return fold(recorder.events), recorder.events


async def test_an_empty_expert_answer_is_retried_with_the_reason_as_feedback():
    """The verifier's 'retry' re-asks the expert, telling it why; the second answer passes."""
    script = Script("", "Paris", encode(Answer("Paris", [1])))
    report, _ = await run(script, "Capital of France?", Plan([ExpertStep(1, "general", "Capital of France?")]))
    assert report.status == "finished" and report.steps[0].output == "Paris"
    assert [v.outcome for v in report.steps[0].verdicts if v.verifier == "expert_answered"] == ["retry", "pass"]
    assert "rejected (expert_answered: empty answer)" in script.seen[1][-1].content


async def test_a_failed_step_gets_the_plan_repaired_and_kept_results_are_not_recomputed():
    """Step 2's bad expression fails; the planner sees the done step and the failure, writes step 1 again unchanged
    and fixes step 2: step 1 is not run again, step 2 is, and the run answers."""
    broken = Plan([calc(1, "17*23"), calc(2, "x+1", 1)])
    repaired = Plan([calc(1, "17*23"), calc(2, "$1+1", 1)])
    script = Script(encode(broken), encode(repaired), encode(Answer("392", [1, 2])))
    report, events = await run(script, "17*23, plus one?")
    assert report.status == "finished" and report.replans == 1
    assert [(s.id, s.status, s.output) for s in report.steps] == [(1, "finished", 391), (2, "finished", 392)]
    assert [e.step_id for e in events if isinstance(e, ev.ToolCalled)] == [1, 2, 2]  # step 1 once, step 2 twice
    (replanned,) = [e for e in events if isinstance(e, ev.Replanned)]
    assert replanned.failed_step == 2 and "names are not allowed: 'x'" in replanned.reason
    replan_prompt = script.seen[1][-1].content
    assert '"expression":"17*23"' in replan_prompt and "-> 391" in replan_prompt and "x+1" in replan_prompt


async def test_repairs_are_bounded():
    """A plan that is still broken after its last allowed repair fails the run with the step's error."""
    broken = Plan([calc(1, "y*2")])
    script = Script(encode(broken), encode(broken))
    report, events = await run(script, "y times two?", policy=VerdictPolicy(max_replans=1))
    assert report.status == "failed" and report.error.type == "tool_error" and report.replans == 1
    assert sum(isinstance(e, ev.Replanned) for e in events) == 1


async def test_a_streamed_plan_is_repaired_too_keeping_what_finished():
    """With stream_plan, a step failing for good stops the stream; the planner repairs the plan from the steps done
    so far, and the repaired plan runs without redoing the unchanged ones."""
    broken = Plan([calc(1, "17*23"), calc(2, "x+1", 1)])
    repaired = Plan([calc(1, "17*23"), calc(2, "$1+1", 1)])
    script = Script(encode(broken), encode(repaired), encode(Answer("392", [1, 2])), streams=True)
    report, events = await run(script, "17*23, plus one?", stream_plan=True)
    assert report.status == "finished" and report.replans == 1 and report.answer.text == "392"
    assert [e.step_id for e in events if isinstance(e, ev.ToolCalled)] == [1, 2, 2]
    (replanned,) = [e for e in events if isinstance(e, ev.Replanned)]
    assert replanned.failed_step == 2 and replanned.replan == 1
    assert "-> 391" in script.seen[1][-1].content


class SlowSecondCall(Script):
    """A Script whose second call (the replan) outlasts any deadline."""

    async def generate(self, messages, **kwargs):
        if len(self.seen) == 1:
            await asyncio.sleep(30)
        return await super().generate(messages, **kwargs)


async def test_a_deadline_passing_during_a_replan_is_recorded_as_the_deadline():
    """After a failed step (whose TaskGroup cancelled the run's task on Python 3.11), the run's deadline still ends
    the run as deadline_exceeded, not as a cancellation."""
    script = SlowSecondCall(encode(Plan([calc(1, "x+1")])))
    engine = engine_with(script, default_tools())
    recorder = ev.Recorder()
    await engine.run("x plus one?", RunOptions(deadline_s=0.5), sink=recorder)
    report = fold(recorder.events)
    assert report.status == "failed" and report.error.type == "deadline_exceeded" and report.replans == 1


async def test_a_planned_plan_breaking_a_rule_is_repaired_but_a_callers_is_refused():
    """The planner's `$57` (money, read as a reference) goes back to it with the rule it broke; the repaired plan
    runs. The same plan from a caller fails the run as plan_invalid, with no planner call."""
    broken = Plan([calc(1, "$57*2")])
    script = Script(encode(broken), encode(Plan([calc(1, "57*2")])), encode(Answer("114", [1])))
    report, events = await run(script, "Twice $57?")
    assert report.status == "finished" and report.steps[0].output == 114 and report.replans == 1
    (replanned,) = [e for e in events if isinstance(e, ev.Replanned)]
    assert (replanned.failed_step == 1 and "refers to step 57" in replanned.reason
            and "write money without $" in replanned.reason)
    assert "broke a rule of plans" in script.seen[1][-1].content
    callers = Script()
    report, events = await run(callers, "Twice $57?", plan=broken)
    assert report.status == "failed" and report.error.type == "plan_invalid" and callers.seen == []


async def test_a_streamed_plan_breaking_a_rule_is_repaired_too():
    """With stream_plan, a planned step the rules refuse (`$57`) also goes back to the planner; the repair runs."""
    script = Script(encode(Plan([calc(1, "$57*2")])), encode(Plan([calc(1, "57*2")])), encode(Answer("114", [1])),
                    streams=True)
    report, events = await run(script, "Twice $57?", stream_plan=True)
    assert report.status == "finished" and report.steps[0].output == 114 and report.replans == 1
    assert "broke a rule of plans" in script.seen[1][-1].content
