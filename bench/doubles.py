"""The stand-ins benchmarks measure the orchestrator against: a no-op tool and a model backend that answers at once
(or after a fixed latency), built here in bench code so app/ never carries test doubles."""

from __future__ import annotations

import asyncio
import time

import msgspec

from app.registry import Fleet
from reasoning.composer import Composer
from reasoning.engine import Engine
from reasoning.planner import Planner
from reasoning.router import Router
from reasoning.types import Completion, Expert, Plan, Step, Usage
from tools import default_tools
from verifiers import default_verifiers
from verifiers.policy import VerdictPolicy


class NoopArgs(msgspec.Struct, forbid_unknown_fields=True):
    x: int = 0


class NoopTool:
    """A deterministic tool that returns its argument: the verifiers still recompute and type-check it."""

    name = "noop"
    description = "returns x"
    args_type = NoopArgs
    deterministic = True
    result_type = int

    async def run(self, args: NoopArgs) -> int:
        return args.x


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


def bench_tools() -> dict:
    return {**default_tools(), "noop": NoopTool()}


def instant_fleet(latency_s: float = 0.0, max_concurrency: int = 1024) -> Fleet:
    expert = Expert(name="general", backend=InstantBackend(latency_s), skills=["facts"], description="answers at once",
                    kind="bench", max_concurrency=max_concurrency)
    return Fleet(experts={"general": expert}, llamas=[])


def engine_for(fleet: Fleet, tools: dict | None = None) -> Engine:
    tools = bench_tools() if tools is None else tools
    router = Router(fleet.experts, "general")
    return Engine(router, tools, default_verifiers(tools), policy=VerdictPolicy(),
                  planner=Planner(router, tools), composer=Composer(router))


def chain(n: int, kind: str = "tool") -> Plan:
    return Plan([_step(i, kind, [i - 1] if i > 1 else []) for i in range(1, n + 1)])


def fan_out(n: int, kind: str = "tool") -> Plan:
    return Plan([_step(i, kind, []) for i in range(1, n + 1)])


def _step(i: int, kind: str, deps: list[int]) -> Step:
    if kind == "tool":
        return Step(i, "tool", "noop", {"x": i}, deps)
    return Step(i, "expert", "general", f"question {i}", deps)
