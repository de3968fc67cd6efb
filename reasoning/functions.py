"""Calls of caller-defined functions (OpenAI's `tools`): an expert call whose output is decoded under a grammar built
from the functions' own parameter schemas, so a call is never malformed — only possibly the wrong one; for one call
among several functions, a call choosing the function before it (`_choose`); where several calls may answer,
sampled replies beside it (see `call_functions`).

The functions are shown and the calls written the way Qwen2.5's chat template (and the Hermes format many tuned
models share) shows and writes them: each function one JSON line inside <tools></tools>, each call one
`<tool_call>` block. On BFCL's parallel items this answered 72 of the first 100 against 64 for our earlier
`{"tool_calls": [...]}` reply with a one-line catalogue (README, "Function calling")."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from stepwise.reasoning import prompts
from stepwise.reasoning.constraints import ConstraintViolated
from stepwise.reasoning.context import RunContext
from stepwise.reasoning.questions import spaced_lists
from stepwise.reasoning.router import Router
from stepwise.reasoning.stated import Stated, guessed, stated_arguments, without_defaults
from stepwise.reasoning.types import Answer, Completion, Function, FunctionCall, Grammar, Message, Sampling

MAX_PARALLEL_CALLS = 8
_TEMPERATURE = 0.7  # of the sampled replies (the program planner's samples use the same)
_OPEN, _CLOSE = "<tool_call>\n", "\n</tool_call>"
_NAMED = '{"name": "'  # a call's start as the chat template writes it (spaced), up to the function's name
_FLOATS = frozenset({"float", "double"})  # OpenAPI's formats of a number written as a float
_BLOCK = re.compile(re.escape(_OPEN) + r"(.*?)" + re.escape(_CLOSE), re.S)


class _Reply(msgspec.Struct):
    tool_calls: list[FunctionCall] = []
    content: str = ""
    cut_off: bool = False  # the reply ran into max_tokens inside a block: the calls before it are whole

    @classmethod
    def from_text(cls, text: str) -> _Reply:
        """The calls of a reply of `<tool_call>` blocks (one a line), or its text. A reply cut off at max_tokens
        inside a block (a small model repeating calls) keeps the whole blocks before it; one without a whole block
        is no reply."""
        if not text:  # the grammar allows no empty reply: the backend did not apply it
            raise msgspec.ValidationError("an empty reply")
        if not text.startswith("<"):  # words never start with `<` (the grammar): anything else is calls, maybe cut
            return cls(content=text)
        blocks = _BLOCK.findall(text)
        whole = "\n".join(_OPEN + b + _CLOSE for b in blocks)
        tail = text[len(whole):]  # empty, or the start of a block the tokens ran out in
        if not blocks or not text.startswith(whole) or not (
                tail == "" or ("\n" + _OPEN).startswith(tail) or tail.startswith("\n" + _OPEN)):
            raise msgspec.ValidationError("not a reply of whole <tool_call> blocks")
        return cls(tool_calls=[msgspec.json.decode(b, type=FunctionCall) for b in blocks], cut_off=text != whole)


class _Choice(msgspec.Struct):
    name: str | None = None  # the function chosen, or
    content: str = ""  # words, where no call is required

    @classmethod
    def from_text(cls, text: str) -> _Choice:
        """The function named by a call's start (`name_grammar`), or the words."""
        if text.startswith(_OPEN + _NAMED) and text.endswith('"'):
            return cls(name=msgspec.json.decode(text[len(_OPEN + _NAMED) - 1:], type=str))
        if text and not text.startswith("<"):
            return cls(content=text)
        raise msgspec.ValidationError("neither a call's start nor words")


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """An object schema that does not say otherwise gets additionalProperties false: the decoder then cannot let
    the model invent parameters (the caller's own schema wins where it says something)."""
    if schema.get("type", "object") == "object" and "additionalProperties" not in schema:
        return {"type": "object", "properties": {}, **schema, "additionalProperties": False}
    return schema


