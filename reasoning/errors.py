"""The reasoning core's exceptions, translated at the boundary from other libraries' errors.

    ReasoningError                                                                                     HTTP status
    ├── PlanInvalid          the planner's plan (or a caller's) breaks a rule; names the step and the rule     422
    ├── DeadlineExceeded     the run's one deadline passed; what was in flight was cancelled                    504
    ├── BudgetExceeded       a run limit (max_steps, max_model_calls, max_tokens) was reached; `budget` names it 422
    ├── StepFailed           a step raised or was rejected by a verifier                                        422
    │   ├── ToolError        a tool refused its arguments or failed while running
    │   └── StepRejected     a verifier's verdict was not "pass"
    ├── OutputInvalid        constrained output did not decode under its schema (a bug or a truncation)         502
    │   └── ConstraintViolated (reasoning.constraints)
    └── BackendError         a model server failed (status: its HTTP status, if it answered)                   502
        ├── BackendUnavailable   it could not be reached                                                        503
        └── BackendTimeout       it did not answer in time                                                      504

Each class carries its `kind` (what RunFailed.error_type and ModelCalled.error_type record) and `status_code`: the
HTTP status of a run that failed with it (the reply still carries the run's report), so no map of names has to
follow this tree (app/status.py reads it from the classes).

An error's message is written for whoever reads the trace, and some are written for the planner (a replan shows it the
rule its plan broke, with advice such as "write money without $"). The person who typed the question reads
`explain(...)` instead: what failed in their terms, and what they can do (reasoning.report puts it in the report).
"""


class ReasoningError(Exception):
    """Base of every error the reasoning core raises on purpose. A subclass names its `kind` and, where it differs
    from its parent's, its `status_code` as class keywords:
    `class PlanInvalid(ReasoningError, kind=…, status_code=422)`."""

    kind = "reasoning_error"
    status_code = 500

    def __init_subclass__(cls, *, kind: str | None = None, status_code: int | None = None, **rest) -> None:
        super().__init_subclass__(**rest)
        if kind is not None:
            cls.kind = kind
        if status_code is not None:
            cls.status_code = status_code


class PlanInvalid(ReasoningError, kind="plan_invalid", status_code=422):
    def __init__(self, message: str, step_id: int | None = None) -> None:
        super().__init__(message if step_id is None else f"step {step_id}: {message}")
        self.step_id = step_id


class DeadlineExceeded(ReasoningError, kind="deadline_exceeded", status_code=504):
    """The run's one deadline passed."""


class BudgetExceeded(ReasoningError, kind="budget_exceeded", status_code=422):
    def __init__(self, budget: str, message: str) -> None:
        super().__init__(f"{budget}: {message}")
        self.budget = budget


class StepFailed(ReasoningError, kind="step_failed", status_code=422):
    def __init__(self, step_id: int, message: str) -> None:
        super().__init__(f"step {step_id}: {message}")
        self.step_id = step_id
        self.reason = message


class ToolError(StepFailed, kind="tool_error"):
    """A tool refused its arguments or failed while running."""


class StepRejected(StepFailed, kind="step_rejected"):
    def __init__(self, step_id: int, message: str, repairable: bool = False) -> None:
        super().__init__(step_id, message)
        self.repairable = repairable  # the verdicts asked for a new plan, not for the run to fail


class OutputInvalid(ReasoningError, kind="output_invalid", status_code=502):
    """Constrained output did not decode under its schema."""


class BackendError(ReasoningError, kind="backend_error", status_code=502):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def retryable_elsewhere(self) -> bool:
        """Whether another expert might succeed where this one failed (it is down or overloaded, not refusing)."""
        return self.status is None or self.status == 429 or self.status >= 500


class BackendUnavailable(BackendError, kind="backend_unavailable", status_code=503):
    """The model server could not be reached."""


class BackendTimeout(BackendError, kind="backend_timeout", status_code=504):
    """The model server did not answer in time."""


# kind → (what failed, what the person asking can do). {detail} is the error as recorded, only where it is written in
# the asker's terms (a deadline, a limit, a server); a plan's rule never is: the asker wrote no plan.
# Kinds that fail alike for the asker share one explanation.
_STEP_FAILED = ("A step of the answer failed", "Check the values the question gives, or rephrase it.")
_UNREADABLE = ("The model's reply could not be read (it broke the format it was asked for)",
               "Ask again; if it keeps happening, report it with the run id.")
_EXPLAINED = {
    "plan_invalid": ("No way to answer the question was found: the model's plan for it was not valid, even after it "
                     "was asked to fix it", "Rephrase the question, or ask its parts one at a time."),
    "deadline_exceeded": ("No answer in the time allowed ({detail})",
                          "Allow more time (stepwise ask --deadline, or deadline_s in the request), "
                          "or ask a simpler question."),
    "budget_exceeded": ("No answer within the run's limits ({detail})",
                        "Raise the limit it names (the request's budget), or ask a simpler question."),
    "step_failed": _STEP_FAILED,
    "tool_error": _STEP_FAILED,
    "step_rejected": ("A step's result did not pass its checks", "Ask again, or rephrase the question."),
    "output_invalid": _UNREADABLE,
    "constraint_violated": _UNREADABLE,
    "backend_error": ("The model server failed ({detail})",
                      "Ask again later; if it keeps failing, see the model server's log."),
    "backend_unavailable": ("The model server could not be reached ({detail})",
                            "Check that it is running (stepwise experts shows each expert's health), then ask again."),
    "backend_timeout": ("The model server did not answer in time ({detail})", "Ask again, or allow more time."),
    "internal_error": ("stepwise failed unexpectedly: a bug ({detail})", "Please report it with the run id."),
    "cancelled": ("The run was cancelled before it had an answer", "Ask again to get one."),
}
_CUT_OFF = "cut off at max_tokens"


def explain(kind: str, detail: str, step: str | None = None, why: str | None = None, *, planned: bool = True) -> str:
    """A failed run in the words of the person who asked: what failed, then what they can do. `kind` and `detail` are
    the recorded error (RunFailed); `step` is the failed step as they would recognise it (`calculator: 1/0`) and `why`
    its own reason (the tool's error, the checks' verdicts), for a failed step. Without `planned`, the plan was the
    caller's own, so the rule it broke is theirs to read."""
    if kind == "plan_invalid" and not planned:
        return (f"The plan given with the question is not valid: {detail.rstrip('.')}. Fix what it names and send it "
                "again.")
    if kind in ("output_invalid", "constraint_violated") and _CUT_OFF in detail:
        return ("The model's reply was cut off at its token limit (max_tokens) before it was complete. "
                "Allow more tokens (max_tokens), or ask for a shorter answer.")
    if kind not in _EXPLAINED:
        return detail
    what, todo = _EXPLAINED[kind]
    what = what.format(detail=detail.rstrip("."))  # before the step and its reason join it: their braces are text
    if step is not None and kind in ("step_failed", "tool_error", "step_rejected"):
        what += f": {step}" + (f" ({why})" if why else "")
    return f"{what}. {todo}"
