"""Sequential mode (the evals' ReAct-like baseline): the planned steps run one at a time, in an order that respects
their dependencies; without it, independent steps overlap."""

from __future__ import annotations

import asyncio

import msgspec

from stepwise.reasoning import events as ev
from stepwise.reasoning.engine import Engine
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.report import fold
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import EXPERT_SYSTEM, Answer, Completion, Expert, ExpertStep, Plan, Step, Usage
from stepwise.tools import default_tools
from stepwise.verifiers import default_verifiers
from stepwise.verifiers.policy import VerdictPolicy


class SlowExperts:
    """A backend double: expert calls take 30 ms and say which question they got; it counts how many overlap.
    Any other call (the composer's) gets an answer citing step 1."""

    provider, model = "test", "test"

    def __init__(self) -> None:
        self.in_flight = self.most = 0
        self.order: list[str] = []

    async def generate(self, messages, **kwargs):
        if messages[0].content != EXPERT_SYSTEM:
            return Completion(msgspec.json.encode(Answer("done", [1])).decode(), Usage(1, 1, 0), latency_ms=1.0,
                              model="test")
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        self.order.append(messages[-1].content)
        await asyncio.sleep(0.03)
        self.in_flight -= 1
        return Completion(f"answer to {messages[-1].content}", Usage(1, 1, 0), latency_ms=30.0, model="test")


async def run(plan: Plan, sequential: bool) -> tuple[SlowExperts, list]:
    backend = SlowExperts()
    tools = default_tools()
    engine = Engine(Router({"general": Expert(name="general", backend=backend)}, "general"), tools,
                    default_verifiers(tools), policy=VerdictPolicy())
    recorder = ev.Recorder()
    await engine.run("q", RunOptions(deadline_s=10, plan=plan, sequential=sequential), sink=recorder)
    return backend, recorder.events


def ask(sid: int, text: str, *deps: int) -> Step:
    return ExpertStep(sid, "general", text, list(deps))


async def test_independent_steps_overlap_unless_sequential():
    """Three independent steps run at once normally, one at a time with sequential=True, in plan order."""
    plan = Plan([ask(1, "a"), ask(2, "b"), ask(3, "c")])
    parallel, _ = await run(plan, sequential=False)
    assert parallel.most == 3
    one_by_one, events = await run(plan, sequential=True)
    assert one_by_one.most == 1 and one_by_one.order == ["a", "b", "c"]
    report = fold(events)
    assert report.status == "finished" and [s.status for s in report.steps] == ["finished"] * 3
    assert report.steps[1].depends_on == []  # the trace shows the steps as planned


async def test_sequential_order_follows_dependencies_not_list_order():
    """A step listed first that needs a later-listed one runs after it: no cycle, references resolved."""
    plan = Plan([ask(1, "uses $2", 2), ask(2, "first"), ask(3, "third")])
    backend, events = await run(plan, sequential=True)
    assert backend.most == 1
    assert backend.order == ["first", "uses answer to first", "third"]
    assert fold(events).status == "finished"