# A description's values in parentheses, one word each: "The mode of transportation (walk, bike, transit, drive)",
# "The temperature unit ('Celsius' or 'Fahrenheit')"; not examples ("e.g.", "such as", "etc.", "for example").
_WORD = r"['\"]?[A-Za-z][\w-]*['\"]?"
_LISTED = re.compile(rf"\(\s*({_WORD}(?:\s*(?:,|\bor\b|,\s*or\b)\s*{_WORD})+)\s*\)")
_EXAMPLES = re.compile(r"\b(?:e\.g\.|eg|such as|etc|example|examples|like|i\.e\.)", re.IGNORECASE)
_SEPARATOR = re.compile(r"\s*(?:,\s*or\b|,|\bor\b)\s*")


def listed(parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters with each string parameter whose description lists its values in parentheses, and which has no
    `enum`, given that list as its `enum` (its default, if it declares one, among them): the caller's documented
    options, decoded as such (asked for "a public transportation", the model wrote that where the function's
    description offers "walk, bike, transit, drive"). On BFCL's 1,000 items of the four categories, 13 parameters
    list values so, and every possible answer of theirs is one of the values."""
    properties = parameters.get("properties")
    if not isinstance(properties, dict):
        return parameters
    changed = {}
    for name, spec in properties.items():
        if not isinstance(spec, dict) or spec.get("type") != "string" or "enum" in spec:
            continue
        description = spec.get("description")
        found = _LISTED.search(description) if isinstance(description, str) else None
        if found is None or _EXAMPLES.search(found.group(0)):
            continue
        values = [v.strip("'\"") for v in _SEPARATOR.split(found.group(1).strip())]
        if "default" in spec and spec["default"] not in values:
            continue  # the default is none of them: the list is not the whole of what is accepted
        changed[name] = {**spec, "enum": values}
    return {**parameters, "properties": {**properties, **changed}} if changed else parameters


def reply_grammar(functions: Sequence[Function], *, required: bool, parallel: bool) -> str:
    """llguidance (Lark) rules of a reply: `<tool_call>` blocks, each `{"name": …, "arguments": {…}}` under its
    function's parameters (compact JSON), at most MAX_PARALLEL_CALLS (one unless `parallel`); unless a call is
    required, text not starting with `<` or a space is the alternative."""
    call = {"anyOf": [
        {"type": "object", "properties": {"name": {"const": f.name}, "arguments": _closed(listed(f.parameters))},
         "required": ["name", "arguments"], "additionalProperties": False}
        for f in functions
    ], "x-guidance": {"whitespace_flexible": False}}
    # Small models repeat a call until the tokens run out; a bound makes such an output end (and stay parseable).
    more = f' ("\\n" call){{0,{MAX_PARALLEL_CALLS - 1}}}' if parallel else ""
    return "\n".join(["%llguidance {}", _start("calls", required=required), f"calls: call{more}",
                      f"call: {json.dumps(_OPEN)} %json {json.dumps(call)} {json.dumps(_CLOSE)}"])


def name_grammar(functions: Sequence[Function], *, required: bool) -> str:
    """llguidance (Lark) rules of a call's start as the chat template writes it, `{"name": "…"` spaced, up to the
    name's closing quote: the choice of function alone; unless a call is required, the same words as `reply_grammar`
    offer."""
    names = " | ".join(json.dumps(_as_written(f.name)) for f in functions)  # as the JSON text writes each name
    return "\n".join(["%llguidance {}", _start("head", required=required),
                      f'head: {json.dumps(_OPEN + _NAMED)} name "\\""', f"name: {names}"])


def _as_written(name: str) -> str:
    """A name as it stands between a JSON string's quotes, escapes and all (the tools block shows it so)."""
    return json.dumps(name, ensure_ascii=False)[1:-1]


def _start(rule: str, *, required: bool) -> str:
    """The start rule: `rule`, or else (no call required) words not starting with `<` or a space, which no call's
    text does."""
    return f"start: {rule}" if required else f"start: {rule} | TEXT\nTEXT: /[^<\\s](.|\\n)*/"


def tools_block(functions: Sequence[Function]) -> str:
    """Each function as the chat template shows a tool: one JSON object a line, less a number's float format, which
    the server applies itself (`_finished`) and which, shown, changed other values the model wrote (bfcl_multiple's
    first 100: −2 +0 on the same items)."""
    return "".join("\n" + json.dumps({"type": "function", "function": {
        "name": f.name, "description": f.description, "parameters": _unformatted(f.parameters)}}, ensure_ascii=False)
        for f in functions)


def _unformatted(schema: Any) -> Any:
    """A schema less each float format `_as_declared` applies: the same walk (properties, items), the same test."""
    if not isinstance(schema, dict):
        return schema
    out = {k: v for k, v in schema.items() if not (k == "format" and _declares_float(schema))}
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _unformatted(v) for k, v in out["properties"].items()}
    if "items" in out:
        out["items"] = _unformatted(out["items"])
    return out


