"""How a failed run's error type maps to the HTTP status that says so (used by every route that runs). Each error
class carries its own status (reasoning/errors.py); only the two ways a run ends without one of them are named here:
cancelled, and a bug."""

from __future__ import annotations

from collections.abc import Iterator

from stepwise.reasoning import errors
from stepwise.reasoning.constraints import ConstraintViolated
from stepwise.reasoning.events import CANCELLED
from stepwise.reasoning.report import RunReport


def _error_classes(cls: type[errors.ReasoningError]) -> Iterator[type[errors.ReasoningError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _error_classes(sub)


# A run that failed still returns its whole report; the status says what kind of failure it was.
STATUS_BY_ERROR: dict[str, int] = {cls.kind: cls.status_code for cls in _error_classes(errors.ReasoningError)} | {
    "internal_error": 500,
    CANCELLED: 499,  # the client went away, or DELETE /v1/runs/{id} stopped the run
}
assert ConstraintViolated.kind in STATUS_BY_ERROR  # its module is imported above, so the walk sees its class


def status_for(report: RunReport) -> int:
    if report.error is None:
        return 200
    return STATUS_BY_ERROR.get(report.error.type, 500)
