"""The trace page's data: each step's needs (the DAG's edges) by the one rule `stepwise trace` uses too."""

from __future__ import annotations

import uuid

from stepwise.app.trace import step_needs
from stepwise.app.trace_page import trace_data
from stepwise.reasoning import events as ev
from stepwise.reasoning.types import ExpertStep, Plan, ToolStep

RUN = uuid.uuid4()


def test_a_steps_needs_are_its_depends_on_and_its_references_but_never_itself():
    """depends_on ∪ $N references, without the step's own id (a self-reference is no dependency)."""
    step = ToolStep(2, "calculator", {"expression": "$1+$2+${3}"}, [1, 2])
    assert step_needs(step) == {1, 3}
    assert step_needs(ExpertStep(1, "general", "What is $$5 in euros?")) == set()


def test_the_page_counts_a_plan_of_two_dependencies_as_two_when_a_step_mentions_itself():
    """A plan 1 → 2 → 3 in which step 3 also names $3 has two edges on the page, not three."""
    plan = Plan([ToolStep(1, "calculator", {"expression": "6*7"}),
                 ToolStep(2, "calculator", {"expression": "$1+1"}, [1]),
                 ExpertStep(3, "general", "Write $2 in words, as $3 says.", [2])])
    events = [ev.RunStarted(run_id=RUN, at=1.0, question="q", deadline_s=60.0),
              ev.PlanReady(run_id=RUN, at=1.1, plan=plan)]
    data = trace_data(events, now=2.0)
    assert data.needs == {1: [], 2: [1], 3: [2]}
    assert sum(len(n) for n in data.needs.values()) == 2