def _declares_float(schema: Any) -> bool:
    """A number schema of OpenAPI's float formats (`type` alone or in a list, as in `["number", "null"]`)."""
    if not isinstance(schema, dict) or not isinstance(schema.get("format"), str) or schema["format"] not in _FLOATS:
        return False
    kind = schema.get("type")
    return kind == "number" or (isinstance(kind, list) and "number" in kind)


def written_calls(text: str, calls: Sequence[tuple[str, str]]) -> str:
    """An earlier assistant turn's calls (name, arguments as JSON text) as the model writes them, after its words: one
    block a call, so a conversation shows the model one format."""
    blocks = []
    for name, arguments in calls:
        try:
            value: Any = json.loads(arguments)
        except ValueError:
            value = arguments  # as the caller sent it
        blocks.append(_OPEN + json.dumps({"name": name, "arguments": value}, ensure_ascii=False,
                                         separators=(",", ":")) + _CLOSE)
    return "\n".join([text, *blocks] if text else blocks)


def tool_results(results: Sequence[str]) -> str:
    """The results of calls, as the chat template gives them back: one user turn, a `<tool_response>` block each."""
    return "\n".join(f"<tool_response>\n{r}\n</tool_response>" for r in results)


def function_messages(messages: Sequence[Message], functions: Sequence[Function], *, required: bool,
                      parallel: bool = False) -> list[Message]:
    """The caller's system text (or the default), what a turn of several calls looks like, then the functions and
    how to call them, as the chat template writes them; then the conversation, its user turns' lists of numbers
    spaced (`questions.spaced_lists`: on BFCL's first 100 parallel items, "5,10 and 15" and "1,5 and 10" were read as
    510 and 15 unspaced, as three numbers spaced)."""
    theirs = [m.content for m in messages if m.role == "system"]
    system = "\n".join(theirs) if theirs else prompts.FUNCTIONS_SYSTEM
    if parallel:
        system += prompts.FUNCTIONS_SEVERAL
    if not required:
        system += prompts.FUNCTIONS_TEXT_TOO
    system += prompts.FUNCTIONS_TOOLS.format(tools=tools_block(functions))
    return [Message("system", system), *(Message(m.role, spaced_lists(m.content)) if m.role == "user" else m
                                         for m in messages if m.role != "system")]


