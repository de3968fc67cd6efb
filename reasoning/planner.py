"""The planner: the model writes a Plan decoded under the plan's JSON schema, which embeds each tool's
argument schema, so a tool's arguments are never parsed out of free text."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from reasoning.events import EventSink
from reasoning.plan import MAX_STEPS, plan_schema
from reasoning.router import Router
from reasoning.types import JsonSchema, Message, Plan, Sampling, Tool

_RULES = """You plan how to answer a question with steps that run in parallel when independent.
Reply with a plan: a list of steps. A tool step calls a tool with arguments; an expert step asks an expert a short question.
A step's input may use the result of an earlier step N by writing $N; then list N in depends_on.
Give each independent sub-computation its own step. Do not compute anything in your head: use steps.
Use at most {max_steps} steps.

Examples:
Q: What is 2*3 plus 4*5?
{{"steps":[{{"id":1,"kind":"tool","target":"calculator","input":{{"expression":"2*3"}},"depends_on":[]}},{{"id":2,"kind":"tool","target":"calculator","input":{{"expression":"4*5"}},"depends_on":[]}},{{"id":3,"kind":"tool","target":"calculator","input":{{"expression":"$1+$2"}},"depends_on":[1,2]}}]}}
Q: How many legs do 3 spiders have?
{{"steps":[{{"id":1,"kind":"expert","target":"{expert}","input":"How many legs does a spider have? Reply with a number.","depends_on":[]}},{{"id":2,"kind":"tool","target":"calculator","input":{{"expression":"$1*3"}},"depends_on":[1]}}]}}
Q: Who wrote Hamlet?
{{"steps":[{{"id":1,"kind":"expert","target":"{expert}","input":"Who wrote Hamlet?","depends_on":[]}}]}}
"""


def planner_prompt(tools: Mapping[str, Tool], router: Router, max_steps: int = MAX_STEPS) -> str:
    """The static system prompt: the catalogue and the rules. It comes first so prefix caches reuse it."""
    lines = ["Tools:"]
    lines += [f"- {t.name}: {t.description}" for t in tools.values()]
    lines.append("Experts (target one by name, or a skill to let the router choose):")
    lines += [f"- {e.name}: {e.description} (skills: {', '.join(e.skills) or 'none'})" for e in router.experts.values()]
    return "\n".join(lines) + "\n" + _RULES.format(max_steps=max_steps, expert=router.default)


class Planner:
    def __init__(self, router: Router, tools: Mapping[str, Tool], *, target: str | None = None, max_steps: int = MAX_STEPS):
        self.router = router
        self.target = target or router.default
        self._system = planner_prompt(tools, router, max_steps)
        self._constraint = JsonSchema("plan", plan_schema(tools, router.targets(), max_steps))
        # Generous: a plan cut off by max_tokens cannot decode; the run's deadline bounds the time instead.
        self._sampling = Sampling(max_tokens=1024)

    async def plan(self, question: str, *, sink: EventSink, run_id: uuid.UUID, deadline: float) -> Plan:
        messages = [Message("system", self._system), Message("user", f"Q: {question}")]
        _, plan = await self.router.call(
            self.target, messages, sink=sink, run_id=run_id, purpose="plan", deadline=deadline,
            constraint=self._constraint, sampling=self._sampling, output_type=Plan,
        )
        return plan
