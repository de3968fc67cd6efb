"""What a run does when a step fails for good or a plan breaks a rule: ask the planner for a new plan, or fail.

One pure function of data (the failure, what has been tried, the policy), so the plain and the streamed run decide
alike; the engine does the I/O around it (emits Replanned, calls the planner, runs the new plan). Retrying a step
with feedback is decided before a failure gets here, per step, by `Policy.decide` on the step's verdicts.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Literal

import msgspec

from stepwise.reasoning import errors
from stepwise.reasoning.types import Policy

Decision = Literal["replan", "fail"]


class Tried(msgspec.Struct, frozen=True, kw_only=True):
    """What a run has tried so far: how many new plans it asked for, whose plan it runs, the step ids it wrote."""

    replans: int = 0
    planned: bool = True  # the planner's plan; a caller's own plan is theirs to fix, never replanned
    written: Container[int] = frozenset()  # ids of the steps the plan wrote, valid or not


def decide_repair(failure: BaseException, tried: Tried, policy: Policy) -> Decision:
    """Replan when the policy allows another plan and a new plan can fix the failure: a tool refusing its input, a
    step whose verdicts asked for a new plan, or a step of the planner's plan breaking a rule of plans. Anything
    else (a deadline, a budget, a backend, a rule no written step broke) fails the run."""
    if tried.replans >= policy.max_replans:
        return "fail"
    match failure:
        case errors.ToolError():
            return "replan"
        case errors.StepRejected(repairable=True):
            return "replan"
        case errors.PlanInvalid(step_id=int() as step_id) if tried.planned and step_id in tried.written:
            return "replan"
    return "fail"
