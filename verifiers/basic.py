"""The first checks: a deterministic tool's result is recomputed; an expert's output is non-empty text."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgspec

from reasoning.types import Step, Tool, Verdict


class ToolRecomputed:
    """Runs a deterministic tool a second time on the same arguments; the results must agree.

    This catches state leaking between calls and results that were altered after the call."""

    name = "tool_recomputed"
    kinds = frozenset({"tool"})

    def __init__(self, tools: Mapping[str, Tool]) -> None:
        self._tools = tools

    async def verify(self, step: Step, resolved_input: Any, output: Any) -> Verdict:
        tool = self._tools[step.target]
        if not tool.deterministic:
            return Verdict(self.name, "pass", f"{tool.name} is not deterministic: not recomputed")
        again = await tool.run(msgspec.convert(resolved_input, tool.args_type))
        if _same(again, output):
            return Verdict(self.name, "pass", f"recomputed {again!r}")
        return Verdict(self.name, "fail", f"recomputed {again!r}, step said {output!r}")


class ExpertAnswered:
    """An expert's output must be text, and not empty (an empty answer asks for a retry)."""

    name = "expert_answered"
    kinds = frozenset({"expert"})

    async def verify(self, step: Step, resolved_input: Any, output: Any) -> Verdict:
        if not isinstance(output, str):
            return Verdict(self.name, "fail", f"expected text, got {type(output).__name__}")
        if not output.strip():
            return Verdict(self.name, "retry", "empty answer")
        return Verdict(self.name, "pass", f"{len(output)} characters")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-12)
    return a == b
