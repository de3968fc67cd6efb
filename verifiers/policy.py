"""The verdict policy: what a step's verdicts mean for it. The worst verdict wins (pass < retry < replan < fail);
a retry beyond the allowed number becomes a replan."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from stepwise.reasoning.types import Outcome, Verdict

SEVERITY: dict[str, int] = {"pass": 0, "retry": 1, "replan": 2, "fail": 3}


class VerdictPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Per step kind: how often a step is run again, with the verifiers' reasons as feedback. A tool given the same
    # arguments gives the same result, so by default its "retry" goes straight to a replan.
    max_retries: dict[str, int] = msgspec.field(default_factory=lambda: {"tool": 0, "expert": 1})
    max_replans: int = 1  # per run: how often the planner repairs the plan after a step failed for good

    def attempts(self, kind: str) -> int:
        return self.max_retries.get(kind, 0) + 1

    def decide(self, verdicts: Sequence[Verdict], attempt: int, kind: str) -> Outcome:
        """The action for a step's verdicts on its `attempt`-th run (1 = first)."""
        worst: Outcome = max((v.outcome for v in verdicts), key=SEVERITY.__getitem__) if verdicts else "pass"
        if worst == "retry" and attempt >= self.attempts(kind):
            return "replan"
        return worst
