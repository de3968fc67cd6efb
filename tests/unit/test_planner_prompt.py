"""The planner's static prefix: the catalogue, the rules, and worked examples that match the configured tools."""

from __future__ import annotations

import json
from pathlib import Path

from reasoning.planner import example_turns
from reasoning.router import Router
from reasoning.types import Expert
from tools import default_tools
from tools.docs import DocSearch

ROUTER = Router({"general": Expert(name="general", backend=None)}, "general")
DOCS = DocSearch(Path(__file__).resolve().parent.parent / "fixtures" / "docs")


def example_targets(tools) -> list[set[str]]:
    turns = example_turns(ROUTER, tools)
    return [{step["target"] for step in json.loads(t.content)["steps"]} for t in turns if t.role == "assistant"]


def test_examples_are_valid_plans_that_target_the_default_expert():
    """Every worked example is a plan in the planner's own JSON, naming the router's default expert."""
    targets = example_targets(default_tools())
    assert {"calculator"} in targets and {"general"} in targets and len(targets) == 4


def test_a_configured_docs_tool_gets_its_own_worked_example():
    """With the docs tool present, one more example shows a docs step; without it, none mentions docs."""
    assert {"docs"} in example_targets(default_tools() | {"docs": DOCS})
    assert not any("docs" in t for t in example_targets(default_tools()))