async def call_functions(router: Router, target: str, messages: Sequence[Message], functions: Sequence[Function],
                         ctx: RunContext, *, required: bool, parallel: bool, max_tokens: int,
                         samples: int = 1, recheck: int = 1) -> Answer:
    """Ask `target` which of `functions` (unique names: the caller checks) to call; the answer carries the calls (or,
    when none is required, text). With several calls allowed and `samples` > 1, that many replies are sampled beside
    the greedy one, at once, and `_best` picks (the most calls free of guesses, then the most calls): a small model's
    usual mistake there is one call where the request asks for several (measured with the earlier JSON reply and the
    most calls alone: on BFCL's first 50 parallel items, greedy 30 right, with 5 samples 34; on the next 50, 34 and
    35). With one greedy reply (`samples` 1), `recheck` > 1 replies are sampled after it only where one of its values
    is a guess (one the conversation does not state, `stated.guessed`) or it looped to the bound of calls, and
    `_best` picks (BFCL parallel: three companies' tickers packed into one call's "AAPL,GOOGL,MSFT", which the
    request does not state; 2 of 5 samples made the three calls). One call among
    several functions takes two model calls: the function is chosen first (`_choose`)."""
    shown = function_messages(messages, functions, required=required, parallel=parallel)
    stated = Stated("\n".join(m.content for m in messages if m.role != "system"))
    schemas = {f.name: listed(f.parameters) for f in functions}  # what `_finished` and `_best` read each call by
    options = functions
    if not parallel and len(functions) > 1:
        choice = await _choose(router, target, shown, functions, ctx, required=required, max_tokens=max_tokens)
        if isinstance(choice, Answer):
            return choice
        options, required = [choice], True  # chosen: the call follows, words had their turn at the choice
    constraint = Grammar(reply_grammar(options, required=required, parallel=parallel))
    greedy = router.call(target, shown, ctx, purpose="compose", constraint=constraint,
                         sampling=Sampling(max_tokens=max_tokens), output_type=_Reply)
    if not parallel or samples <= 1:
        completion, reply = await greedy
        answer = _answer(completion, reply)
        looped = _looped(reply)
        checked = _finished(answer, schemas, stated)
        if not parallel or recheck <= 1 or not (looped or _guesses(checked, schemas, stated)):
            return checked
        try:
            sampled = await _sampled(router, target, shown, ctx, constraint, max_tokens=max_tokens, n=recheck)
        except Exception:  # noqa: BLE001 -- the samples failed (their grammar, the backend): the greedy reply stands
            sampled = []
        return _finished(_best(answer, sampled, schemas, stated, whole=not looped), schemas, stated)
    first, second = await asyncio.gather(
        greedy, _sampled(router, target, shown, ctx, constraint, max_tokens=max_tokens, n=samples),
        return_exceptions=True)
    for outcome in (first, second):
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome  # cancelled: the run is going away
    if isinstance(first, BaseException) and not isinstance(first, ConstraintViolated):
        raise first
    # A sampled call that failed leaves the greedy reply alone; one that broke its constraint gives no reply.
    sampled = [] if isinstance(second, BaseException) else second
    # The greedy reply broke its constraint: it ran into max_tokens (a number repeating digits).
    best = Answer(text="") if isinstance(first, BaseException) else _answer(*first)
    # A greedy reply in words stands: no sample overrules it.
    if best.tool_calls or isinstance(first, ConstraintViolated):
        whole = not isinstance(first, BaseException) and not _looped(first[1])
        best = _best(best, sampled, schemas, stated, whole=whole)
    if not best.tool_calls and isinstance(first, ConstraintViolated):
        raise first
    return _finished(best, schemas, stated)


async def _sampled(router: Router, target: str, shown: list[Message], ctx: RunContext, constraint: Grammar, *,
                   max_tokens: int, n: int) -> list[str]:
    """`n` replies sampled in one call, as texts."""
    completion, _ = await router.call(target, shown, ctx, purpose="compose", constraint=constraint,
                                      sampling=Sampling(max_tokens=max_tokens, temperature=_TEMPERATURE, n=n))
    return [completion.text, *completion.alternatives][:n]


def _best(greedy: Answer, sampled: Sequence[str], schemas: Mapping[str, Any], stated: Stated, *,
          whole: bool) -> Answer:
    """The reply with the most calls free of guesses (as the caller gets them: `_finished`, `stated.guessed`), then
    the most calls; the greedy one on a tie in the first, unless it is not `whole` (it looped to the bound, or broke
    its constraint): then the best whole sample. Counting calls alone, samples that looped or packed guesses into
    more calls won (BFCL parallel, first 100: 8 looping calls replaced 4 right ones)."""
    def key(calls: list[FunctionCall]) -> tuple[int, int]:
        finished = _finished(Answer(text="", tool_calls=calls), schemas, stated)
        return len(finished.tool_calls) - _guesses(finished, schemas, stated), len(calls)

    best, best_key = greedy, (key(greedy.tool_calls)[0], MAX_PARALLEL_CALLS + 1) if whole else (-1, -1)
    for sample in sampled:
        calls = _decoded(sample)
        if calls is not None and (other := key(calls)) > best_key:
            best, best_key = Answer(text=greedy.text, tool_calls=calls), other
    return best


def _guesses(answer: Answer, schemas: Mapping[str, Any], stated: Stated) -> int:
    """How many of the calls (as `_finished` leaves them: the guesses left are required arguments') carry a value
    the conversation does not state (`stated.guessed`)."""
    return sum(1 for c in answer.tool_calls if guessed(c.arguments, schemas.get(c.name, {}), stated))


