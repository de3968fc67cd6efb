"""The planner: the model writes a Plan decoded under the plan's JSON schema, which embeds each tool's
argument schema, so a tool's arguments are never parsed out of free text."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from reasoning.context import RunContext
from reasoning.plan import MAX_STEPS, plan_schema
from reasoning.plan_stream import StepScanner
from reasoning.router import Router
from reasoning.types import JsonSchema, Message, Plan, Sampling, Step, Tool

_RULES = """Rules:
- One step per independent part of the question; independent steps run in parallel.
- A tool step calls a tool with its arguments. An expert step asks one expert a short, self-contained question:
  target the expert whose skills fit that part, by name or by skill.
- A step may use the result of step N by writing $N in its input; then N goes in depends_on. $ means nothing else:
  write amounts of money without it.
{calculator}{lookup}- Stop when every part of the question has its step. At most {max_steps} steps."""

# Worked examples, sent as earlier turns of the conversation (small models follow turns better than prose).
_EXAMPLES = [
    ("What is 2*3 plus 4*5?",
     '{{"steps":[{{"id":1,"kind":"tool","target":"calculator","input":{{"expression":"2*3"}},"depends_on":[]}},'
     '{{"id":2,"kind":"tool","target":"calculator","input":{{"expression":"4*5"}},"depends_on":[]}},'
     '{{"id":3,"kind":"tool","target":"calculator","input":{{"expression":"$1+$2"}},"depends_on":[1,2]}}]}}'),
    ("Who wrote Hamlet?",
     '{{"steps":[{{"id":1,"kind":"expert","target":"{expert}","input":"Who wrote Hamlet?","depends_on":[]}}]}}'),
    ("How many legs do 3 spiders have?",
     '{{"steps":[{{"id":1,"kind":"expert","target":"{expert}","input":"How many legs does a spider have? Reply with a number.","depends_on":[]}},'
     '{{"id":2,"kind":"tool","target":"calculator","input":{{"expression":"$1*3"}},"depends_on":[1]}}]}}'),
    ("Name the capital of Spain and the author of Faust.",
     '{{"steps":[{{"id":1,"kind":"expert","target":"{expert}","input":"What is the capital of Spain?","depends_on":[]}},'
     '{{"id":2,"kind":"expert","target":"{expert}","input":"Who wrote Faust?","depends_on":[]}}]}}'),
]


# Examples for tools that are not always there, added when they are: without them the small default model
# rarely reaches for a tool it has only seen described.
_SQL = '{{{{"id":{id},"kind":"tool","target":"sql","input":{{{{"query":"SELECT count(*) FROM orders"}}}},"depends_on":[]}}}}'
_DOCS = '{{{{"id":{id},"kind":"tool","target":"docs","input":{{{{"query":"refund days","k":2}}}},"depends_on":[]}}}}'
_TOOL_EXAMPLES = {  # formatted twice: here with the ids, later (like _EXAMPLES) with the expert
    ("sql", "docs"): ("How many orders are there, and how many days do refunds take?",
                      '{{"steps":[' + _SQL.format(id=1) + "," + _DOCS.format(id=2) + "]}}"),
    ("sql",): ("How many orders are there?", '{{"steps":[' + _SQL.format(id=1) + "]}}"),
    ("docs",): ("What do the documents say about refunds?", '{{"steps":[' + _DOCS.format(id=1) + "]}}"),
}


def planner_prompt(tools: Mapping[str, Tool], router: Router, max_steps: int = MAX_STEPS) -> str:
    """The static system prompt: the catalogue and the rules. It comes first so prefix caches reuse it."""
    lines = ["You plan how to answer a question as a list of steps.", "Tools:"]
    lines += [f"- {t.name}: {t.description}" for t in tools.values()]
    lines.append("Experts:")
    lines += [f"- {e.name}: {e.description} (skills: {', '.join(e.skills) or 'none'})" for e in router.experts.values()]
    calculator = "- Never compute in your head: arithmetic goes to the calculator. Text never goes to the calculator.\n"
    lookup = "- sql sees only the tables and columns listed; a rule, policy or how-to is a docs search.\n" if {"sql", "docs"} <= set(tools) else ""
    return "\n".join(lines) + "\n" + _RULES.format(max_steps=max_steps, calculator=calculator if "calculator" in tools else "", lookup=lookup)


def example_turns(router: Router, tools: Mapping[str, Tool] | None = None) -> list[Message]:
    examples = list(_EXAMPLES)
    present = tuple(name for name in ("sql", "docs") if tools and name in tools)
    if present:
        examples.append(_TOOL_EXAMPLES[present])
    turns = []
    for question, plan in examples:
        turns += [Message("user", f"Q: {question}"), Message("assistant", plan.format(expert=router.default))]
    return turns


class Planner:
    def __init__(self, router: Router, tools: Mapping[str, Tool], *, target: str | None = None, max_steps: int = MAX_STEPS,
                 parallel_calls: bool = False):
        self.router = router
        self.tools = tools
        self.target = target or router.default
        self.max_steps = max_steps
        # Off by default: the small default model plans independent calls as separate steps, which run in parallel
        # anyway; offering "tools" steps changes the plans it writes.
        self.parallel_calls = parallel_calls
        # Generous: a plan cut off by max_tokens cannot decode; the run's deadline bounds the time instead.
        self._sampling = Sampling(max_tokens=1024)
        self._by_toolset: dict[tuple[str, ...], tuple[list[Message], JsonSchema]] = {}

    def prompt_for(self, allowed: tuple[str, ...]) -> tuple[list[Message], JsonSchema]:
        """The static prefix and the plan schema for a set of tools, built once per set (so each set's prefix
        stays byte-identical across runs, for the prefix cache)."""
        if allowed not in self._by_toolset:
            tools = {name: self.tools[name] for name in allowed}
            prefix = [Message("system", planner_prompt(tools, self.router, self.max_steps)), *example_turns(self.router, tools)]
            schema = plan_schema(tools, self.router.targets(), self.max_steps, self.parallel_calls)
            self._by_toolset[allowed] = prefix, JsonSchema("plan", schema)
        return self._by_toolset[allowed]

    async def replan(self, question: str, ctx: RunContext, allowed: tuple[str, ...], done: list[tuple[Step, Any]],
                     failed: Step, reason: str, *, invalid: bool = False) -> Plan:
        """A repaired plan: the planner sees the question, the steps already done with their results, and the
        failure; steps it writes again unchanged keep their results."""
        prefix, constraint = self.prompt_for(allowed)
        encode = msgspec.json.encode
        lines = [f"Q: {question}", "Steps done so far (write them again unchanged to reuse their results):"]
        lines += [f"{encode(step).decode()} -> {encode(output).decode()}" for step, output in done] or ["(none)"]
        what = "This step broke a rule of plans" if invalid else "This step failed"
        lines += [f"{what}: {encode(failed).decode()}", f"Why: {reason}", "Write the whole plan again, with the failed step fixed."]
        _, plan = await self.router.call(
            self.target, [*prefix, Message("user", "\n".join(lines))], ctx, purpose="replan",
            constraint=constraint, sampling=self._sampling, output_type=Plan,
        )
        return plan

    async def plan(self, question: str, ctx: RunContext, allowed: tuple[str, ...] | None = None,
                   on_step: Callable[[Step], None] | None = None) -> Plan:
        """A plan for `question` that uses only the `allowed` tools (by default, all). `on_step` receives each step
        the moment the model has finished writing it, before the plan is complete."""
        prefix, constraint = self.prompt_for(tuple(self.tools) if allowed is None else allowed)
        on_text = None
        if on_step is not None:
            scanner = StepScanner()

            def on_text(delta: str) -> None:
                for step in scanner.feed(delta):
                    on_step(step)

        _, plan = await self.router.call(
            self.target, [*prefix, Message("user", f"Q: {question}")], ctx, purpose="plan",
            constraint=constraint, sampling=self._sampling, output_type=Plan, on_text=on_text,
        )
        return plan
