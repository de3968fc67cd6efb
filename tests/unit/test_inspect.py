"""The pure parts of app/inspection/: ages, replay plans, the diff of two reports, the drawing of odd plans."""

from __future__ import annotations

import argparse
import uuid
from datetime import timedelta

import msgspec
import pytest

from stepwise.app.inspection.common import InspectError
from stepwise.app.inspection.prune import format_age, parse_age
from stepwise.app.inspection.replay import diff_reports, replay_plan
from stepwise.app.inspection.trace import render_trace
from stepwise.app.rendering import tree
from stepwise.reasoning import events as ev
from stepwise.reasoning.report import fold
from stepwise.reasoning.types import Plan, ToolStep
from tests.fixtures.known_run import known_run


def report(**changes):
    events = known_run(uuid.uuid4(), 1_800_000_000.0)
    return msgspec.structs.replace(fold(events), **changes) if changes else fold(events)


@pytest.mark.parametrize(("text", "age"), [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)),
                                           ("45m", timedelta(minutes=45)),
                                          ("1.5h", timedelta(minutes=90)), ("90s", timedelta(seconds=90))])
def test_an_age_is_a_number_and_a_unit(text, age):
    """d, h, m and s; fractions allowed."""
    assert parse_age(text) == age
    assert parse_age(format_age(age)) == age  # printed back in a form it reads


@pytest.mark.parametrize("text", ["30", "d", "30 days", "-1d", "1w"])
def test_an_age_without_a_known_unit_is_refused(text):
    """argparse turns the error into a usage message."""
    with pytest.raises(argparse.ArgumentTypeError):
        parse_age(text)


def test_a_step_replay_is_that_step_alone_with_its_resolved_input_and_no_dependencies():
    """Step 2's last attempt ran `8*3`; the one-step plan keeps its id, kind and target."""
    assert replay_plan(report(), 2, False) == Plan([ToolStep(2, "calculator", {"expression": "8*3"}, [])])
    assert replay_plan(report(), None, True) == report().plan and replay_plan(report(), None, False) is None
    with pytest.raises(InspectError, match="no recorded step 7"):
        replay_plan(report(), 7, False)


def test_the_diff_names_changed_added_and_removed_steps_and_verdicts():
    """Same ids are compared field by field; ids on one side only are added or removed."""
    old = report()
    changed = msgspec.structs.replace(old.steps[1], output=25, verdicts=[])
    added = msgspec.structs.replace(old.steps[1], id=3, output=1)
    new = report(run_id=uuid.uuid4(), steps=[changed, added], latency_ms=3500.0)
    lines = diff_reports(old, new).splitlines()
    assert lines[1] == "answer:   'Three spiders have 24 legs.' (unchanged)"
    assert lines[2:6] == ["steps:    2 → 2, 3 changed",
                          "  [1] removed: general: How many legs does a spider have? Reply with a number. → 8",
                          "  [2] calculator: output 24 → 25", "  [3] added: calculator: 8*3 → 1"]
    assert lines[6:8] == ["verdicts:",
                          "  [2] tool_recomputed:pass → -"] and lines[8] == "latency:  2.0 s → 3.5 s (+1.5 s)"


def test_a_plan_with_a_cycle_is_still_drawn_whole():
    """An invalid plan (1 needs 2, 2 needs 1) has no root; both steps are shown, not run."""
    run_id = uuid.uuid4()
    plan = Plan([ToolStep(1, "calculator", {"expression": "$2"}),
                 ToolStep(2, "calculator", {"expression": "$1"})])
    out = render_trace([ev.RunStarted(run_id=run_id, at=1.0, question="q", deadline_s=5.0),
                        ev.PlanReady(run_id=run_id, at=1.1, plan=plan),
                        ev.RunFailed(run_id=run_id, at=1.2, error_type="plan_invalid", error="cycle",
                                     latency_ms=200.0)])
    assert "└─ [1] calculator: $2  (not run)" in out and "[2] calculator: $1  (not run)" in out


def test_a_calculator_step_is_shown_by_its_expression_and_another_tools_by_its_arguments():
    """As the calculator shows its calls: `8*3`, in `ask`'s tree and in the trace alike; a tool the commands do not
    know (sql) by its arguments' JSON, and an expert step by its question."""
    known = report()
    sql = msgspec.structs.replace(known.steps[1], id=3, target="sql", input={"query": "SELECT 1"}, depends_on=[])
    lines = tree(report(steps=[*known.steps, sql])).splitlines()
    assert lines[2].startswith("├─ [1] general: How many legs does a spider have? Reply with a number. → 8  ")
    assert (lines[3].startswith("├─ [2] calculator: 8*3 → 24  ")
            and lines[4].startswith('└─ [3] sql: {"query":"SELECT 1"} → 24  '))
    assert "[2] calculator: 8*3 → 24 · " in render_trace(known_run(uuid.uuid4(), 1_800_000_000.0))
