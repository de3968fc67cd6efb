"""Everything a run needs, built once from Settings and shared by the HTTP server and the CLI."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import asyncpg
import msgspec
import structlog

from stepwise.app import db
from stepwise.app.cancellation import CancelListener, request_cancel
from stepwise.app.config import load_bank
from stepwise.app.logs import LogSink
from stepwise.app.metrics import Metrics
from stepwise.app.migrate import migrate
from stepwise.app.registry import Fleet, Registry, build_fleet, registry_for, sample_limit
from stepwise.app.settings import Settings
from stepwise.app.trace import TraceSink, counters, find_run, load_events
from stepwise.app.trace_process import ProcessSink, TraceWriter
from stepwise.reasoning.composer import Composer
from stepwise.reasoning.engine import Engine
from stepwise.reasoning.events import AnyEvent, EventSink, FanOut, Recorder
from stepwise.reasoning.examples import ExampleBank
from stepwise.reasoning.options import ChatOptions, CheckedRun, RunOptions
from stepwise.reasoning.planner import Planner
from stepwise.reasoning.program_planner import ProgramPlanner
from stepwise.reasoning.report import RunReport, fold
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import MAX_TOOL_RESULT_BYTES, Message, Tool
from stepwise.tools import load_tools
from stepwise.tools.docs import DocSearch
from stepwise.tools.python_tool import PythonTool
from stepwise.tools.sql import SqlTool
from stepwise.verifiers import default_verifiers
from stepwise.verifiers.policy import VerdictPolicy

log = structlog.get_logger("stepwise.runtime")


def build_engine(fleet: Fleet, registry: Registry, tools: Mapping[str, Tool], verifiers: tuple[str, ...] = (),
                 planner: str = "program", plan_samples: int = 5, compose: str = "auto", plan_more: int = 0,
                 plan_examples: int = 3, plan_temperature: float = 0.7, bank: ExampleBank | None = None,
                 max_tool_result_bytes: int = MAX_TOOL_RESULT_BYTES, plan_worked: bool = True,
                 call_samples: int = 1, plan_worked_samples: int = 0, call_recheck: int = 1) -> Engine:
    router = Router(fleet.experts, registry.default_name)
    if planner == "program":
        chosen = ProgramPlanner(router, tools, target=registry.planner, samples=plan_samples, more=plan_more,
                                worked=plan_worked, worked_samples=plan_worked_samples,
                                max_result_bytes=max_tool_result_bytes, examples=plan_examples,
                                temperature=plan_temperature, bank=bank)
    elif planner == "json":
        chosen = Planner(router, tools, target=registry.planner)
    else:
        raise ValueError(f"STEPWISE_PLANNER is {planner!r}: use program or json")
    if compose not in ("auto", "always"):
        raise ValueError(f"STEPWISE_COMPOSE is {compose!r}: use auto or always")
    return Engine(
        router, tools, default_verifiers(tools, verifiers), policy=VerdictPolicy(),
        planner=chosen, composer=Composer(router, target=registry.composer, always=compose == "always"),
        max_tool_result_bytes=max_tool_result_bytes, call_samples=call_samples, call_recheck=call_recheck,
        cascade=registry.cascade,
    )


def engine_for(settings: Settings, fleet: Fleet, tools: Mapping[str, Tool]) -> Engine:
    """The engine `settings` describe (planner, verifiers, composer, roles, decoding limits, example bank) on experts
    already built, their backends shared: what Runtime.start builds, and what `stepwise optimize` builds for each
    candidate configuration without loading a model again."""
    registry = registry_for(settings)
    limits = {spec.name: spec.max_tokens for spec in registry.experts}
    if set(limits) != set(fleet.experts):
        raise ValueError(f"the registry's experts {sorted(limits)} are not the running ones {sorted(fleet.experts)}")
    experts = {name: msgspec.structs.replace(e, max_tokens=limits[name]) for name, e in fleet.experts.items()}
    bank = load_bank(settings.example_bank) if settings.example_bank else None
    return build_engine(Fleet(experts, fleet.llamas), registry, tools, settings.verifiers, settings.planner,
                        settings.plan_samples, settings.compose, settings.plan_more, settings.plan_examples,
                        settings.plan_temperature, bank, settings.max_tool_result_bytes, settings.plan_worked,
                        settings.call_samples, settings.plan_worked_samples, _recheck(settings, registry))


def _recheck(settings: Settings, registry: Registry) -> int:
    """The replies a recheck samples, at most the embedded model's slots: a default, unlike the sample counts a
    caller sets (refused above the slots at start), so it fits itself to STEPWISE_PARALLEL."""
    limit = sample_limit(settings, registry)
    return settings.call_recheck if limit is None else min(settings.call_recheck, limit)


class Runtime:
    def __init__(self, settings: Settings, engine: Engine, fleet: Fleet, pool: asyncpg.Pool, sink: TraceWriter,
                 url: str):
        self.settings = settings
        self.engine = engine
        self.router = engine.router
        self.fleet = fleet
        self.pool = pool
        self.sink = sink
        self.database_url = url
        self.active: dict[uuid.UUID, asyncio.Task] = {}
        self.started_at = time.time()
        self._logs = LogSink()
        self.metrics = Metrics()
        self.metrics.watch_trace(functools.partial(counters, sink))
        self.listener: CancelListener | None = None
        """Cancels the runs going on here that another replica is asked to cancel (set by `start`)."""

    @classmethod
    async def start(cls, settings: Settings) -> Runtime:
        registry = registry_for(settings)  # a bad registry or tool module fails before anything starts
        tools = load_tools(settings.tool_modules)
        if settings.sql_url:
            # a role that can reach past its tables (superuser, pg_execute_server_program…) raises PrivilegedRole here
            tools["sql"] = await SqlTool.connect(settings.sql_url,
                                                 allow_privileged_role=settings.sql_allow_privileged_role)
            if tools["sql"].privileges:
                log.warning("sql_tool_role_is_privileged", allowed_by="STEPWISE_SQL_ALLOW_PRIVILEGED_ROLE",
                            role_may=list(tools["sql"].privileges), database=db.redact(settings.sql_url))
        if settings.docs_dir:
            tools["docs"] = await asyncio.to_thread(DocSearch, settings.docs_dir)
        if settings.python_tool:
            tools["python"] = await asyncio.to_thread(PythonTool)
        url = await asyncio.to_thread(db.database_url, settings.database_url, settings.data_dir)
        pool = await db.create_pool(url)
        async with pool.acquire() as conn:
            await migrate(conn)
        # Events still unwritten at shutdown (Postgres down) are spilled there and replayed by the next start on the
        # same database: the folder is named after it, so a test's or another server's events never land elsewhere.
        spill_dir = settings.data_dir / "trace-spill" / hashlib.sha256(db.redact(url).encode()).hexdigest()[:16]
        sink: TraceWriter
        if settings.trace_writer == "process":
            sink = ProcessSink(url, maxsize=settings.trace_queue, spill_dir=spill_dir, log_level=settings.log_level)
            await sink.start()
        else:
            sink = TraceSink(lambda: db.connect(url), maxsize=settings.trace_queue, spill_dir=spill_dir)
            sink.start()
        fleet = await build_fleet(registry, settings)
        log.info("runtime_started", experts=sorted(fleet.experts), database=db.redact(url))
        engine = engine_for(settings, fleet, tools)
        runtime = cls(settings, engine, fleet, pool, sink, url)
        runtime.listener = CancelListener(lambda: db.connect(url, application_name="stepwise-cancel"), runtime.cancel)
        await runtime.listener.start()
        return runtime

    def reconfigure(self, settings: Settings) -> None:
        """Serve the runs started from now on with the switches `settings` set, on the same experts, tools and
        database (`stepwise optimize` evaluates its candidates this way); runs in progress keep their engine."""
        self.engine = engine_for(settings, self.fleet, self.engine.tools)
        self.router = self.engine.router
        self.settings = settings

    async def ask(self, question: str, deadline_s: float | None = None, *extra: EventSink,
                  options: RunOptions | CheckedRun = RunOptions(), run_id: uuid.UUID | None = None,
                  **fields: Any) -> RunReport:
        """Run the engine on one question as `options` say (checked ones are not checked again), with this server's
        defaults for what they leave open; `deadline_s` and keyword `fields` (RunOptions' fields: `plan=…`,
        `sequential=True`) override them. The report comes from the run's own events."""
        if isinstance(options, CheckedRun):
            options = msgspec.structs.replace(options, options=self._resolved(options.options, deadline_s, fields))
        else:
            options = self._resolved(options, deadline_s, fields)
        run_id = run_id or uuid.uuid4()
        return await self._tracked(run_id, extra, lambda sink: self.engine.run(question, options, sink=sink,
                                                                               run_id=run_id))

    async def chat(self, messages: list[Message], *extra: EventSink, options: ChatOptions = ChatOptions(),
                   on_text: Callable[[str], None] | None = None, run_id: uuid.UUID | None = None,
                   **fields: Any) -> RunReport:
        """One conversation turn with one expert, no plan (Engine.chat), tracked and recorded like any run; keyword
        `fields` (ChatOptions' fields) override `options`."""
        options = msgspec.structs.replace(options, **fields)
        options = msgspec.structs.replace(options, deadline_s=options.deadline_s or self.settings.deadline_s)
        run_id = run_id or uuid.uuid4()
        return await self._tracked(run_id, extra, lambda sink: self.engine.chat(messages, options, sink=sink,
                                                                                run_id=run_id, on_text=on_text))

    def _resolved(self, options: RunOptions, deadline_s: float | None, fields: dict[str, Any]) -> RunOptions:
        """The options with the caller's overrides, and this server's defaults for the deadline and plan streaming."""
        options = msgspec.structs.replace(options, **fields)
        return msgspec.structs.replace(
            options, deadline_s=deadline_s or options.deadline_s or self.settings.deadline_s,
            stream_plan=self.settings.stream_plan if options.stream_plan is None else options.stream_plan)

    async def _tracked(self, run_id: uuid.UUID, extra: tuple[EventSink, ...],
                       start: Callable[[EventSink], Coroutine[Any, Any, Any]]) -> RunReport:
        """Run as a task of its own, listed in `active` so `cancel` can stop it; if this call is cancelled (the client
        went away), the run is cancelled too, and recorded as such, before the cancellation goes on."""
        recorder = Recorder()
        task = asyncio.create_task(start(FanOut(recorder, self.sink, self.metrics, self._logs, *extra)),
                                   name=f"run:{run_id}")
        self.active[run_id] = task
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.wait({task})
            raise
        finally:
            self.active.pop(run_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("run_crashed", exc_info=task.exception())  # the engine recorded RunFailed(internal_error) first
        return fold(recorder.events)

    def cancel(self, run_id: uuid.UUID) -> bool:
        """Cancel a run in progress; False if it is not running here."""
        task = self.active.get(run_id)
        if task is None:
            return False
        task.cancel()
        return True

    async def cancel_anywhere(self, run_id: uuid.UUID) -> bool:
        """Cancel a run going on here, or, if the trace has no end for it, ask the replica running it (through
        Postgres: app.cancellation); False if it has ended."""
        if self.cancel(run_id):
            return True
        async with self.pool.acquire() as conn:
            return await request_cancel(conn, run_id)

    async def find_run(self, text: str) -> uuid.UUID:
        """The run `text` names (a full id, or a unique prefix: app.trace.find_run's rule), once what this process
        has emitted so far is written; a full id of a run going on here needs no database."""
        try:
            if (run_id := uuid.UUID(text.strip())) in self.active:
                return run_id
        except ValueError:
            pass
        await self.sink.flush(timeout=5.0)
        async with self.pool.acquire() as conn:
            return await find_run(conn, text)

    async def read_run(self, run_id: uuid.UUID) -> RunReport | None:
        """A run's report folded from its events as stored in Postgres."""
        events = await self.events_of(run_id)
        return fold(events) if events else None

    async def events_of(self, run_id: uuid.UUID) -> list[AnyEvent]:
        """A run's events as stored in Postgres, after what this process has emitted so far is written."""
        await self.sink.flush(timeout=5.0)
        async with self.pool.acquire() as conn:
            return await load_events(conn, run_id)

    async def drain(self, grace_s: float, cancel_wait_s: float = 5.0) -> tuple[int, int]:
        """Let the runs in progress end on their own for up to `grace_s` seconds, then cancel the rest and wait (up to
        `cancel_wait_s`) until they have recorded it, so every run's last event is in the trace sink before it closes.
        Returns (runs that ended on their own, runs cancelled). Runs started meanwhile are waited for too."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        seen: set[asyncio.Task] = set()
        while self.active and (left := deadline - loop.time()) > 0:
            seen |= set(self.active.values())
            await asyncio.wait(set(self.active.values()), timeout=left)
        stopping = set(self.active.values())
        for task in stopping:
            task.cancel()
        if stopping:
            _, stuck = await asyncio.wait(stopping, timeout=cancel_wait_s)
            if stuck:
                log.error("runs_not_stopped", count=len(stuck), waited_s=cancel_wait_s)
        ended = len(seen - stopping)
        if seen or stopping:
            log.info("runs_drained", ended=ended, cancelled=len(stopping), grace_s=grace_s)
        return ended, len(stopping)

    async def close(self) -> None:
        """Stop: runs still in progress are cancelled (and record it) first, then the trace is flushed and closed."""
        await self.drain(0)
        if self.listener is not None:
            await self.listener.close()
        await self.sink.close()
        await self.pool.close()
        await self.fleet.aclose()
