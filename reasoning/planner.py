"""The planner: the model writes a Plan decoded under the plan's JSON schema, which embeds each tool's
argument schema, so a tool's arguments are never parsed out of free text."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import TypeVar

import msgspec

from reasoning.errors import OutputInvalid
from reasoning.events import EventSink, ModelCalled
from reasoning.plan import MAX_STEPS, plan_schema
from reasoning.types import Completion, Expert, JsonSchema, Message, ModelBackend, Plan, Sampling, Tool

T = TypeVar("T")

_RULES = """You plan how to answer a question with steps that run in parallel when independent.
Reply with a plan: a list of steps. A tool step calls a tool with arguments; an expert step asks an expert a short question.
A step's input may use the result of an earlier step N by writing $N; then list N in depends_on.
Give each independent sub-computation its own step. Do not compute anything in your head: use steps.
Use at most {max_steps} steps.

Examples:
Q: What is 2*3 plus 4*5?
{{"steps":[{{"id":1,"kind":"tool","target":"calculator","input":{{"expression":"2*3"}},"depends_on":[]}},{{"id":2,"kind":"tool","target":"calculator","input":{{"expression":"4*5"}},"depends_on":[]}},{{"id":3,"kind":"tool","target":"calculator","input":{{"expression":"$1+$2"}},"depends_on":[1,2]}}]}}
Q: How many legs do 3 spiders have?
{{"steps":[{{"id":1,"kind":"expert","target":"{expert}","input":"How many legs does a spider have? Reply with a number.","depends_on":[]}},{{"id":2,"kind":"tool","target":"calculator","input":{{"expression":"$1*3"}},"depends_on":[1]}}]}}
Q: Who wrote Hamlet?
{{"steps":[{{"id":1,"kind":"expert","target":"{expert}","input":"Who wrote Hamlet?","depends_on":[]}}]}}
"""


def planner_prompt(tools: Mapping[str, Tool], experts: Mapping[str, Expert], max_steps: int = MAX_STEPS) -> str:
    """The static system prompt: the catalogue and the rules. It comes first so prefix caches reuse it."""
    lines = ["Tools:"]
    lines += [f"- {t.name}: {t.description}" for t in tools.values()]
    lines.append("Experts:")
    lines += [f"- {e.name}: {e.skill}" for e in experts.values()]
    expert = next(iter(experts), "general")
    return "\n".join(lines) + "\n" + _RULES.format(max_steps=max_steps, expert=expert)


class Planner:
    def __init__(self, backend: ModelBackend, tools: Mapping[str, Tool], experts: Mapping[str, Expert], max_steps: int = MAX_STEPS):
        self.backend = backend
        self._system = planner_prompt(tools, experts, max_steps)
        self._constraint = JsonSchema("plan", plan_schema(tools, experts, max_steps))
        # Generous: a plan cut off by max_tokens cannot decode; the run's deadline bounds the time instead.
        self._sampling = Sampling(max_tokens=1024)

    async def plan(self, question: str, *, sink: EventSink, run_id: uuid.UUID, deadline: float) -> Plan:
        messages = [Message("system", self._system), Message("user", f"Q: {question}")]
        completion = await self.backend.generate(messages, constraint=self._constraint, sampling=self._sampling, deadline=deadline)
        sink.emit(model_called(run_id, None, "plan", "planner", self.backend, completion))
        return decode_constrained(completion, Plan, "plan")


def decode_constrained(completion: Completion, type_: type[T], what: str) -> T:
    """Decode output produced under a schema; failing to is an error of its own, never silently accepted."""
    try:
        return msgspec.json.decode(completion.text, type=type_)
    except msgspec.DecodeError as exc:
        cut = " (cut off at max_tokens)" if completion.finish_reason == "length" else ""
        raise OutputInvalid(f"the {what} did not decode under its schema{cut}: {exc}") from exc


def model_called(run_id: uuid.UUID, step_id: int | None, purpose, expert: str, backend: ModelBackend, c: Completion) -> ModelCalled:
    return ModelCalled(
        run_id=run_id, at=time.time(), step_id=step_id, purpose=purpose, expert=expert, provider=backend.provider,
        request_model=c.model, input_tokens=c.usage.input_tokens, output_tokens=c.usage.output_tokens,
        cached_tokens=c.usage.cached_tokens, latency_ms=c.latency_ms, ttft_ms=c.ttft_ms, finish_reason=c.finish_reason,
    )
