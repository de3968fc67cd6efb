"""The reasoning core's exceptions, translated at the boundary from other libraries' errors.

    ReasoningError
    ├── PlanInvalid          the planner's plan (or a caller's) breaks a rule; names the step and the rule
    ├── DeadlineExceeded     the run's one deadline passed; what was in flight was cancelled
    ├── BudgetExceeded       a run limit (max_steps, max_model_calls, max_tokens) was reached; `budget` names it
    ├── StepFailed           a step raised or was rejected by a verifier
    │   ├── ToolError        a tool refused its arguments or failed while running
    │   └── StepRejected     a verifier's verdict was not "pass"
    ├── OutputInvalid        constrained output did not decode under its schema (a bug or a truncation)
    └── BackendError         a model server failed (status: its HTTP status, if it answered)
        ├── BackendUnavailable   it could not be reached
        └── BackendTimeout       it did not answer in time
"""


class ReasoningError(Exception):
    """Base of every error the reasoning core raises on purpose."""

    kind = "reasoning_error"


class PlanInvalid(ReasoningError):
    kind = "plan_invalid"

    def __init__(self, message: str, step_id: int | None = None) -> None:
        super().__init__(message if step_id is None else f"step {step_id}: {message}")
        self.step_id = step_id


class DeadlineExceeded(ReasoningError):
    kind = "deadline_exceeded"


class BudgetExceeded(ReasoningError):
    kind = "budget_exceeded"

    def __init__(self, budget: str, message: str) -> None:
        super().__init__(f"{budget}: {message}")
        self.budget = budget


class StepFailed(ReasoningError):
    kind = "step_failed"

    def __init__(self, step_id: int, message: str) -> None:
        super().__init__(f"step {step_id}: {message}")
        self.step_id = step_id
        self.reason = message


class ToolError(StepFailed):
    kind = "tool_error"


class StepRejected(StepFailed):
    kind = "step_rejected"

    def __init__(self, step_id: int, message: str, repairable: bool = False) -> None:
        super().__init__(step_id, message)
        self.repairable = repairable  # the verdicts asked for a new plan, not for the run to fail


class OutputInvalid(ReasoningError):
    kind = "output_invalid"


class BackendError(ReasoningError):
    kind = "backend_error"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def retryable_elsewhere(self) -> bool:
        """Whether another expert might succeed where this one failed (it is down or overloaded, not refusing)."""
        return self.status is None or self.status == 429 or self.status >= 500


class BackendUnavailable(BackendError):
    kind = "backend_unavailable"


class BackendTimeout(BackendError):
    kind = "backend_timeout"
