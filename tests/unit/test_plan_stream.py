"""Steps are recognised in a plan's JSON as it streams, however the text is cut."""

from __future__ import annotations

import msgspec

from stepwise.reasoning.plan_stream import StepScanner
from stepwise.reasoning.types import ExpertStep, Plan, ToolStep

PLAN = Plan([
    ToolStep(1, "calculator", {"expression": "17*23"}),
    ExpertStep(2, "general", 'Say "}{" and \\ then [stop]', []),
    ToolStep(3, "calculator", {"expression": "$1+$2"}, [1, 2]),
])


def test_each_step_comes_out_when_its_object_closes_for_any_chunking():
    """Fed one character at a time, or in chunks of any size, the scanner yields exactly the plan's steps, each
    as soon as its closing brace arrives; braces inside strings do not confuse it."""
    text = msgspec.json.encode(PLAN).decode()
    for size in (1, 2, 3, 7, 50, len(text)):
        scanner = StepScanner()
        seen = []
        for start in range(0, len(text), size):
            seen += scanner.feed(text[start:start + size])
        assert seen == PLAN.steps, size
    scanner = StepScanner()
    first_end = text.index("]},") + 2  # step 1 closes here (its depends_on array, then its brace)
    assert scanner.feed(text[:first_end]) == [PLAN.steps[0]]
