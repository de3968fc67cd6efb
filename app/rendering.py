"""How a run and its steps are shown on a terminal, written once for `stepwise ask` (its progress and tree;
app/cli.py) and `stepwise trace` and `replay` (app/inspection/)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from stepwise.reasoning import events as ev
from stepwise.reasoning.plan import render
from stepwise.reasoning.report import RunReport, StepReport
from stepwise.reasoning.types import Step, Tool, Verdict, shown_call
from stepwise.tools import default_tools

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


def brief(step: Step | StepReport) -> str:
    """A step's input in one line: its call as its tool shows it, else the input rendered; at most 80 characters."""
    text = call_shown(step.kind, step.target, step.input)
    text = render(step.input) if text is None else text
    return text if len(text) <= 80 else text[:79] + "…"


class Progress:
    """One line on stderr per milestone, so a run of tens of seconds shows it is alive; while the planner writes, each
    line it finishes (a step as written) with the tokens so far — and on a terminal, the count ticking in between."""

    def __init__(self, stream=None) -> None:
        self._stream = stream or sys.stderr
        self._ticking = False  # a count is shown on the current line, to be overwritten

    def emit(self, event: ev.AnyEvent) -> None:
        match event:
            case ev.RunStarted():
                line = "planning…"
            case ev.PlanProgressed(tokens=tokens, line=None):
                if self._stream.isatty():
                    print(f"\r\x1b[Kplanning… {tokens} tokens", end="", file=self._stream, flush=True)
                    self._ticking = True
                return
            case ev.PlanProgressed(tokens=tokens, line=str() as written):
                line = f"  {tokens:>4} tokens │ {written[:100]}"
            case ev.PlanReady(plan=plan):
                line = f"plan: {len(plan.steps)} step(s)"
            case ev.StepFinished(step_id=sid, output=output):
                line = f"step {sid} done: {render(output)[:80]}"
            case ev.StepFailed(step_id=sid, error=error):
                line = f"step {sid} failed: {error}"
            case ev.AnswerReady():
                line = "answer ready"
            case _:
                return
        if self._ticking:
            line, self._ticking = "\r\x1b[K" + line, False
        print(line, file=self._stream, flush=True)


def tree(report: RunReport) -> str:
    """The answer, then the run and its steps as a tree."""
    said = report.error.message if report.error else ""
    head = report.answer.text if report.answer else f"No answer. {said}".rstrip()
    u = report.usage
    lines = [
        head,
        f"run {report.run_id} {report.status} in {(report.latency_ms or 0) / 1000:.1f}s · {u.model_calls} model "
        f"call(s) · "
        f"{u.input_tokens} in ({u.cached_tokens} cached) / {u.output_tokens} out tokens",
    ]
    for i, step in enumerate(report.steps):
        branch = "└─" if i == len(report.steps) - 1 else "├─"
        shown = call_shown(step.kind, step.target, step.input)
        if shown is None:
            shown = render(step.input) if isinstance(step.input, dict) else step.input
        result = step_result(step)
        after = f" (after {', '.join(map(str, step.depends_on))})" if step.depends_on else ""
        checks = verdict_marks(step.verdicts)
        lines.append(f"{branch} [{step.id}] {step.target}: {shown} → {result}  {step.duration_ms or 0:.1f} ms{after} "
                     f"{checks}".rstrip())
    return "\n".join(lines)
