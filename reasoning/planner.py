"""The planner: the model writes a Plan decoded under the plan's JSON schema, which embeds each tool's
argument schema, so a tool's arguments are never parsed out of free text."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from stepwise.reasoning import prompts
from stepwise.reasoning.context import RunContext
from stepwise.reasoning.plan import MAX_STEPS, plan_schema
from stepwise.reasoning.plan_stream import StepScanner
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import Expect, ExpertStep, JsonSchema, Message, Plan, Sampling, Step, Tool


def planner_prompt(tools: Mapping[str, Tool], router: Router, max_steps: int = MAX_STEPS) -> str:
    """The static system prompt: the catalogue and the rules. It comes first so prefix caches reuse it."""
    lines = [prompts.PLAN_INTRO, prompts.PLAN_TOOLS]
    lines += [prompts.PLAN_TOOL.format(name=t.name, description=t.description) for t in tools.values()]
    lines.append(prompts.PLAN_EXPERTS)
    lines += [prompts.PLAN_EXPERT.format(name=e.name, description=e.description,
                                         skills=", ".join(e.skills) or prompts.PLAN_NO_SKILLS)
              for e in router.experts.values()]
    calculator = prompts.PLAN_CALCULATOR_RULE if "calculator" in tools else ""
    lookup = prompts.PLAN_LOOKUP_RULE if {"sql", "docs"} <= set(tools) else ""
    rules = prompts.PLAN_RULES.format(max_steps=max_steps, calculator=calculator, lookup=lookup)
    return "\n".join(lines) + "\n" + rules


def example_turns(router: Router, tools: Mapping[str, Tool] | None = None) -> list[Message]:
    examples = list(prompts.PLAN_EXAMPLES)
    present = tuple(name for name in ("sql", "docs") if tools and name in tools)
    if present:
        examples.append(prompts.PLAN_TOOL_EXAMPLES[present])
    turns = []
    for question, plan in examples:
        turns += [Message("user", prompts.PLAN_QUESTION.format(question=question)),
                  Message("assistant", plan.format(expert=router.default))]
    return turns


def stated(step: Step) -> Step:
    """The step with what it expects stated: an expert question worded as the worked example teaches for a number
    alone ("… Reply with a number.") expects one. The plan schema has no `expect`, so the planner says it in words;
    the verifiers read only `expect`."""
    if (isinstance(step, ExpertStep) and step.expect is msgspec.UNSET
            and prompts.NUMBER_WANTED in step.input.lower()):
        return msgspec.structs.replace(step, expect=Expect(number=True))
    return step


def as_written(step: Step) -> Step:
    """The step as the planner wrote it, without the `expect` `stated` gave it (a replan shows the model its own
    steps, and a step it writes again unchanged must compare equal)."""
    if step.expect == Expect(number=True) and stated(msgspec.structs.replace(step, expect=msgspec.UNSET)) == step:
        return msgspec.structs.replace(step, expect=msgspec.UNSET)
    return step


def written_json(step: Step) -> str:
    """The step's JSON as the planner writes it (`as_written`), `id` first as the plan schema orders it: msgspec writes
    a tag (`kind`) before the other fields."""
    fields = msgspec.to_builtins(as_written(step))
    return msgspec.json.encode({"id": fields["id"], **fields}).decode()


def _stated(plan: Plan) -> Plan:
    return msgspec.structs.replace(plan, steps=[stated(step) for step in plan.steps])


class Planner:
    def __init__(self, router: Router, tools: Mapping[str, Tool], *, target: str | None = None,
                 max_steps: int = MAX_STEPS, parallel_calls: bool = False):
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
            prefix = [Message("system", planner_prompt(tools, self.router, self.max_steps)),
                      *example_turns(self.router, tools)]
            schema = plan_schema(tools, self.router.targets(), self.max_steps, self.parallel_calls)
            self._by_toolset[allowed] = prefix, JsonSchema("plan", schema)
        return self._by_toolset[allowed]

    async def replan(self, question: str, ctx: RunContext, allowed: tuple[str, ...], done: list[tuple[Step, Any]],
                     failed: Step, reason: str, *, invalid: bool = False) -> Plan:
        """A repaired plan: the planner sees the question, the steps already done with their results, and the
        failure; steps it writes again unchanged keep their results."""
        prefix, constraint = self.prompt_for(allowed)
        lines = [prompts.PLAN_QUESTION.format(question=question), prompts.PLAN_DONE]
        lines += [prompts.PLAN_DONE_STEP.format(step=written_json(step), output=msgspec.json.encode(output).decode())
                  for step, output in done] or [prompts.PLAN_NONE_DONE]
        what = prompts.PLAN_BROKE_RULE if invalid else prompts.PLAN_FAILED
        lines += [what.format(step=written_json(failed)), prompts.PLAN_WHY.format(reason=reason),
                  prompts.PLAN_AGAIN]
        _, plan = await self.router.call(
            self.target, [*prefix, Message("user", "\n".join(lines))], ctx, purpose="replan",
            constraint=constraint, sampling=self._sampling, output_type=Plan,
        )
        return _stated(plan)

    async def plan(self, question: str, ctx: RunContext, allowed: tuple[str, ...] | None = None,
                   on_step: Callable[[Step], None] | None = None) -> Plan:
        """A plan for `question` that uses only the `allowed` tools (by default, all). `on_step` receives each step
        the moment the model has finished writing it, before the plan is complete."""
        prefix, constraint = self.prompt_for(tuple(self.tools) if allowed is None else allowed)
        on_text: Callable[[str], None] | None = None
        if on_step is not None:
            scanner, report_step = StepScanner(), on_step

            def relay(delta: str) -> None:
                for step in scanner.feed(delta):
                    report_step(stated(step))

            on_text = relay

        _, plan = await self.router.call(
            self.target, [*prefix, Message("user", prompts.PLAN_QUESTION.format(question=question))], ctx,
            purpose="plan",
            constraint=constraint, sampling=self._sampling, output_type=Plan, on_text=on_text,
        )
        return _stated(plan)
