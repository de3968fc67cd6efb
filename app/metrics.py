"""Prometheus metrics: an event sink that counts what runs do, and an ASGI middleware that counts requests.

Each Runtime has its own registry (no process-wide globals), so several servers in one process count apart."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from stepwise.reasoning import events as ev

if TYPE_CHECKING:
    from stepwise.app.trace import TraceCounters

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, float("inf"))


class _TraceCounters(Collector):
    """The trace sink's own counters and lag, read at scrape time."""

    def __init__(self, read: Callable[[], TraceCounters]) -> None:
        self._read = read

    def collect(self):
        counts = self._read()
        for name, value, doc in (
            ("written", counts.written, "trace events written to Postgres"),
            ("dead_lettered", counts.dead_lettered,
             "trace events Postgres refused for their data, kept in trace_dead_letters"),
            ("dropped", counts.dropped,
             "trace events lost (queue full, unwritten at shutdown, or not even storable as a dead letter)"),
            ("retries", counts.retries, "trace writes retried after a connection error"),
        ):
            family = CounterMetricFamily(f"stepwise_trace_events_{name}", doc)
            family.add_metric([], value)
            yield family
        lag = GaugeMetricFamily("stepwise_trace_lag_seconds",
                                "how long the oldest trace event not yet stored has waited")
        lag.add_metric([], counts.lag_s)
        yield lag


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("stepwise_http_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=r)
        self.request_seconds = Histogram("stepwise_http_request_duration_seconds", "HTTP request duration", ["route"],
                                         buckets=_LATENCY_BUCKETS, registry=r)
        self.runs = Counter("stepwise_runs", "Runs ended, by status and error type", ["status", "error_type"],
                            registry=r)
        self.runs_active = Gauge("stepwise_runs_in_progress", "Runs started and not yet ended", registry=r)
        self.run_seconds = Histogram("stepwise_run_latency_seconds", "Run latency", ["status"],
                                     buckets=_LATENCY_BUCKETS, registry=r)
        self.steps = Counter("stepwise_steps", "Steps ended, by kind and status", ["kind", "status"], registry=r)
        self.model_calls = Counter("stepwise_model_calls", "Model calls by expert and purpose", ["expert", "purpose"],
                                   registry=r)
        self.tokens = Counter("stepwise_tokens", "Tokens by expert and direction (input, output, cached)",
                              ["expert", "direction"], registry=r)
        self.cost = Counter("stepwise_cost", "Cost of model calls by expert, in the registry's price unit", ["expert"],
                            registry=r)
        self.backend_errors = Counter("stepwise_backend_errors", "Failed model calls by expert and error type",
                                      ["expert", "error_type"], registry=r)
        self.tool_calls = Counter("stepwise_tool_calls", "Tool calls by tool and result", ["tool", "result"],
                                  registry=r)
        self.verdicts = Counter("stepwise_verdicts", "Verifier verdicts by verifier and outcome",
                                ["verifier", "outcome"], registry=r)

    def watch_trace(self, read: Callable[[], TraceCounters]) -> None:
        """`read`: the trace sink's counts, read at each scrape."""
        self.registry.register(_TraceCounters(read))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def emit(self, event: ev.AnyEvent) -> None:
        match event:
            case ev.RunStarted():
                self.runs_active.inc()
            case ev.ModelCalled(expert=expert, purpose=purpose, error_type=error_type):
                self.model_calls.labels(expert, purpose).inc()
                # a cancelled call is the run's doing, not the backend's
                if error_type is not None and not event.cancelled:
                    self.backend_errors.labels(expert, error_type).inc()
                # A call that broke its constraint still used (and is charged for) its tokens.
                self.tokens.labels(expert, "input").inc(event.input_tokens)
                self.tokens.labels(expert, "output").inc(event.output_tokens)
                self.tokens.labels(expert, "cached").inc(event.cached_tokens)
                self.cost.labels(expert).inc(event.cost)
            case ev.ToolCalled(tool=tool, error=error):
                self.tool_calls.labels(tool, "ok" if error is None else "error").inc()
            case ev.StepVerified(verifier=verifier, outcome=outcome):
                self.verdicts.labels(verifier, outcome).inc()
            case ev.StepFinished(kind=kind):
                self.steps.labels(kind, "finished").inc()
            case ev.StepFailed(kind=kind):
                self.steps.labels(kind, "failed").inc()
            case ev.RunFinished(latency_ms=ms):
                self._ended("finished", "", ms)
            case ev.RunFailed(latency_ms=ms, error_type=kind):
                self._ended(event.status, kind, ms)

    def _ended(self, status: str, error_type: str, latency_ms: float) -> None:
        self.runs_active.dec()
        self.runs.labels(status, error_type).inc()
        self.run_seconds.labels(status).observe(latency_ms / 1000)


def request_counter(metrics_of: Callable[[Scope], Metrics | None]) -> Callable[[ASGIApp], ASGIApp]:
    """Middleware counting each request by its route template (not its path: run ids would explode the labels)."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or (metrics := metrics_of(scope)) is None:
                await app(scope, receive, send)
                return
            status = 500
            started = time.perf_counter()

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, sending)
            finally:
                route = scope.get("path_template") or "unmatched"
                metrics.requests.labels(scope["method"], route, str(status)).inc()
                metrics.request_seconds.labels(route).observe(time.perf_counter() - started)

        return counted

    return middleware
