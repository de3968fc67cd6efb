"""What every part of one run shares: its id, where its events go, its deadline, and its budget."""

from __future__ import annotations

import uuid

import msgspec

from stepwise.reasoning.errors import BudgetExceeded
from stepwise.reasoning.events import EventSink
from stepwise.reasoning.types import Usage


class Budget(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Limits on one run; None means no limit. A breach ends the run with BudgetExceeded naming the limit."""

    max_steps: int | None = msgspec.field(default=None)
    max_model_calls: int | None = None
    max_tokens: int | None = None  # input + output tokens over every model call of the run


class RunContext:
    __slots__ = ("run_id", "sink", "deadline", "budget", "model_calls", "tokens")

    def __init__(self, run_id: uuid.UUID, sink: EventSink, deadline: float, budget: Budget = Budget()) -> None:
        self.run_id = run_id
        self.sink = sink
        self.deadline = deadline  # on the event loop's clock
        self.budget = budget
        self.model_calls = 0
        self.tokens = 0

    def charge_call(self) -> None:
        """Count a model call about to be made; refuse it if the run has made all it may."""
        limit = self.budget.max_model_calls
        if limit is not None and self.model_calls >= limit:
            raise BudgetExceeded("max_model_calls", f"the run may make {limit} model call(s) and has made them all")
        self.model_calls += 1

    def charge_tokens(self, usage: Usage) -> None:
        self.tokens += usage.input_tokens + usage.output_tokens
        limit = self.budget.max_tokens
        if limit is not None and self.tokens > limit:
            raise BudgetExceeded("max_tokens", f"the run has used {self.tokens} tokens, more than its {limit}")

    def check_steps(self, count: int) -> None:
        limit = self.budget.max_steps
        if limit is not None and count > limit:
            raise BudgetExceeded("max_steps", f"the plan has {count} steps, more than the run's {limit}")
