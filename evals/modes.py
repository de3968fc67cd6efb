"""How one item is run, per mode. Each is a real, traced run through the runtime's engine and trace sink:

- direct: one call to the default expert, no plan — the question in, the answer out, constrained to the answer's
  type (a number, or an arithmetic expression) where that makes sense;
- orchestrated: the full system, `Runtime.ask`;
- sequential: the same planned steps, one at a time (`Runtime.ask(..., sequential=True)`), the ReAct-like baseline;
Function-call items (BFCL) are one conversation turn whose answer is calls of the item's functions, decoded under
their schemas (`Runtime.chat(messages, functions=…)`): they run in `direct` mode only.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Literal

from reasoning import errors
from reasoning.context import Budget, RunContext
from reasoning.events import AnswerReady, FanOut, Recorder, RunFailed, RunFinished, RunStarted
from reasoning.report import RunReport, fold
from reasoning.types import EXPERT_SYSTEM, Answer, Constraint, Function, Message, Regex, Sampling

from evals.bfcl import json_schema
from evals.types import Item

Mode = Literal["direct", "orchestrated", "sequential"]
MODES: tuple[Mode, ...] = ("direct", "orchestrated", "sequential")

_CONSTRAINTS: dict[str, tuple[Constraint, int]] = {  # bounded: a small model left to it writes digits until max_tokens
    "number": (Regex(r"-?[0-9]{1,12}(\.[0-9]{1,6})?"), 16),
    "expression": (Regex(r"[0-9+\-*/() ]{1,40}"), 32),
}


async def run_item(runtime: Any, item: Item, mode: Mode, deadline_s: float) -> RunReport:
    """The item's run, as a report folded from its own events."""
    if item.answer_type == "function_calls":
        if mode != "direct":
            raise NotImplementedError("function-call items are one decoded call: run them in direct mode")
        messages = [Message(m["role"], m["content"]) for m in item.meta["messages"]]
        functions = [Function(**json_schema(f)) for f in item.meta["functions"]]
        return await runtime.chat(messages, functions=functions, require_call=True, parallel_calls=item.meta["parallel"],
                                  deadline_s=deadline_s)
    if mode == "direct":
        constraint, max_tokens = _CONSTRAINTS.get(item.answer_type, (None, 128))
        return await ask_direct(runtime, item.question, deadline_s, constraint, max_tokens)
    return await runtime.ask(item.question, deadline_s, sequential=mode == "sequential")


def predicted(item: Item, report: RunReport) -> Any:
    """What the scorer judges: the answer's text, or its function calls as [{name, arguments}]."""
    if report.answer is None:
        return None
    if item.answer_type == "function_calls":
        calls = getattr(report.answer, "tool_calls", None) or []
        return [{"name": c["name"] if isinstance(c, dict) else c.name,
                 "arguments": c["arguments"] if isinstance(c, dict) else c.arguments} for c in calls]
    return report.answer.text


async def ask_direct(runtime: Any, question: str, deadline_s: float, constraint: Constraint | None = None,
                     max_tokens: int = 128) -> RunReport:
    """One model call to the default expert, recorded as a run of its own (RunStarted, ModelCalled, AnswerReady,
    RunFinished or RunFailed) into the runtime's trace sink, so its trace is a `runs` row like any other."""
    router = runtime.engine.router
    recorder = Recorder()
    sink = FanOut(recorder, runtime.sink)
    run_id = uuid.uuid4()
    started = time.perf_counter()
    ctx = RunContext(run_id, sink, asyncio.get_running_loop().time() + deadline_s, Budget())
    sink.emit(RunStarted(run_id=run_id, at=time.time(), question=question, deadline_s=deadline_s))
    messages = [Message("system", EXPERT_SYSTEM), Message("user", question)]

    def failed(kind: str, message: str) -> None:
        sink.emit(RunFailed(run_id=run_id, at=time.time(), error_type=kind, error=message, latency_ms=_ms(started)))

    try:
        async with asyncio.timeout_at(ctx.deadline):
            completion, _ = await router.call(router.default, messages, ctx, purpose="expert", constraint=constraint,
                                              sampling=Sampling(max_tokens=max_tokens))
    except TimeoutError:
        failed("deadline_exceeded", f"the run's deadline of {deadline_s:g}s passed")
    except errors.ReasoningError as exc:
        failed(exc.kind, str(exc))
    except asyncio.CancelledError:
        failed("cancelled", "the run was cancelled")
        raise
    except Exception as exc:
        failed("internal_error", repr(exc))
        raise
    else:
        sink.emit(AnswerReady(run_id=run_id, at=time.time(), answer=Answer(text=completion.text.strip())))
        sink.emit(RunFinished(run_id=run_id, at=time.time(), latency_ms=_ms(started)))
    return fold(recorder.events)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
