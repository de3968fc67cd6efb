"""Tools a plan's steps may call. Each implements `reasoning.types.Tool`; a tool signals bad input with ValueError."""

from __future__ import annotations

from reasoning.types import Tool
from tools.calculator import Calculator


def default_tools() -> dict[str, Tool]:
    """The tools available when nothing else is configured, by name."""
    return {tool.name: tool for tool in (Calculator(),)}
