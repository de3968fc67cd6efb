"""The one map from how a run failed to the HTTP status that says so (used by every route that runs)."""

from __future__ import annotations

from reasoning.report import RunReport

# A run that failed still returns its whole report; the status says what kind of failure it was.
STATUS_BY_ERROR = {
    "plan_invalid": 422,
    "step_failed": 422,
    "tool_error": 422,
    "step_rejected": 422,
    "output_invalid": 502,
    "constraint_violated": 502,
    "backend_error": 502,
    "backend_unavailable": 503,
    "backend_timeout": 504,
    "deadline_exceeded": 504,
    "budget_exceeded": 422,
    "internal_error": 500,
    "cancelled": 499,  # the client went away, or DELETE /v1/runs/{id} stopped the run
}


def status_for(report: RunReport) -> int:
    if report.error is None:
        return 200
    return STATUS_BY_ERROR.get(report.error.type, 500)
