"""Verifiers: each implements `reasoning.types.Verifier` and returns a Verdict that is recorded."""

from __future__ import annotations

from collections.abc import Mapping

from reasoning.types import Tool, Verifier
from verifiers.basic import ExpertAnswered, ToolRecomputed


def default_verifiers(tools: Mapping[str, Tool]) -> list[Verifier]:
    return [ToolRecomputed(tools), ExpertAnswered()]
