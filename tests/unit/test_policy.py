"""The verdict policy: the worst verdict wins; retries run out into a replan."""

from __future__ import annotations

from stepwise.reasoning.types import Verdict
from stepwise.verifiers.policy import VerdictPolicy

POLICY = VerdictPolicy()


def test_the_worst_verdict_decides():
    """pass < retry < replan < fail; no verdict at all is a pass."""
    assert POLICY.decide([], 1, "expert") == "pass"
    assert POLICY.decide([Verdict("a", "pass"), Verdict("b", "retry")], 1, "expert") == "retry"
    assert POLICY.decide([Verdict("a", "fail"), Verdict("b", "replan")], 1, "expert") == "fail"


def test_a_retry_past_the_allowed_number_becomes_a_replan_per_step_kind():
    """Experts get one retry by default, tools none (same arguments, same result): then a new plan is asked for."""
    assert POLICY.decide([Verdict("a", "retry")], 2, "expert") == "replan"
    assert POLICY.decide([Verdict("a", "retry")], 1, "tool") == "replan"
    assert VerdictPolicy(max_retries={"expert": 2}).decide([Verdict("a", "retry")], 2, "expert") == "retry"
