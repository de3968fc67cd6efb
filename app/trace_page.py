"""The trace page: GET /runs/{run_id} draws a run's DAG and its steps' timeline from the trace stored in Postgres.

One self-contained HTML file (app/static/trace.html: inline CSS, SVG drawn by plain JavaScript, nothing fetched from
anywhere else) with the run's data embedded as JSON: the report `GET /v1/runs/{id}` returns, folded from the same
events, plus what the report sums up and the page shows per step — model calls, tool calls, repairs — and each
step's needs (`depends_on` ∪ its `$N` references, never itself: app.trace.step_needs, as `stepwise trace` draws
them), which are the DAG's edges. While a run is going, the page reloads its data from this same route.
"""

from __future__ import annotations

import functools
import html
import time
import uuid
from importlib import resources
from typing import Any

import msgspec
from litestar import MediaType, Response, get
from litestar.di import NamedDependency

from stepwise.app.openapi import DATABASE_DOWN, RunRef, guarded, html_page
from stepwise.app.runtime import Runtime
from stepwise.app.trace import RunLookupError, step_needs
from stepwise.reasoning import events as ev
from stepwise.reasoning.report import RunReport, fold

_encode = msgspec.json.Encoder().encode
_SLOT = "__RUN_DATA__"


class TraceData(msgspec.Struct):
    """Everything the page draws for one run."""

    report: RunReport
    needs: dict[int, list[int]]  # step id → the steps it waits for: the DAG's edges
    model_calls: list[ev.ModelCalled]
    tool_calls: list[ev.ToolCalled]
    replans: list[ev.Replanned]
    escalations: list[ev.StepEscalated]  # a cascade's cheaper expert's answers not kept
    deadline_s: float
    now: float  # the server's clock when read: a step still running is drawn up to here


def trace_data(events: list[ev.AnyEvent], now: float) -> TraceData:
    """The page's data from a run's events, in the order they were emitted."""
    planned: dict[int, Any] = {}  # id → Step as last planned (a repaired plan may change a step)
    model_calls, tool_calls, replans, escalations, deadline_s = [], [], [], [], 0.0
    for event in events:
        match event:
            case ev.RunStarted():
                deadline_s = event.deadline_s
            case ev.PlanReady():
                planned.update((step.id, step) for step in event.plan.steps)
            case ev.StepStarted():
                planned[event.step_id] = event.step
            case ev.ModelCalled():
                model_calls.append(event)
            case ev.ToolCalled():
                tool_calls.append(event)
            case ev.Replanned():
                replans.append(event)
            case ev.StepEscalated():
                escalations.append(event)
    needs = {sid: sorted(step_needs(step)) for sid, step in sorted(planned.items())}
    return TraceData(fold(events), needs, model_calls, tool_calls, replans, escalations, deadline_s, now)


async def read_trace(runtime: Runtime, run_id: uuid.UUID) -> TraceData | None:
    """A run's page data from its events as stored (after the trace sink has written what it holds)."""
    events = await runtime.events_of(run_id)
    return trace_data(events, time.time()) if events else None


@functools.cache
def _template() -> str:
    return resources.files("stepwise.app").joinpath("static", "trace.html").read_text(encoding="utf-8")


def render_page(data: TraceData) -> str:
    # '<', '>' and '&' can only occur inside JSON strings, where \u escapes mean the same: nothing in a run's text
    # (a question, a model's output) can close the <script> element the data sits in.
    payload = _encode(data).decode().replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return _template().replace(_SLOT, payload, 1)


def _error_page(status: int, message: str) -> Response[str]:
    body = (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>stepwise · {status}</title>"
        "<body style='font:16px system-ui,sans-serif;margin:3rem;color:#202124'>"
        f"<h1 style='font-weight:500'>{status}</h1><p>{html.escape(message)}</p></body></html>"
    )
    return Response(body, status_code=status, media_type=MediaType.HTML)


@get("/runs/{run_id:str}", media_type=MediaType.HTML, responses=guarded("/runs", {
    400: html_page("An HTML page saying the id is neither a run id nor a prefix of one, or a prefix of several runs"),
    404: html_page("An HTML page saying no recorded run has this id or starts with this prefix"),
    **DATABASE_DOWN,
}))
async def trace_page(run_id: RunRef, runtime: NamedDependency[Runtime]) -> Response[str]:
    """A run's DAG (nodes coloured by status and verdicts), its steps on a timeline, and each step's details on click.
    `run_id` may be a unique prefix of the id, as everywhere a run is named."""
    try:
        parsed = await runtime.find_run(run_id)
    except RunLookupError as exc:
        return _error_page(exc.status_code, str(exc))
    data = await read_trace(runtime, parsed)
    if data is None:
        return _error_page(404, f"no run with id {parsed}")
    return Response(render_page(data), media_type=MediaType.HTML, headers={"cache-control": "no-store"})
