"""Issue 14, large outputs: a tool's result over the engine's bound (STEPWISE_MAX_TOOL_RESULT_BYTES, bytes of its
JSON) is refused, not kept: the call is recorded with the refusal and no result, the step fails, and the text never
reaches an event, the trace or a later step."""

from __future__ import annotations

import uuid

import msgspec

from stepwise.app.registry import Fleet
from stepwise.app.runtime import engine_for
from stepwise.app.settings import Settings
from stepwise.reasoning import events as ev
from stepwise.reasoning.engine import Engine
from stepwise.reasoning.errors import explain
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.report import fold
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import MAX_TOOL_RESULT_BYTES, Expert, Plan, ToolStep
from stepwise.tools import tool
from stepwise.verifiers import default_verifiers
from stepwise.verifiers.basic import ToolRecomputed
from stepwise.verifiers.policy import VerdictPolicy
from tests.doubles import InstantBackend


@tool
def blurt(size: int) -> str:
    """returns `size` letters"""
    return "x" * size


@tool
def listing(count: int) -> dict:
    """returns a list of `count` short words"""
    return {"words": ["word"] * count}


def engine(limit: int) -> Engine:
    tools = {"blurt": blurt, "listing": listing}
    router = Router({"general": Expert(name="general", backend=InstantBackend())}, "general")
    # no replan: the run ends where the refused step fails
    return Engine(router, tools, default_verifiers(tools), policy=VerdictPolicy(max_replans=0),
                  max_tool_result_bytes=limit)


async def run(e: Engine, plan: Plan) -> list[ev.AnyEvent]:
    recorder = ev.Recorder()
    await e.run("how long?", RunOptions(deadline_s=10, plan=plan), sink=recorder, run_id=uuid.uuid4())
    return recorder.events


async def test_a_result_at_the_bound_is_kept():
    """`"x" * 98` is 100 bytes of JSON (its quotes): exactly the bound, so it is the step's output."""
    events = await run(engine(100), Plan([ToolStep(1, "blurt", {"size": 98})]))
    report = fold(events)
    assert report.status == "finished"
    assert report.steps[0].output == "x" * 98


async def test_a_result_over_the_bound_is_refused_and_recorded():
    """One byte more: the call is recorded with no result and an error giving both sizes; the run fails naming it;
    no event holds the text."""
    events = await run(engine(100), Plan([ToolStep(1, "blurt", {"size": 99})]))
    [call] = [e for e in events if isinstance(e, ev.ToolCalled)]
    assert call.result is None
    assert call.error is not None and "101 bytes" in call.error and "100 bytes" in call.error
    report = fold(events)
    assert report.status == "failed"
    assert report.error is not None and report.error.type == "tool_error" and "101 bytes" in report.error.message
    assert not any("x" * 99 in msgspec.json.encode(e).decode() for e in events)


async def test_the_bound_counts_every_kind_of_result_and_later_steps_never_see_it():
    """A structured result is measured as the JSON the trace would store; the step after the refused one never
    starts."""
    plan = Plan([ToolStep(1, "listing", {"count": 1000}),
                 ToolStep(2, "blurt", {"size": 1}, [1])])
    events = await run(engine(1000), plan)
    [call] = [e for e in events if isinstance(e, ev.ToolCalled)]
    assert call.result is None and call.error is not None and "over the limit" in call.error
    assert not any(isinstance(e, ev.StepStarted) and e.step_id == 2 for e in events)


def test_the_bound_is_a_setting_passed_to_the_engine(tmp_path):
    """1 MiB unless STEPWISE_MAX_TOOL_RESULT_BYTES says otherwise; the engine's default is the same constant."""
    env = {"HOME": str(tmp_path)}
    assert Settings.from_env(env).max_tool_result_bytes == MAX_TOOL_RESULT_BYTES == 1_048_576
    assert Settings.from_env(env | {"STEPWISE_MAX_TOOL_RESULT_BYTES": "5000"}).max_tool_result_bytes == 5000
    router = Router({"general": Expert(name="general", backend=InstantBackend())}, "general")
    assert Engine(router, {}, [], policy=VerdictPolicy()).max_tool_result_bytes == MAX_TOOL_RESULT_BYTES
    (tmp_path / "experts.toml").write_text('[[experts]]\nname = "general"\nbackend = "local"\n')
    settings = Settings.from_env(env | {"STEPWISE_MAX_TOOL_RESULT_BYTES": "5000",
                                        "STEPWISE_EXPERTS": str(tmp_path / "experts.toml")})
    fleet = Fleet(experts={"general": Expert(name="general", backend=InstantBackend())}, llamas=[])
    assert engine_for(settings, fleet, {}).max_tool_result_bytes == 5000  # what `stepwise serve` builds


def test_a_failed_step_whose_arguments_or_reason_hold_braces_is_explained():
    """Regression (found by this file's refused call, `blurt: {"size": 99}`): the explanation put the step and its
    reason into the text before formatting it, so their braces were read as fields (KeyError: '"size"'), and the
    run's report could not be made."""
    text = explain("tool_error", "blurt refused", 'blurt: {"size": 99}', "bad {'a': 1} and {0}")
    assert text.startswith("""A step of the answer failed: blurt: {"size": 99} (bad {'a': 1} and {0}). """)
    assert explain("deadline_exceeded", "the run's deadline of {5}s passed.").startswith(
        "No answer in the time allowed (the run's deadline of {5}s passed)")


_drifted = [0]


@tool(deterministic=True)
def drifting(size: int) -> str:
    """returns `size` letters, more each time (a tool that calls itself deterministic and is not)"""
    _drifted[0] += 1
    return "y" * (size * _drifted[0])


async def test_a_recomputed_result_is_shown_in_the_verdict_only_in_part():
    """The recompute verifier runs the tool again; that second result is bounded by nothing, so its reason shows the
    first 500 characters and the length, not the whole."""
    _drifted[0] = 1
    verdict = await ToolRecomputed({"drifting": drifting}).check(drifting, {"size": 2000}, "y" * 2000)
    assert verdict.outcome == "fail"
    assert len(verdict.reason) < 1200 and "(4,002 characters)" in verdict.reason
