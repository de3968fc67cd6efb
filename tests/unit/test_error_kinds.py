"""Errors carry their own kind and HTTP status: the status of a failed run comes from the error's class, and a failed
model call records its kind as a field, which the metrics count by without reading the message."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from stepwise.app.metrics import Metrics
from stepwise.app.status import STATUS_BY_ERROR
from stepwise.reasoning import errors
from stepwise.reasoning import events as ev
from stepwise.reasoning.constraints import ConstraintViolated
from stepwise.reasoning.context import Budget, RunContext
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import Expert, Message
from tests.doubles import Scripted

STATUSES = [
    (errors.PlanInvalid, 422), (errors.BudgetExceeded, 422), (errors.StepFailed, 422), (errors.ToolError, 422),
    (errors.StepRejected, 422), (errors.OutputInvalid, 502), (ConstraintViolated, 502), (errors.BackendError, 502),
    (errors.BackendUnavailable, 503), (errors.BackendTimeout, 504), (errors.DeadlineExceeded, 504),
]


@pytest.mark.parametrize(("error", "status"), STATUSES, ids=[e.kind for e, _ in STATUSES])
def test_a_failed_runs_status_is_its_error_classs(error: type[errors.ReasoningError], status: int) -> None:
    """Each error class carries its HTTP status, and the status map of failed runs is read from the classes."""
    assert error.status_code == status and STATUS_BY_ERROR[error.kind] == status


def test_a_run_ended_by_no_error_class_has_a_status_too() -> None:
    """A cancelled run is 499 (nobody is listening); a bug is 500; nothing else is in the map."""
    assert STATUS_BY_ERROR[ev.CANCELLED] == 499 and STATUS_BY_ERROR["internal_error"] == 500
    assert set(STATUS_BY_ERROR) == {e.kind for e, _ in STATUSES} | {ev.CANCELLED, "internal_error"}


async def test_a_failed_model_call_carries_its_kind_and_the_metrics_count_by_it() -> None:
    """The failed call's event has error_type (its class's kind) beside the message; the metrics label is that kind."""
    down = Scripted(error=errors.BackendUnavailable("refused: the server: port 8000"))
    router = Router({"a": Expert(name="a", backend=down, skills=["math"]),
                     "b": Expert(name="b", backend=Scripted(), skills=["math"])}, "a")
    sink = ev.Recorder()
    ctx = RunContext(uuid.uuid4(), sink, asyncio.get_running_loop().time() + 10, Budget())
    await router.call("a", [Message("user", "q")], ctx, purpose="expert")
    failed, served = sink.events
    assert (failed.error_type, failed.error) == ("backend_unavailable",
                                                 "backend_unavailable: refused: the server: port 8000")
    assert served.error_type is None
    metrics = Metrics()
    for event in sink.events:
        metrics.emit(event)
    counted = [line for line in metrics.render().decode().splitlines()
               if line.startswith("stepwise_backend_errors_total")]
    assert counted == ['stepwise_backend_errors_total{error_type="backend_unavailable",expert="a"} 1.0']
