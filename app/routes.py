"""The HTTP API (Litestar): the app factory and the native routes (the OpenAI-compatible ones are in openai_api)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from importlib.metadata import version
from typing import Annotated

import asyncpg
import msgspec
from litestar import Litestar, Request, Response, delete, get, post, route
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ClientException, NotFoundException, ValidationException
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.params import JSONBody
from litestar.response import ServerSentEvent, ServerSentEventMessage

from stepwise.app.auth import key_guard
from stepwise.app.bodies import StrictRequest
from stepwise.app.experts import ExpertStatus, expert_statuses
from stepwise.app.metrics import Metrics, request_counter
from stepwise.app.openai_api import RUN_HEADER, SYSTEM_MODEL, ChatRequest, chat_completions, list_models
from stepwise.app.openapi import (
    DATABASE_DOWN,
    JSON_BODY,
    RunRef,
    document_docs_routes,
    document_request_bodies,
    document_run_refs,
    document_streams,
    error,
    guarded,
    run_failures,
)
from stepwise.app.runtime import Runtime
from stepwise.app.settings import Settings
from stepwise.app.status import status_for
from stepwise.app.streaming import Channel, unless_gone
from stepwise.app.trace import RunLookupError, TraceCounters, counters
from stepwise.app.trace_page import trace_page
from stepwise.reasoning.context import Budget
from stepwise.reasoning.errors import PlanInvalid
from stepwise.reasoning.events import AnyEvent, EventSink
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.report import RunReport
from stepwise.reasoning.types import Plan

_encode = msgspec.json.Encoder().encode


class ReasonRequest(msgspec.Struct, forbid_unknown_fields=True):
    question: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
    deadline_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] | None = None
    plan: Plan | None = None
    """Imperative mode: run this plan (the planner's schema) instead of planning."""
    budget: Budget | None = None
    tools: list[str] | None = None
    """A tool allowlist: only these may be planned or run (default: all)."""
    stream_plan: bool | None = None
    """Start each step as soon as the planner has written it (default: STEPWISE_STREAM_PLAN)."""
    stream: bool = False
    """Reply with Server-Sent Events: one per run event as it happens, then the report."""


@post("/v1/reason", status_code=200, responses=guarded("/v1/reason", {
    **JSON_BODY,
    400: error("The body does not decode into the request type (the detail names the field), a tool in `tools` is "
               "unknown, or the caller's `plan` breaks a rule (`extra.step_id` names the step)"),
    **run_failures(RunReport, "the body is the run's full report, whose `error` says what failed"),
}))
async def reason(data: JSONBody[ReasonRequest], request: Request,
                 runtime: NamedDependency[Runtime]) -> Response[RunReport]:
    """Answer a question with a plan of verified steps (or run the caller's `plan`); the reply is the run's full
    report, or with `stream` its events as Server-Sent Events. If the client disconnects first, the run is
    cancelled, backend requests included, and recorded so."""
    options = RunOptions(deadline_s=data.deadline_s, plan=data.plan, budget=data.budget or Budget(),
                         tools=None if data.tools is None else tuple(data.tools), stream_plan=data.stream_plan)
    try:
        checked = runtime.engine.check(options)  # PlanInvalid → 400 naming the step, before any run exists
    except ValueError as exc:
        raise ValidationException(detail=f"tools: {exc}") from None
    run_id = uuid.uuid4()

    def start(*extra: EventSink) -> Awaitable[RunReport]:
        return runtime.ask(data.question, None, *extra, options=checked, run_id=run_id)

    # Litestar documents the return annotation as the 200 body (the report); the stream (document_streams) and the
    # 499 nobody reads are the handler's other replies, which that annotation cannot also name.
    if data.stream:
        return ServerSentEvent(_events(start), headers={RUN_HEADER: str(run_id)})  # pyright: ignore[reportReturnType]
    report = await unless_gone(request, start())
    if report is None:
        # nobody is listening; the trace has the cancelled run
        return Response(b"", status_code=499)  # pyright: ignore[reportReturnType]
    return Response(report, status_code=status_for(report), headers={RUN_HEADER: str(run_id)})


_event_tag = {cls: cls.__struct_config__.tag for cls in AnyEvent.__args__}


async def _events(start) -> AsyncIterator[ServerSentEventMessage]:
    """Each run event as `event: <its type>` with an increasing `id`, in the order the trace records them; then
    `event: report`, the same report the non-streaming reply carries. Leaving early cancels the run."""
    n = 0
    async for item in Channel().follow(start):
        n += 1
        if isinstance(item, RunReport):
            yield ServerSentEventMessage(data=_encode(item).decode(), event="report", id=n)
        else:
            yield ServerSentEventMessage(data=_encode(item).decode(), event=_event_tag[type(item)], id=n)


_RUN_REF_ERRORS = {
    400: error("Not a run id or a prefix of one, or a prefix more than one run starts with (the detail says which)"),
    404: error("No recorded run has this id or starts with this prefix"),
    **DATABASE_DOWN,
}


@delete("/v1/runs/{run_id:str}", status_code=202, responses=guarded("/v1/runs", {
    **_RUN_REF_ERRORS, 409: error("The run has ended: its trace records its end")}))
async def cancel_run(run_id: RunRef, runtime: NamedDependency[Runtime]) -> dict:
    """Cancel a run in progress, on this replica or another (through Postgres): in-flight model requests are closed
    and the run is recorded as cancelled. 202 means it was asked to stop; one that ends first keeps its own end."""
    parsed = await runtime.find_run(run_id)
    if await runtime.cancel_anywhere(parsed):
        return {"run_id": str(parsed), "status": "cancelling"}
    raise ClientException(status_code=409, detail=f"run {parsed} is not running: it has ended")


@route("/v1/runs/{run_id:str}", http_method="OPTIONS", include_in_schema=False, sync_to_thread=False)
def runs_options() -> Response:
    """The methods of /v1/runs/{id}. Litestar's own OPTIONS answer lists only those of the first handler registered
    on a path (its Allow is computed when the path's first route is built), here GET without DELETE; registered
    before them, this one takes its place."""
    return Response(content=None, status_code=204, headers={"Allow": "DELETE, GET, OPTIONS"})


def _field_message(item: object) -> str:
    if not isinstance(item, dict):
        return f"body: {item}"
    if item.get("source") == "body" and item.get("key") == "data":
        return "body: a JSON body is required (the request has none)"
    return f"{item.get('key') or item.get('source') or 'request'}: {item.get('message')}"


def _validation_failed(request: Request, exc: ValidationException) -> Response:
    """A 400 whose detail starts with the field it is about, as app/bodies.py writes them: Litestar's own refusals (a
    missing body, a path parameter not matching its pattern) say "Validation failed for POST /path" and keep the
    fields in `extra`, so they are rewritten from it."""
    detail, extra = exc.detail, exc.extra
    if detail.startswith("Validation failed for ") and isinstance(extra, list) and extra:
        detail = "; ".join(_field_message(item) for item in extra)
    return Response({"status_code": 400, "detail": detail} | ({"extra": extra} if extra else {}), status_code=400)


def _run_lookup_failed(request: Request, exc: RunLookupError) -> Response:
    return Response({"status_code": exc.status_code, "detail": f"run_id: {exc}"}, status_code=exc.status_code)


def _plan_invalid(request: Request, exc: PlanInvalid) -> Response:
    return Response({"status_code": 400, "detail": f"plan: {exc}", "extra": {"step_id": exc.step_id}}, status_code=400)


@get("/v1/runs/{run_id:str}", responses=guarded("/v1/runs", _RUN_REF_ERRORS))
async def read_run(run_id: RunRef, runtime: NamedDependency[Runtime]) -> RunReport:
    """A past run's report, read back from the trace in Postgres."""
    parsed = await runtime.find_run(run_id)
    report = await runtime.read_run(parsed)
    if report is None:
        raise NotFoundException(detail=f"no run with id {parsed}")
    return report


@get("/v1/experts", responses=guarded("/v1/experts", {}))
async def list_experts(runtime: NamedDependency[Runtime]) -> list[ExpertStatus]:
    """Every expert with its health, load (calls waiting or running against its limit) and constraint violations."""
    return await expert_statuses(runtime.router)


# What a database that does not answer raises: refused or dropped connections, a server shutting down or starting up,
# and asyncpg's InternalClientError ("cannot switch to state 12; another operation (2) is in progress"), which the
# next query on a pooled session raises when Postgres ended that session mid-restart (7 of 2,087 probes during six
# restarts here; it was the 500 that /health answered during a restart).
_DATABASE_DOWN = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
_HEALTH_TIMEOUT_S = 2.0
# The same seen from a route that reads the trace (narrower: a PostgresError there may be a bug to see as a 500).
_CONNECTION_FAILURES = (ConnectionError, asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
                        asyncpg.InterfaceError, asyncpg.InternalClientError)


class Health(msgspec.Struct):
    status: str
    """`ok`, `degraded` (200: the trace sink retrying or behind) or `down` (503: the database does not answer)."""
    model: str
    database: str
    problems: list[str]
    trace: TraceCounters


@get("/health", responses=guarded("/health", {
    503: ResponseSpec(data_container=Health, generate_examples=False,
                      description="`down`: the database does not answer; `problems` says what is wrong"),
}))
async def health(runtime: NamedDependency[Runtime]) -> Response[Health]:
    """`ok`; `degraded` (200) while the trace sink is behind or retrying; `down` (503) when the database does not
    answer. `problems` says what is wrong; `trace` has the sink's counters."""
    problems = []
    try:
        async with asyncio.timeout(_HEALTH_TIMEOUT_S), runtime.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
    except _DATABASE_DOWN as exc:
        problems.append(f"database: unreachable ({type(exc).__name__}: {exc})")
    down = bool(problems)
    sink = runtime.sink
    problems += sink.problems()
    body = Health(
        status="down" if down else "degraded" if problems else "ok",
        model=runtime.settings.model,
        database="down" if down else "ok",
        problems=problems,
        trace=counters(sink),
    )
    return Response(body, status_code=503 if down else 200)


@get("/metrics", media_type="text/plain; version=0.0.4", responses=guarded("/metrics", {}))
async def metrics(runtime: NamedDependency[Runtime]) -> bytes:
    """Prometheus metrics: requests, runs and their latency, steps, model calls, tokens, cost, backend errors,
    tool calls, verdicts, and the trace sink's counters."""
    return runtime.metrics.render()


def _database_unreachable(request: Request, exc: Exception) -> Response:
    """A route that reads the trace while Postgres is down or restarting: 503, saying so (not a bare 500)."""
    detail = f"the database is unreachable ({type(exc).__name__}: {exc})"
    return Response({"status_code": 503, "detail": detail}, status_code=503)


def _metrics_of(scope) -> Metrics | None:
    runtime = getattr(scope["litestar_app"].state, "runtime", None)
    return runtime.metrics if runtime is not None else None


def _runtime(state: State) -> Runtime:
    return state.runtime


def create_app(settings: Settings, runtime: Runtime | None = None) -> Litestar:
    """The app. With `runtime` given (tests, embedding), the caller owns its lifecycle; otherwise the app starts
    one from `settings` at startup and closes it at shutdown."""

    async def start(app: Litestar) -> None:
        app.state.runtime = runtime or await Runtime.start(settings)
        if runtime is None:
            _document_names(app, app.state.runtime)

    async def stop(app: Litestar) -> None:
        if runtime is None and getattr(app.state, "runtime", None) is not None:
            await app.state.runtime.close()

    app = Litestar(
        route_handlers=[reason, runs_options, read_run, cancel_run, list_experts, health, metrics, chat_completions,
                        list_models, trace_page],
        exception_handlers={ValidationException: _validation_failed, PlanInvalid: _plan_invalid,
                            RunLookupError: _run_lookup_failed,
                            **dict.fromkeys(_CONNECTION_FAILURES, _database_unreachable)},
        dependencies={"runtime": Provide(_runtime, sync_to_thread=False)},
        middleware=[request_counter(_metrics_of), key_guard(settings.api_keys)],
        request_class=StrictRequest,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="stepwise", version=version("stepwise"), path="/schema"),
        on_startup=[start],
        on_shutdown=[stop],
        debug=False,
    )
    document_docs_routes(app, "/schema")
    document_streams(app, ["/v1/reason", "/v1/chat/completions"])
    document_run_refs(app)
    _document_names(app, runtime)
    return app


def _document_names(app: Litestar, runtime: Runtime | None) -> None:
    """The request bodies in the document as validation takes them, with this server's tools and experts named."""
    engine = getattr(runtime, "engine", None)
    router = getattr(engine, "router", None)
    document_request_bodies(app, {"ReasonRequest": ReasonRequest, "ChatRequest": ChatRequest},
                            tools=tuple(getattr(engine, "tools", None) or ()),
                            experts=tuple(router.experts) if router is not None else (), system_model=SYSTEM_MODEL)
