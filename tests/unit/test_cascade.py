"""The cascade: a cheaper expert answers each expert step first; the step's own expert only when that answer is not
kept (a verifier rejects it, or it finds nothing in the documents), and the escalation is an event."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepwise.app.registry import RegistryError, registry_for
from stepwise.app.settings import Settings
from stepwise.app.trace_page import trace_data
from stepwise.evals.search import canonical, config_of, search_space
from stepwise.reasoning import events as ev
from stepwise.reasoning.engine import Engine
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.report import fold
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import Expert, ExpertStep, Plan
from stepwise.tools import default_tools
from stepwise.verifiers import default_verifiers
from stepwise.verifiers.policy import VerdictPolicy
from tests.doubles import Script

TWO_EXPERTS = Path(__file__).resolve().parent.parent / "fixtures" / "two_experts.toml"
ANSWER = '{"text":"Lisbon","uses":[1]}'


async def run(strong: Script, cheap: Script, question: str = "What is the capital of Portugal?"):
    tools = default_tools()
    router = Router({"general": Expert(name="general", backend=strong), "fast": Expert(name="fast", backend=cheap)},
                    "general")
    engine = Engine(router, tools, default_verifiers(tools), policy=VerdictPolicy(), cascade="fast")
    recorder = ev.Recorder()
    plan = Plan([ExpertStep(1, "general", question)], answer=1)
    await engine.run(question, RunOptions(plan=plan, deadline_s=10), sink=recorder)
    return fold(recorder.events), recorder.events


async def test_a_cheap_answer_the_verifiers_pass_is_kept_and_the_planned_expert_is_not_asked():
    """The cheaper expert says Lisbon, which passes: the step's output is its answer, only the composer calls the
    step's own expert, and nothing escalates."""
    strong, cheap = Script(ANSWER), Script("Lisbon")
    report, events = await run(strong, cheap)
    assert report.status == "finished" and report.steps[0].output == "Lisbon"
    assert [e.expert for e in events if isinstance(e, ev.ModelCalled) and e.step_id == 1] == ["fast"]
    assert not any(isinstance(e, ev.StepEscalated) for e in events)


async def test_a_rejected_cheap_answer_escalates_to_the_planned_expert():
    """The cheaper expert's empty answer fails a verifier: the escalation is recorded with the reason, and the
    step's own expert answers it, asked afresh (no feedback about the other's answer)."""
    strong, cheap = Script("Lisbon", ANSWER), Script("  ")
    report, events = await run(strong, cheap)
    escalated = [e for e in events if isinstance(e, ev.StepEscalated)]
    assert [(e.step_id, e.from_expert, e.to_expert) for e in escalated] == [(1, "fast", "general")]
    assert "empty answer" in escalated[0].reason
    assert report.status == "finished" and report.steps[0].output == "Lisbon"
    assert len(strong.seen[0]) == 2  # the system text and the question: nothing of the rejected answer
    answered = [e.outcome for e in events if isinstance(e, ev.StepVerified) and e.verifier == "expert_answered"]
    assert answered == ["retry", "pass"]
    assert trace_data(events, now=0.0).escalations == escalated  # the trace page shows it on the step


async def test_a_cheap_reader_finding_nothing_escalates():
    """"Not in the documents" passes the verifiers, but from the cheaper expert it is no answer: the step's own
    expert reads the passages again."""
    strong, cheap = Script("Lisbon", ANSWER), Script("It is not in the documents.")
    report, events = await run(strong, cheap)
    assert [e.reason for e in events if isinstance(e, ev.StepEscalated)] == ["answered: It is not in the documents."]
    assert report.steps[0].output == "Lisbon"


def test_the_cascade_is_a_registry_role_a_configuration_sets_or_turns_off(tmp_path):
    """`experts.cascade` (STEPWISE_CASCADE) names the cheaper expert; an unknown name stops the start naming the
    field; `none` turns off a cascade the registry file sets."""
    def settings(path: Path, cascade: str | None = None) -> Settings:
        env = {"STEPWISE_EXPERTS": str(path), "STEPWISE_DATA_DIR": str(tmp_path)}
        return Settings.from_env(env | ({"STEPWISE_CASCADE": cascade} if cascade else {}))

    assert registry_for(settings(TWO_EXPERTS)).cascade is None
    assert registry_for(settings(TWO_EXPERTS, "fast")).cascade == "fast"
    with pytest.raises(RegistryError, match="`cascade` = 'tiny' is not an expert"):
        registry_for(settings(TWO_EXPERTS, "tiny"))
    cascading = tmp_path / "experts.toml"
    cascading.write_text('cascade = "fast"\n' + TWO_EXPERTS.read_text())
    assert registry_for(settings(cascading)).cascade == "fast"
    assert registry_for(settings(cascading, "none")).cascade is None


def test_the_optimizer_searches_the_cascade_when_there_are_two_experts():
    """With two experts the cascade is a switch (none or either expert); a cascade to the expert that answers
    anyway is none, and the chosen one is written as `experts.cascade`."""
    defaults = {"executor": "general", "cascade": "none"}
    space = search_space(defaults, ["general", "fast"], learned=False)
    assert space["cascade"] == ["none", "general", "fast"]
    assert "cascade" not in search_space({}, ["general"], learned=False)
    assert canonical({"executor": "general", "cascade": "general"}, defaults)["cascade"] == "none"
    params = {"planner": "program", "samples": 5, "more": 0, "examples": 3, "temperature": 0.7, "verifiers": "none",
              "compose": "auto", "max_tokens": 128, "executor": "general", "cascade": "fast"}
    assert config_of(params).experts.cascade == "fast"
