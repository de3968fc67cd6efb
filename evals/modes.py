"""How one item is run, per mode. Each is a real, traced run through the runtime's engine and trace sink:

- direct: one call to the default expert, no plan (`Runtime.chat`) — room to work a number out, an expression's
  shape for an expression answer;
- orchestrated: the full system, `Runtime.ask`;
- sequential: the same planned steps, one at a time (`Runtime.ask(..., sequential=True)`), the ReAct-like baseline;
Function-call items (BFCL) are one conversation turn whose answer is calls of the item's functions, decoded under
their schemas (`Runtime.chat(messages, functions=…)`): they run in `direct` mode only.
"""

from __future__ import annotations

from typing import Any, Literal

from stepwise.evals.bfcl import json_schema
from stepwise.evals.types import Item
from stepwise.reasoning.prompts import WORKED_SYSTEM
from stepwise.reasoning.report import RunReport
from stepwise.reasoning.types import EXPERT_SYSTEM, Constraint, Function, Message, Regex

Mode = Literal["direct", "orchestrated", "sequential"]
MODES: tuple[Mode, ...] = ("direct", "orchestrated", "sequential")

# The single-call baseline gets what a single call would be given: room to work a number out (scored by its last
# number, as GSM8K is), and an expression's shape where the answer is an expression (bounded: a small model left to
# it writes digits until max_tokens). Room means the solution ends on its own: at the planner's 320 tokens
# (WORKED_MAX_TOKENS) 21 of gsm_symbolic's first 50 solutions ran into the limit, and the 50 answered 11 against 19
# at 640, where none did (README, Evals, "Thirtieth session").
DIRECT_MAX_TOKENS = 640
_DIRECT: dict[str, tuple[str, Constraint | None, int]] = {
    "number": (WORKED_SYSTEM, None, DIRECT_MAX_TOKENS),
    "expression": (EXPERT_SYSTEM, Regex(r"[0-9+\-*/() ]{1,40}"), 32),
}


async def run_item(runtime: Any, item: Item, mode: Mode, deadline_s: float) -> RunReport:
    """The item's run, as a report folded from its own events."""
    if item.answer_type == "function_calls":
        if mode != "direct":
            raise NotImplementedError("function-call items are one decoded turn: run them in direct mode")
        messages = [Message(m["role"], m["content"]) for m in item.meta["messages"]]
        functions = [Function(**json_schema(f)) for f in item.meta["functions"]]
        return await runtime.chat(messages, functions=functions, require_call=True,
                                  parallel_calls=item.meta["parallel"], deadline_s=deadline_s)
    if mode == "direct":
        system, constraint, max_tokens = _DIRECT.get(item.answer_type, (EXPERT_SYSTEM, None, 128))
        return await runtime.chat([Message("system", system), Message("user", item.question)], constraint=constraint,
                                  max_tokens=max_tokens, deadline_s=deadline_s)
    return await runtime.ask(item.question, deadline_s, sequential=mode == "sequential")


def predicted(item: Item, report: RunReport) -> Any:
    """What the scorer judges: the answer's text, or its function calls as [{name, arguments}]."""
    if report.answer is None:
        return None
    if item.answer_type == "function_calls":
        calls = getattr(report.answer, "tool_calls", None) or []
        return [{"name": c["name"] if isinstance(c, dict) else c.name,
                 "arguments": c["arguments"] if isinstance(c, dict) else c.arguments} for c in calls]
    return report.answer.text
