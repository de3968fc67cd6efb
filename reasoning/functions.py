"""Calls of caller-defined functions (OpenAI's `tools`): an expert call whose output is decoded under a schema built
from the functions' own parameter schemas, so a call is never malformed — only possibly the wrong one; where several
calls may answer, sampled replies beside it (see `call_functions`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec

from stepwise.reasoning import prompts
from stepwise.reasoning.constraints import ConstraintViolated
from stepwise.reasoning.context import RunContext
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import Answer, Function, FunctionCall, JsonSchema, Message, Sampling

MAX_PARALLEL_CALLS = 8
_TEMPERATURE = 0.7  # of the sampled replies (the program planner's samples use the same)


class _Reply(msgspec.Struct, forbid_unknown_fields=True):
    tool_calls: list[FunctionCall] = []
    content: str = ""


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """An object schema that does not say otherwise gets additionalProperties false: the decoder then cannot let
    the model invent parameters (the caller's own schema wins where it says something)."""
    if schema.get("type", "object") == "object" and "additionalProperties" not in schema:
        return {"type": "object", "properties": {}, **schema, "additionalProperties": False}
    return schema


def reply_schema(functions: Sequence[Function], *, required: bool, parallel: bool) -> dict[str, Any]:
    """`{"tool_calls": [{"name": …, "arguments": {…}}, …]}`, each call under its function's parameters; unless a
    call is required, `{"content": "…"}` is the alternative."""
    calls: dict[str, Any] = {
        "type": "array",
        "items": {"anyOf": [
            {"type": "object", "properties": {"name": {"const": f.name}, "arguments": _closed(f.parameters)},
             "required": ["name", "arguments"], "additionalProperties": False}
            for f in functions
        ]},
        "minItems": 1,
    }
    # Small models repeat a call until the tokens run out; a bound makes such an output end (and stay parseable).
    calls["maxItems"] = MAX_PARALLEL_CALLS if parallel else 1
    with_calls = {"type": "object", "properties": {"tool_calls": calls}, "required": ["tool_calls"],
                  "additionalProperties": False}
    if required:
        return with_calls
    text = {"type": "object", "properties": {"content": {"type": "string", "minLength": 1}}, "required": ["content"],
            "additionalProperties": False}
    return {"anyOf": [with_calls, text]}


def catalogue(functions: Sequence[Function]) -> str:
    """One line per function: name, parameters (compact JSON) and description — what the model chooses by."""
    lines = []
    for f in functions:
        params = msgspec.json.encode(f.parameters.get("properties", {})).decode()
        lines.append(prompts.FUNCTION_LINE.format(name=f.name, description=f.description.strip(), parameters=params))
    return "\n".join(lines)


def function_messages(messages: Sequence[Message], functions: Sequence[Function], *, required: bool,
                      parallel: bool = False) -> list[Message]:
    """Our instructions and the catalogue first (a prefix the caches can keep), then the caller's system text, then
    the conversation."""
    several = prompts.FUNCTIONS_SEVERAL if parallel else ""
    text_too = "" if required else prompts.FUNCTIONS_TEXT_TOO
    system = f"{prompts.FUNCTIONS_SYSTEM}{several}{text_too}{prompts.FUNCTIONS_HEADING}{catalogue(functions)}"
    theirs = [m.content for m in messages if m.role == "system"]
    if theirs:
        system += "\n\n" + "\n".join(theirs)
    return [Message("system", system), *(m for m in messages if m.role != "system")]


async def call_functions(router: Router, target: str, messages: Sequence[Message], functions: Sequence[Function],
                         ctx: RunContext, *, required: bool, parallel: bool, max_tokens: int,
                         samples: int = 1) -> Answer:
    """Ask `target` which of `functions` (unique names: the caller checks) to call; the answer carries the calls (or,
    when none is required, text). With several calls allowed and `samples` > 1, that many replies are sampled beside
    the greedy one, at once, and the one with the most distinct calls answers, the greedy one on a tie: a small
    model's usual mistake there is one call where the request asks for several (on BFCL's first 50 parallel items,
    greedy 30 right, with 5 samples 34 — every item any of the six replies had right; on the next 50, 34 and 35)."""
    constraint = JsonSchema("tool_calls", reply_schema(functions, required=required, parallel=parallel))
    shown = function_messages(messages, functions, required=required, parallel=parallel)
    greedy = router.call(target, shown, ctx, purpose="compose", constraint=constraint,
                         sampling=Sampling(max_tokens=max_tokens), output_type=_Reply)
    if not parallel or samples <= 1:
        _, reply = await greedy
        return Answer(text=reply.content, tool_calls=_distinct(reply.tool_calls))
    first, second = await asyncio.gather(greedy, router.call(
        target, shown, ctx, purpose="compose", constraint=constraint,
        sampling=Sampling(max_tokens=max_tokens, temperature=_TEMPERATURE, n=samples)), return_exceptions=True)
    for outcome in (first, second):
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome  # cancelled: the run is going away
    if isinstance(first, BaseException) and not isinstance(first, ConstraintViolated):
        raise first
    # A sampled call that failed leaves the greedy reply alone; one that broke its constraint gives no reply.
    sampled = [] if isinstance(second, BaseException) else [second[0].text, *second[0].alternatives][:samples]
    if isinstance(first, BaseException):  # it broke its constraint: ran into max_tokens (a number repeating digits)
        text, calls = "", []
    else:
        _, reply = first
        text, calls = reply.content, _distinct(reply.tool_calls)
    if calls or isinstance(first, ConstraintViolated):  # a greedy reply in words stands: no sample overrules it
        for sample in sampled:
            other = _decoded(sample)
            if other is not None and len(other) > len(calls):
                calls = other
    if not calls and isinstance(first, ConstraintViolated):
        raise first
    return Answer(text=text, tool_calls=calls)


def _decoded(text: str) -> list[FunctionCall] | None:
    """A sampled reply's distinct calls (None if it is not a reply: cut off at max_tokens)."""
    try:
        return _distinct(msgspec.json.decode(text, type=_Reply).tool_calls)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _distinct(calls: list[FunctionCall]) -> list[FunctionCall]:
    """The same function with the same arguments twice is a model repeating itself, never a second request."""
    seen: list[FunctionCall] = []
    for call in calls:
        if call not in seen:
            seen.append(call)
    return seen
