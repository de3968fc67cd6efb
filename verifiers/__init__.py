"""Verifiers: each implements `reasoning.types.Verifier` and returns a Verdict that is recorded."""

from __future__ import annotations

from collections.abc import Mapping

from stepwise.reasoning.types import Tool, Verifier
from stepwise.verifiers.basic import ExpertAnswered, NumericSanity, ResultTyped, ToolRecomputed
from stepwise.verifiers.model import Judge, SelfConsistency

MODEL_VERIFIERS = {"self_consistency": SelfConsistency, "llm_judge": Judge}


def default_verifiers(tools: Mapping[str, Tool], extra: tuple[str, ...] = ()) -> list[Verifier]:
    """The deterministic checks, plus the model-based ones named in `extra` (they cost model calls)."""
    unknown = sorted(set(extra) - set(MODEL_VERIFIERS))
    if unknown:
        raise ValueError(f"unknown verifiers {unknown} (known: {', '.join(MODEL_VERIFIERS)})")
    return [ToolRecomputed(tools), ResultTyped(tools), NumericSanity(), ExpertAnswered(),
            *(MODEL_VERIFIERS[n]() for n in extra)]
