"""The model-based verifiers with the real SmolLM2: self-consistency samples the expert again and records the
agreement ratio; the LLM judge answers under its constrained verdict. Their calls are traced as "verify"."""

from __future__ import annotations

import pytest

from stepwise.reasoning import events as ev
from stepwise.reasoning.engine import Engine
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.report import fold
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import Expert, ExpertStep, Plan
from stepwise.tools import default_tools
from stepwise.verifiers import default_verifiers
from stepwise.verifiers.policy import VerdictPolicy

pytestmark = pytest.mark.model


async def test_self_consistency_and_the_judge_record_their_verdicts(smollm2_llama):
    """One expert step, checked by both: the verdicts carry the agreement ratio and the judge's reason, and each
    sample and the judge's call is a model call with purpose verify."""
    backend = smollm2_llama.new_backend()
    router = Router({"general": Expert(name="general", backend=backend, skills=["facts"])}, "general")
    tools = default_tools()
    engine = Engine(router, tools, default_verifiers(tools, ("self_consistency", "llm_judge")),
                    policy=VerdictPolicy(max_retries={"expert": 0}, max_replans=0))
    recorder = ev.Recorder()
    plan = Plan([ExpertStep(1, "general", "What is the capital of France?")])
    await engine.run("Capital of France?", RunOptions(deadline_s=120, plan=plan), sink=recorder)
    await backend.aclose()
    verdicts = {v.verifier: v for v in fold(recorder.events).steps[0].verdicts}
    consistency, judge = verdicts["self_consistency"], verdicts["llm_judge"]
    assert consistency.outcome in ("pass", "retry") and consistency.reason.startswith("agreement ")
    assert judge.outcome in ("pass", "retry") and judge.reason and "broke its schema" not in judge.reason
    verify_calls = [e for e in recorder.events if isinstance(e, ev.ModelCalled) and e.purpose == "verify"]
    assert len(verify_calls) == 4 and all(e.step_id == 1 and e.error is None for e in verify_calls)
