"""Stand-ins for model backends, declared once for the unit tests and the benchmarks (bench/doubles.py imports
InstantBackend from here). Nothing here imports pytest, so bench can use it without the test tooling.

    Script          answers a fixed sequence of texts, keeping each call (for what the engine sends)
    Scripted        answers one text after a delay, or raises (for the router's scheduling)
    InstantBackend  answers at once, or after a fixed latency (for measuring the orchestrator)
    StubTool        a tool that only has to be described or shown: one text argument, a fixed result
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgspec

from stepwise.reasoning.engine import Engine
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import Completion, Expert, Policy, Tool, Usage
from stepwise.verifiers import default_verifiers
from stepwise.verifiers.policy import VerdictPolicy


class Script:
    """A backend answering a fixed sequence of texts, in order, and keeping each call: its messages and options.
    With `hang`, a call after the last text waits for good (for deadlines); with `streams`, each text also goes to
    `on_text`, in one piece, as a streaming server's does."""

    provider, model = "test", "test"

    def __init__(self, *texts: str, hang: bool = False, streams: bool = False) -> None:
        self.texts = list(texts)
        self.hang, self.streams = hang, streams
        self.calls: list[dict[str, Any]] = []

    @property
    def seen(self) -> list[list]:
        """The messages of each call, in order."""
        return [call["messages"] for call in self.calls]

    async def generate(self, messages, **kwargs) -> Completion:
        self.calls.append({"messages": messages, **kwargs})
        if not self.texts and self.hang:
            await asyncio.sleep(3600)
        completion = Completion(self.texts.pop(0), Usage(10, 5, 0), latency_ms=1.0, model="test")
        if self.streams and kwargs.get("on_text"):
            kwargs["on_text"](completion.text)
        return completion


class Scripted:
    """A backend for scheduling logic: answers `text` after `delay`, or raises `error`; counts calls and the most
    that ran at once."""

    provider = "test"

    def __init__(self, text: str = "ok", *, delay: float = 0.0, error: Exception | None = None) -> None:
        self.model, self.text, self.delay, self.error = "m", text, delay, error
        self.calls = 0
        self.running = 0
        self.peak = 0

    async def generate(self, messages, *, constraint=None, sampling=None, deadline=None) -> Completion:
        self.calls += 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.delay)
            if self.error:
                raise self.error
            return Completion(self.text, Usage(1000, 500, 200), latency_ms=1.0, model=self.model)
        finally:
            self.running -= 1


class InstantBackend:
    """A model that replies at once (or after `latency_s`, asleep on the event loop like a remote call) with text
    that decodes under the composer's Answer schema (it cites step 1, which every benchmark plan has)."""

    provider = "bench"
    model = "instant"
    base_url = "inline:"
    kind = "bench"

    def __init__(self, latency_s: float = 0.0, text: str = '{"text":"done","uses":[1]}') -> None:
        self.latency_s = latency_s
        self.text = text

    async def generate(self, messages, *, constraint=None, sampling=None, deadline=None, on_text=None) -> Completion:
        started = time.perf_counter()
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if on_text is not None:
            on_text(self.text)
        return Completion(self.text, Usage(10, 5, 0), (time.perf_counter() - started) * 1000, self.model, "stop")

    async def health(self) -> bool:
        return True

    async def aclose(self) -> None:
        pass


class StubTool:
    """A tool for how tools are described and shown: `args` (the args struct's name) has one text field, `arg`;
    every call returns `result`."""

    def __init__(self, name: str, description: str, args: str, arg: str, result: Any, *,
                 deterministic: bool = True) -> None:
        self.name, self.description, self.deterministic, self.result = name, description, deterministic, result
        self.args_type = msgspec.defstruct(args, [(arg, str)])

    async def run(self, args: Any) -> Any:
        return self.result


def engine_with(backend: Any, tools: dict[str, Tool], *, policy: Policy = VerdictPolicy(),
                planner: Callable[[Router], Any] | None = None,
                composer: Callable[[Router], Any] | None = None) -> Engine:
    """An engine whose one expert, "general", is `backend`, with the default verifiers for `tools`; `planner` and
    `composer` build the engine's own from its router (default: Engine's)."""
    router = Router({"general": Expert(name="general", backend=backend)}, "general")
    return Engine(router, tools, default_verifiers(tools), policy=policy,
                  planner=planner(router) if planner else None, composer=composer(router) if composer else None)
