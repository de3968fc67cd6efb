"""The router: candidates by name, skill and load; concurrency limits; failover recorded; violations counted."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest

from stepwise.reasoning import events as ev
from stepwise.reasoning.context import Budget, RunContext
from stepwise.reasoning.errors import BackendError, BackendUnavailable, BudgetExceeded, OutputInvalid
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import Answer, Expert, Message
from tests.doubles import Scripted


def expert(name: str, backend, *skills: str, **kw) -> Expert:
    return Expert(name=name, backend=backend, skills=list(skills), **kw)


async def call(router: Router, target: str, sink=None, budget: Budget = Budget(), **kw):
    ctx = RunContext(uuid.uuid4(), sink or ev.Recorder(), asyncio.get_running_loop().time() + 10, budget)
    return await router.call(target, [Message("user", "q")], ctx, purpose="expert", **kw)


def test_a_name_comes_first_then_experts_sharing_a_skill():
    """Targeting an expert by name tries it first, then others with a common skill; unrelated ones never."""
    router = Router({"a": expert("a", None, "math"), "b": expert("b", None, "math"), "c": expert("c", None, "poetry")},
                    "a")
    assert [e.name for e in router.candidates("a")] == ["a", "b"]
    assert [e.name for e in router.candidates("math")] == ["a", "b"]
    assert [e.name for e in router.candidates("nobody")] == ["a"]
    assert router.targets() == ["a", "b", "c", "math", "poetry"]


def test_a_skill_goes_to_the_least_loaded_expert():
    """Among a skill's experts, the one with the lowest in-flight share of its limit comes first."""
    router = Router({"a": expert("a", None, "math", max_concurrency=2),
                     "b": expert("b", None, "math", max_concurrency=4)}, "a")
    router.in_flight.update(a=1, b=1)
    assert [e.name for e in router.candidates("math")] == ["b", "a"]


async def test_the_concurrency_limit_holds():
    """An expert with max_concurrency 2 never runs more than two calls at once."""
    backend = Scripted(delay=0.02)
    router = Router({"a": expert("a", backend, max_concurrency=2)}, "a")
    await asyncio.gather(*(call(router, "a") for _ in range(6)))
    assert backend.calls == 6 and backend.peak == 2


async def test_a_down_expert_hands_the_call_to_one_with_the_same_skill():
    """The failed call and the reroute are both recorded; cost comes from the serving expert's prices."""
    down = Scripted(error=BackendUnavailable("refused"))
    up = Scripted("42")
    router = Router({"a": expert("a", down, "math"), "b": expert("b", up, "math", price_in=1.0, price_out=2.0)}, "a")
    sink = ev.Recorder()
    completion, _ = await call(router, "a", sink)
    assert completion.text == "42"
    failed, served = sink.events
    assert (failed.expert, failed.error.startswith("backend_unavailable"), failed.input_tokens) == ("a", True, 0)
    assert (served.expert, served.rerouted_from, served.error) == ("b", "a", None)
    assert served.cost == pytest.approx((1000 * 1.0 + 500 * 2.0) / 1e6)


async def test_a_refusal_is_not_rerouted():
    """A 400 from the expert is about the request: no other expert is tried."""
    refusing = Scripted(error=BackendError("bad request", status=400))
    other = Scripted()
    router = Router({"a": expert("a", refusing, "math"), "b": expert("b", other, "math")}, "a")
    with pytest.raises(BackendError, match="bad request"):
        await call(router, "a")
    assert other.calls == 0


async def test_an_output_that_breaks_its_type_is_counted_and_raised():
    """Typed output is decoded with msgspec; a violation is an OutputInvalid, counted, and recorded on the call."""
    router = Router({"a": expert("a", Scripted('{"text": 5}'))}, "a")
    sink = ev.Recorder()
    with pytest.raises(OutputInvalid):
        await call(router, "a", sink, output_type=Answer)
    assert router.violations["a"] == 1
    assert sink.events[0].error.startswith("constraint_violated")
    good = Router({"a": expert("a", Scripted(msgspec.json.encode(Answer("x", [1])).decode()))}, "a")
    _, answer = await call(good, "a", output_type=Answer)
    assert answer == Answer("x", [1])


async def test_budgets_of_calls_and_tokens_are_enforced_per_run():
    """A run's max_model_calls refuses the call past it; max_tokens ends the run after the call that crossed it."""
    backend = Scripted()
    router = Router({"a": expert("a", backend)}, "a")
    ctx = RunContext(uuid.uuid4(), ev.Recorder(), asyncio.get_running_loop().time() + 10, Budget(max_model_calls=1))
    await router.call("a", [Message("user", "q")], ctx, purpose="expert")
    with pytest.raises(BudgetExceeded, match="max_model_calls"):
        await router.call("a", [Message("user", "q")], ctx, purpose="expert")
    assert backend.calls == 1
    with pytest.raises(BudgetExceeded, match="max_tokens: the run has used 1500 tokens, more than its 1000"):
        await call(router, "a", budget=Budget(max_tokens=1000))
