"""Progress while the model plans: the planner's text, as it streams, becomes PlanProgressed events (each finished
line, and the token count in between), which reach the trace, the SSE stream and `stepwise ask`'s stderr."""

from __future__ import annotations

import io
import time
import uuid

from stepwise.app.cli import show
from stepwise.app.rendering import Progress
from stepwise.app.routes import _events
from stepwise.reasoning import events as ev
from stepwise.reasoning.composer import Composer
from stepwise.reasoning.engine import Engine
from stepwise.reasoning.errors import BackendUnavailable
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.program_planner import ProgramPlanner
from stepwise.reasoning.report import fold
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import Completion, Expert, Grammar, Usage
from stepwise.tools import default_tools
from stepwise.verifiers import default_verifiers
from stepwise.verifiers.policy import VerdictPolicy

PROGRAM = "a = 12 * 2\nb = a + 46\nanswer = b * 2"


class Streaming:
    """A backend double that streams its first sample token by token (a character each) to `on_text`, as llama.cpp
    streams choice 0 of n; then answers."""

    provider, model = "test", "test"

    def __init__(self, *answers: str, fail_after: int | None = None) -> None:
        self.answers = list(answers)
        self.fail_after = fail_after

    async def generate(self, messages, on_text=None, **kwargs):
        if isinstance(kwargs.get("constraint"), Grammar):
            for i, char in enumerate(PROGRAM):
                if self.fail_after is not None and i == self.fail_after:
                    raise BackendUnavailable("the server went away mid-stream")
                if on_text is not None:
                    on_text(char)
            n = kwargs["sampling"].n
            return Completion(PROGRAM, Usage(10, len(PROGRAM), 0), 1.0, "test", alternatives=[PROGRAM] * (n - 1))
        return Completion(self.answers.pop(0), Usage(10, 5, 0), 1.0, "test")


async def plan_events(*experts: Expert) -> list[ev.AnyEvent]:
    tools = default_tools()
    router = Router({e.name: e for e in experts}, experts[0].name)
    engine = Engine(router, tools, default_verifiers(tools), policy=VerdictPolicy(),
                    planner=ProgramPlanner(router, tools, samples=3), composer=Composer(router))
    recorder = ev.Recorder()
    await engine.run("How many are there?", RunOptions(deadline_s=10), sink=recorder)
    return recorder.events


async def test_each_line_the_planner_finishes_is_an_event_with_the_tokens_so_far():
    """The program's lines arrive as PlanProgressed events, in order, before the samples are voted on and the plan is
    ready; the token counts grow; the report is folded as before."""
    events = await plan_events(Expert(name="general", backend=Streaming()))
    progressed = [e for e in events if isinstance(e, ev.PlanProgressed) and e.line is not None]
    assert [e.line for e in progressed] == ["a = 12 * 2", "b = a + 46"]  # the last line has no newline after it
    assert progressed[0].tokens == len("a = 12 * 2\n") and progressed[1].tokens > progressed[0].tokens
    assert all(e.purpose == "plan" for e in progressed)
    kinds = [type(e) for e in events]
    assert kinds.index(ev.PlanProgressed) < kinds.index(ev.ProgramsSampled) < kinds.index(ev.PlanReady)
    assert fold(events).status == "finished" and fold(events).answer.value == 140


async def test_progress_does_not_stop_a_broken_planning_call_from_going_to_the_next_expert():
    """Unlike an answer streamed to a client, progress is display only: a planner that fails midway hands the call to
    another expert sharing its skill, and the run finishes."""
    first = Expert(name="first", backend=Streaming(fail_after=5), skills=["general"])
    second = Expert(name="second", backend=Streaming(), skills=["general"])
    events = await plan_events(first, second)
    calls = [e for e in events if isinstance(e, ev.ModelCalled) and e.purpose == "plan"]
    assert [c.expert for c in calls] == ["first", "second"] and calls[1].rerouted_from == "first"
    assert fold(events).status == "finished"


def test_between_lines_the_count_is_sent_at_most_every_interval():
    """Without a newline, one event per interval: none while it has not passed, one (with no line) once it has."""
    recorder = ev.Recorder()
    progress = ev.PlanProgress(recorder, uuid.uuid4(), "plan", every_s=3600)
    for char in "answer = 6":
        progress(char)
    assert recorder.events == []
    eager = ev.PlanProgress(recorder, uuid.uuid4(), "replan", every_s=0)
    eager("x")
    assert [(e.tokens, e.line, e.purpose) for e in recorder.events] == [(1, None, "replan")]


def progressed(tokens: int, line: str | None) -> ev.PlanProgressed:
    return ev.PlanProgressed(run_id=uuid.uuid4(), at=time.time(), purpose="plan", tokens=tokens, line=line)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_ask_shows_each_written_line_and_on_a_terminal_the_ticking_count():
    """On stderr: a line per finished line of the plan with its token count; the count between lines only on a
    terminal, overwritten in place (a log file gets no carriage-return noise)."""
    log = io.StringIO()
    Progress(log).emit(progressed(7, None))
    Progress(log).emit(progressed(11, "a = 12 * 2"))
    assert log.getvalue() == "    11 tokens │ a = 12 * 2\n"
    tty = Tty()
    shown = Progress(tty)
    shown.emit(progressed(7, None))
    shown.emit(progressed(11, "a = 12 * 2"))
    assert tty.getvalue() == "\r\x1b[Kplanning… 7 tokens\r\x1b[K    11 tokens │ a = 12 * 2\n"


def test_ask_json_says_on_stderr_that_the_run_failed_and_why():
    """stdout holds only the report; stderr says the run failed, its type and the asker's message; exit status 1."""
    run_id = uuid.uuid4()
    report = fold([ev.RunStarted(run_id=run_id, at=1.0, question="q", deadline_s=5),
                   ev.RunFailed(run_id=run_id, at=2.0, error_type="backend_timeout", error="no reply in 30s",
                                latency_ms=1.0)])
    out, err = io.StringIO(), io.StringIO()
    assert show(report, True, out, err) == 1
    assert (out.getvalue().startswith("{")
            and err.getvalue() == f"the run failed (backend_timeout): {report.error.message}\n")
    out, err = io.StringIO(), io.StringIO()
    assert show(fold([ev.RunStarted(run_id=run_id, at=1.0, question="q", deadline_s=5)]), True, out, err) == 1
    assert err.getvalue() == ""  # only a failed run is reported there


async def test_the_sse_stream_carries_progress_as_plan_progressed_events():
    """POST /v1/reason's stream sends each PlanProgressed as `event: plan_progressed`, in order with the others."""
    run_id = uuid.uuid4()

    async def start(channel):
        for event in (ev.RunStarted(run_id=run_id, at=1.0, question="q", deadline_s=5), progressed(11, "a = 12 * 2")):
            channel.emit(event)
        return fold([ev.RunStarted(run_id=run_id, at=1.0, question="q", deadline_s=5)])

    messages = [m async for m in _events(start)]
    assert [m.event for m in messages] == ["run_started", "plan_progressed", "report"]
    assert '"line":"a = 12 * 2"' in messages[1].data and '"tokens":11' in messages[1].data
