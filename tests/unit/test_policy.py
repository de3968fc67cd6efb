"""The verdict policy: the worst verdict wins; retries run out into a replan."""

from __future__ import annotations

from reasoning.types import Verdict
from verifiers.policy import VerdictPolicy

POLICY = VerdictPolicy(max_retries=1)


def test_the_worst_verdict_decides():
    """pass < retry < replan < fail; no verdict at all is a pass."""
    assert POLICY.decide([], 1) == "pass"
    assert POLICY.decide([Verdict("a", "pass"), Verdict("b", "retry")], 1) == "retry"
    assert POLICY.decide([Verdict("a", "fail"), Verdict("b", "replan")], 1) == "fail"


def test_a_retry_past_the_allowed_number_becomes_a_replan():
    """With one retry allowed, a second 'retry' verdict asks for a new plan instead."""
    assert POLICY.decide([Verdict("a", "retry")], 2) == "replan"
    assert VerdictPolicy(max_retries=0).decide([Verdict("a", "retry")], 1) == "replan"
