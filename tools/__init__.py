"""Tools a plan's steps may call. Each implements `reasoning.types.Tool`; a tool signals bad input with ValueError."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from stepwise.reasoning.types import Tool
from stepwise.tools.calculator import Calculator
from stepwise.tools.decorator import FunctionTool, tool

__all__ = ["FunctionTool", "default_tools", "load_tools", "tool"]


def default_tools() -> dict[str, Tool]:
    """The tools available when nothing else is configured, by name."""
    return {t.name: t for t in (Calculator(),)}


def load_tools(modules: Iterable[str], base: dict[str, Tool] | None = None) -> dict[str, Tool]:
    """`base` (the defaults) plus every @tool found in the named modules; a name used twice is an error."""
    tools = dict(default_tools() if base is None else base)
    for module_name in modules:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if isinstance(value, FunctionTool):
                if value.name in tools and tools[value.name] is not value:
                    raise ValueError(f"tool name {value.name!r} from {module_name} is already taken")
                tools[value.name] = value
    return tools
