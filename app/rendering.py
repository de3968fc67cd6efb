"""How a step is shown on a terminal, written once for `stepwise ask`'s tree (app/cli.py) and `stepwise trace` and
`replay` (app/inspect.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from reasoning.plan import render
from reasoning.report import StepReport
from reasoning.types import Tool, Verdict, shown_call
from tools import default_tools

# The tools every installation has. The commands show steps without a runtime (`stepwise trace` reads only the
# database), so a call of one of these is shown as its tool says, and a call of any other tool by its arguments.
KNOWN_TOOLS: Mapping[str, Tool] = MappingProxyType(default_tools())


def failed(error: str | None) -> str:
    """What failed a step or a call, as shown in place of its result."""
    return f"FAILED {error}"


def step_result(step: StepReport) -> str:
    """A step's result: its output, FAILED and why, or that it is still running."""
    if step.status == "finished":
        return render(step.output)
    if step.status == "failed":
        return failed(step.error)
    return "(running)"


def call_shown(kind: str, target: str, value: Any) -> str | None:
    """A tool step's call as its tool shows it (the calculator: its expression alone), or None."""
    return shown_call(KNOWN_TOOLS.get(target), value) if kind == "tool" else None


def verdict_marks(verdicts: Iterable[Verdict], *, reasons: bool = False) -> str:
    """✓ or ✗ before each verifier's name; with `reasons`, a verdict other than pass also says its outcome and why."""
    return " ".join(
        ("✓" if v.outcome == "pass" else "✗") + v.verifier + ("" if not reasons or v.outcome == "pass"
                                                              else f"({v.outcome}: {v.reason})")
        for v in verdicts
    )