def _looped(reply: _Reply) -> bool:
    """A reply whose distinct calls ran to the bound: a small model making up call after call until the grammar
    stopped it (on BFCL's parallel_multiple, 4 of the first 100 replies, each wrong; of BFCL's answers, 2 of
    parallel's 200 have 8 calls and none of parallel_multiple's 200). Repeating the same calls to the bound is not
    one: the repeats are dropped (`_distinct`), and counted, they had such replies rechecked and one right one lost."""
    return len(_distinct(reply.tool_calls)) >= MAX_PARALLEL_CALLS


async def _choose(router: Router, target: str, shown: list[Message], functions: Sequence[Function], ctx: RunContext,
                  *, required: bool, max_tokens: int) -> Function | Answer:
    """The function one call should call, chosen as the chat template starts a call (`{"name": "` spaced); or,
    where no call is required, the words the model answers with instead. Decoded compact from the start, the
    model chose a wrong function where a right one was plain (bfcl_multiple's first 100: 87 right; chosen first
    this way, 90 and 89 in two runs, both functions right; README, "Function calling"). The prompt is the call's
    own, so a server's prefix cache serves the call that follows."""
    completion, choice = await router.call(target, shown, ctx, purpose="compose",
                                           constraint=Grammar(name_grammar(functions, required=required)),
                                           sampling=Sampling(max_tokens=max_tokens), output_type=_Choice)
    if choice.name is None:
        return _answer(completion, _Reply(content=choice.content))
    chosen = next((f for f in functions if f.name == choice.name), None)
    if chosen is None:  # the backend did not apply the grammar
        raise ConstraintViolated(f"the choice named {choice.name!r}, which is not one of the functions")
    return chosen


def _finished(answer: Answer, schemas: Mapping[str, Any], stated: Stated) -> Answer:
    """The calls as the caller gets them: each optional argument the conversation does not state left out
    (`reasoning/stated.py`: the model's guess, where the caller's function has its own default; on BFCL's first 100
    parallel items 79 → 81 and first 50 parallel_multiple 40 → 41, README "Function calling"), and each whole number
    the caller's schema declares a float (OpenAPI's `format: float`/`double`) written as one: JSON does not tell `3`
    from `3.0`, the grammar lets the model write either, and a caller decoding the arguments strictly (a list of
    floats) refuses the integer. Calls already made count as stated, so an argument a tool's result gave is kept. A
    call that differs from an earlier one only by arguments set to their declared default is the same call, dropped
    (a sample repeated a census query with its default year left out, and outnumbered the right reply)."""
    if not answer.tool_calls:
        return answer
    calls, seen = [], []
    for call in answer.tool_calls:
        schema = schemas.get(call.name, {})
        arguments = _as_declared(stated_arguments(call.arguments, schema, stated), schema)
        same = (call.name, without_defaults(arguments, schema))
        if same not in seen:
            seen.append(same)
            calls.append(FunctionCall(call.name, arguments))
    return msgspec.structs.replace(answer, tool_calls=calls)


def _as_declared(value: Any, schema: Any) -> Any:
    """The value with the floats its schema declares; what the walk cannot follow (`anyOf`, `$ref`, a list of item
    schemas) stays as the model wrote it."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        return {k: _as_declared(v, properties.get(k) if isinstance(properties, dict) else None)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_as_declared(v, schema.get("items")) for v in value]
    if type(value) is int and _declares_float(schema):
        try:
            return float(value)
        except OverflowError:  # a model repeating digits past a double's range: the number as written
            return value
    return value


def _answer(completion: Completion, reply: _Reply) -> Answer:
    """The reply as an answer; cut off when its whole calls end before the tokens did, or its words ran into
    max_tokens."""
    cut = reply.cut_off or (not reply.tool_calls and completion.finish_reason == "length")
    return Answer(text=reply.content, tool_calls=_distinct(reply.tool_calls), cut_off=cut)


def _decoded(text: str) -> list[FunctionCall] | None:
    """A sampled reply's distinct calls (None if it is not a whole reply: cut off at max_tokens, or at the bound of
    calls, its calls a loop's)."""
    try:
        reply = _Reply.from_text(text)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return None if reply.cut_off or _looped(reply) else _distinct(reply.tool_calls)


def _distinct(calls: list[FunctionCall]) -> list[FunctionCall]:
    """The same function with the same arguments twice is a model repeating itself, never a second request."""
    seen: list[FunctionCall] = []
    for call in calls:
        if call not in seen:
            seen.append(call)
    return seen
