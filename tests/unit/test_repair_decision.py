"""The repair decision: which failures a new plan may fix, and when the run stops asking for one."""

from __future__ import annotations

import pytest

from stepwise.reasoning import errors
from stepwise.reasoning.repair_decision import Tried, decide_repair
from stepwise.verifiers.policy import VerdictPolicy

WRITTEN = frozenset({1, 2})

CASES = [
    # (failure, tried, max_replans, decision, why)
    (errors.ToolError(1, "division by zero"), Tried(written=WRITTEN), 1, "replan", "a tool refusing its input"),
    (errors.ToolError(1, "division by zero"), Tried(replans=1, written=WRITTEN), 1, "fail", "no replans left"),
    (errors.ToolError(1, "division by zero"), Tried(written=WRITTEN), 0, "fail", "a policy without replans"),
    (errors.ToolError(1, "division by zero"), Tried(planned=False), 1, "replan", "a caller's plan whose tool refused"),
    (errors.StepRejected(1, "replan: wrong", repairable=True), Tried(), 1, "replan", "verdicts asking for a new plan"),
    (errors.StepRejected(1, "fail: wrong"), Tried(), 1, "fail", "verdicts failing the step"),
    (errors.StepRejected(1, "replan: wrong", repairable=True), Tried(replans=2), 2, "fail", "the last replan used"),
    (errors.PlanInvalid("unknown tool", 2), Tried(written=WRITTEN), 1, "replan", "the planner's step broke a rule"),
    (errors.PlanInvalid("unknown tool", 2), Tried(planned=False, written=WRITTEN), 1, "fail",
     "the caller's plan broke a rule"),
    (errors.PlanInvalid("unknown tool", 7), Tried(written=WRITTEN), 1, "fail", "a rule naming no written step"),
    (errors.PlanInvalid("no steps"), Tried(written=WRITTEN), 1, "fail", "a rule naming no step"),
    (errors.PlanInvalid("unknown tool", 2), Tried(replans=1, written=WRITTEN), 1, "fail",
     "an invalid replan, none left"),
    (errors.DeadlineExceeded("passed"), Tried(written=WRITTEN), 1, "fail", "a deadline"),
    (errors.BudgetExceeded("max_steps", "too many"), Tried(written=WRITTEN), 1, "fail", "a budget"),
    (errors.BackendUnavailable("down"), Tried(written=WRITTEN), 1, "fail", "a model server"),
    (ValueError("bug"), Tried(written=WRITTEN), 1, "fail", "anything else"),
]


@pytest.mark.parametrize(("failure", "tried", "max_replans", "decision"), [c[:4] for c in CASES],
                         ids=[c[4] for c in CASES])
def test_repair_decision(failure: BaseException, tried: Tried, max_replans: int, decision: str) -> None:
    """A failure, what the run has tried and the policy give the decision the table names."""
    assert decide_repair(failure, tried, VerdictPolicy(max_replans=max_replans)) == decision
