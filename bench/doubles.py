"""The stand-ins benchmarks measure the orchestrator against: a no-op tool, and a model backend that answers at once
(or after a fixed latency). The backend is tests/doubles.py's InstantBackend: backend doubles are declared once, in
tests, which import no test tooling, so bench may import them; app/ never carries test doubles."""

from __future__ import annotations

import msgspec

from stepwise.app.registry import Fleet
from stepwise.reasoning.composer import Composer
from stepwise.reasoning.engine import Engine
from stepwise.reasoning.planner import Planner
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import Completion, Expert, ExpertStep, Plan, Step, ToolStep, Usage
from stepwise.tools import default_tools
from stepwise.verifiers import default_verifiers
from stepwise.verifiers.policy import VerdictPolicy
from tests.doubles import InstantBackend


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


class ScriptedBackend(InstantBackend):
    """An instant model that answers each constrained call with JSON its caller decodes, so every route runs to the
    end whatever a fuzzer sends: a one-step plan for the planner (schema "plan"), a reply calling no function for a
    function-calling turn ("tool_calls"), and the composer's Answer (citing step 1) for anything else."""

    kind = "scripted"
    REPLIES = {
        "plan": '{"steps":[{"id":1,"kind":"expert","target":"general","input":"Say done.","depends_on":[]}]}',
        "tool_calls": '{"content":"done"}',
    }

    async def generate(self, messages, *, constraint=None, sampling=None, deadline=None, on_text=None) -> Completion:
        text = self.REPLIES.get(getattr(constraint, "name", ""), self.text)
        if on_text is not None:
            on_text(text)
        return Completion(text, Usage(10, 5, 0), 0.0, self.model, "stop")


def bench_tools() -> dict:
    return {**default_tools(), "noop": NoopTool()}


def instant_fleet(latency_s: float = 0.0, max_concurrency: int = 1024, *, scripted: bool = False) -> Fleet:
    backend = ScriptedBackend() if scripted else InstantBackend(latency_s)
    expert = Expert(name="general", backend=backend, skills=["facts"], description="answers at once",
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
        return ToolStep(i, "noop", {"x": i}, deps)
    return ExpertStep(i, "general", f"question {i}", deps)
