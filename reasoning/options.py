"""How a run is asked for: the options a caller (the HTTP body, the CLI, an eval) sets, written once here and passed
along whole by the runtime to the engine instead of being re-listed as parameters at each layer.

    RunOptions     a question answered by a plan (Engine.run)
    CheckedRun     RunOptions whose tool allowlist and plan the engine has checked (Engine.check): made only there,
                   so a check that ran before the run (to answer 400) does not run again inside it
    ChatOptions    one conversation turn without a plan (Engine.chat)
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from stepwise.reasoning.context import Budget
from stepwise.reasoning.plan import Dag
from stepwise.reasoning.types import Constraint, Function, Plan

__all__ = ["ChatOptions", "CheckedRun", "RunOptions"]

Deadline = Annotated[float, msgspec.Meta(gt=0)]


class RunOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A question's run: its deadline and limits; the caller's own `plan` (else the planner's); a `tools` allowlist
    (only those may be planned or run); `stream_plan`: each planned step starts as soon as the planner has written it
    and its inputs exist; `sequential`: the planned steps run one at a time (the ReAct-like baseline evals compare
    against). None for `deadline_s` and `stream_plan` is the runtime's default (STEPWISE_DEADLINE_S,
    STEPWISE_STREAM_PLAN); the engine itself needs a deadline."""

    deadline_s: Deadline | None = None
    plan: Plan | None = None
    budget: Budget = Budget()
    tools: tuple[str, ...] | None = None
    stream_plan: bool | None = None
    sequential: bool = False


class CheckedRun(msgspec.Struct, frozen=True):
    """Run options the engine has checked: the allowlist as the tools it names (in the engine's order) and the
    caller's plan, if any, validated against them."""

    options: RunOptions
    allowed: tuple[str, ...]
    dag: Dag | None = None


class ChatOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One turn: `target` answers (an expert name or skill; None: the default expert); with `functions`, the answer
    is calls of them decoded under their schemas (at least one with `require_call`, at most one without
    `parallel_calls`), or text when no call is required and none fits; without, text — under `constraint` if given.
    None for `deadline_s` is the runtime's default."""

    deadline_s: Deadline | None = None
    budget: Budget = Budget()
    target: str | None = None
    functions: tuple[Function, ...] = ()
    require_call: bool = False
    parallel_calls: bool = True
    max_tokens: int | None = None
    constraint: Constraint | None = None
