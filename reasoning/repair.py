"""In-step repair: a tool call the tool refused is written again by the model inside the same step, before the run
asks the planner for a new plan. Only a tool that knows the language of its argument is repaired this way: its
`grammar` attribute holds llguidance Lark rules whose rule `<tool name>_arg` derives its first argument (the sql
tool's: the SELECTs its database's schema allows, tools/sql_grammar.py). The model sees the tool's description
(for sql, the schema), the failed argument and the error, and decodes the new argument under that grammar; up to
`TRIES` times, each try a tool call of its own in the trace. A refusal that outlasts them is the step's ToolError, and
the run replans as for any tool error.

Replanning rewrites the whole plan from the question (a plan call: the examples, every tool, every step); a repair
rewrites one argument from one error, with the rules of that argument enforced while it is written."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from stepwise.reasoning import prompts
from stepwise.reasoning.context import RunContext
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import Grammar, Message, Sampling, Tool, tool_grammar

TRIES = 2
MAX_TOKENS = 200  # a query of a few joins; every output token costs ~80 ms on a small CPU

Attempt = Callable[[dict[str, Any]], Awaitable[tuple[Any, str | None]]]
"""Runs the tool on these arguments and records the call: its result, or None and the error."""


def repairable(tool: Tool) -> bool:
    return tool_grammar(tool) is not None


def argument_rule(tool: Tool) -> str:
    """The rule of the tool's grammar that derives its first argument."""
    return f"{tool.name}_arg"


def repair_grammar(tool: Tool) -> str:
    """The tool's rules with its argument as the whole output, and a `;` the model may end with (dropped before the
    call): models end SQL with one, and a model denied it, with the end of text unlikely, writes on (`AND x = 1…`)."""
    return f'%llguidance {{}}\nstart: {argument_rule(tool)} ";"?\n{tool_grammar(tool)}'


def repair_messages(tool: Tool, failures: list[tuple[str, str]]) -> list[Message]:
    """The prompt: the tool's description first (the same for every repair of this tool, so a server's prefix cache
    keeps it), then each failed argument with its error, oldest first."""
    tried = "\n".join(prompts.REPAIR_FAILED.format(argument=argument, error=error) for argument, error in failures)
    return [Message("system", prompts.REPAIR_SYSTEM.format(description=tool.description)),
            Message("user", prompts.REPAIR_USER.format(tried=tried))]


async def repair_in_step(router: Router, tool: Tool, step_id: int, args: dict[str, Any], error: str, attempt: Attempt,
                         ctx: RunContext) -> tuple[dict[str, Any], Any, str | None]:
    """Rewrite the first argument of `args` (which failed with `error`) under the tool's grammar and run it again,
    up to TRIES times: the arguments last run, and their result, or None and the last error."""
    field = tool.args_type.__struct_fields__[0]
    failures = [(str(args[field]), error)]
    constraint = Grammar(repair_grammar(tool))
    for _ in range(TRIES):
        # a second try sees the first's failure too, and samples: greedy decoding of a similar prompt tends to repeat
        sampling = Sampling(max_tokens=MAX_TOKENS, temperature=0.0 if len(failures) == 1 else 0.7)
        completion, _ = await router.call(router.default, repair_messages(tool, failures), ctx, purpose="repair",
                                          step_id=step_id, constraint=constraint, sampling=sampling)
        args = {**args, field: completion.text.strip().removesuffix(";")}
        result, failed = await attempt(args)
        if failed is None:
            return args, result, None
        failures.append((args[field], failed))
    return args, None, failures[-1][1]
