"""How an eval item becomes a run: a function-call item is one chat turn under its functions' schemas; a number
item in direct mode has room to work; other modes go through the whole system."""

from __future__ import annotations

import uuid

import pytest

from stepwise.evals.bfcl import dataset
from stepwise.evals.modes import predicted, run_item
from stepwise.evals.types import Item
from stepwise.reasoning.report import RunReport
from stepwise.reasoning.types import Answer, FunctionCall


class FakeRuntime:
    """Records what a mode asked of the runtime and answers with a finished report."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.calls: list[tuple[str, tuple, dict]] = []

    async def chat(self, messages, **kwargs):
        self.calls.append(("chat", (messages,), kwargs))
        return RunReport(run_id=uuid.uuid4(), status="finished", question=messages[-1].content, answer=self.answer)

    async def ask(self, question, deadline_s=None, **kwargs):
        self.calls.append(("ask", (question, deadline_s), kwargs))
        return RunReport(run_id=uuid.uuid4(), status="finished", question=question, answer=self.answer)


async def test_a_bfcl_item_is_one_required_call_under_its_functions_and_its_calls_are_what_is_scored():
    """The item's functions become Function schemas, a call is required, parallel follows the category; the
    prediction is the answer's calls as [{name, arguments}]."""
    item = next(iter(dataset("bfcl_parallel", limit=1).items()))
    call = FunctionCall(item.meta["functions"][0]["name"], {"x": 1})
    runtime = FakeRuntime(Answer("", tool_calls=[call]))
    report = await run_item(runtime, item, "direct", 30)
    ((kind, (messages,), kwargs),) = runtime.calls
    assert kind == "chat" and kwargs["require_call"] is True and kwargs["parallel_calls"] is True
    assert [f.name for f in kwargs["functions"]] == [f["name"] for f in item.meta["functions"]]
    assert messages[-1].content == item.meta["messages"][-1]["content"]
    assert predicted(item, report) == [{"name": call.name, "arguments": {"x": 1}}]
    with pytest.raises(NotImplementedError):
        await run_item(runtime, item, "orchestrated", 30)


async def test_number_items_get_room_to_work_directly_and_the_whole_system_otherwise():
    """direct: one chat turn without a constraint and with a budget for working that solutions end within (640
    tokens: at 320, 21 of gsm_symbolic's first 50 were cut off); sequential: Runtime.ask with sequential=True; the
    prediction is the answer's text."""
    item = Item("q1", "What is 6*7?", "42", "number")
    runtime = FakeRuntime(Answer("6*7 is 42"))
    report = await run_item(runtime, item, "direct", 30)
    (_, _, kwargs) = runtime.calls[0]
    assert kwargs["constraint"] is None and kwargs["max_tokens"] >= 640
    await run_item(runtime, item, "sequential", 30)
    assert runtime.calls[1][0] == "ask" and runtime.calls[1][2] == {"sequential": True}
    assert predicted(item, report) == "6*7 is 42"
