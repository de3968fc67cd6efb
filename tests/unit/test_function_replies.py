"""A function-calling turn's reply as the model writes it: `<tool_call>` blocks (Qwen2.5's and the Hermes format), at
most MAX_PARALLEL_CALLS of them where several calls are allowed, one where not, words where no call is required —
checked against llguidance itself, byte by byte — and decoded back into calls; a reply cut off at max_tokens keeps its
whole calls and says it was cut off."""

from __future__ import annotations

import json

import llguidance
import msgspec
import pytest
from llguidance import LLMatcher, LLTokenizer, TokenizerWrapper

from stepwise.reasoning.constraints import ConstraintViolated, decode_output
from stepwise.reasoning.functions import MAX_PARALLEL_CALLS, _Reply, function_messages, reply_grammar, tools_block
from stepwise.reasoning.types import Function, FunctionCall, Message
from tests.unit.test_function_samples import Sampler, answer

WEATHER = Function("weather", "The weather in a city.",
                   {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


class _Bytes:
    """A tokenizer of one token a byte (and an end token), so a grammar is checked on exact text."""

    eos_token_id, bos_token_id, special_token_ids = 256, None, [256]
    tokens = [bytes([i]) for i in range(256)] + [b"<eos>"]

    def __call__(self, text: bytes) -> list[int]:
        return list(text)


_TOKENIZER = LLTokenizer(TokenizerWrapper(_Bytes()))


def accepts(grammar: str, text: str) -> bool:
    matcher = LLMatcher(_TOKENIZER, llguidance.grammar_from("lark", grammar), log_level=0)
    return matcher.consume_tokens(list(text.encode())) and not matcher.is_error() and matcher.is_accepting()


def call(name: str, arguments: dict) -> str:
    """One call as the model writes it."""
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


def block(city: str) -> str:
    return '<tool_call>\n{"name":"weather","arguments":{"city":"' + city + '"}}\n</tool_call>'


def test_several_calls_are_blocks_one_a_line_up_to_the_bound():
    """Parallel calls allowed: one to MAX_PARALLEL_CALLS blocks, a newline between; nothing else."""
    grammar = reply_grammar([WEATHER], required=True, parallel=True)
    assert accepts(grammar, block("Paris")) and accepts(grammar, block("Paris") + "\n" + block("Rome"))
    assert accepts(grammar, "\n".join([block("Oslo")] * MAX_PARALLEL_CALLS))
    assert not accepts(grammar, "\n".join([block("Oslo")] * (MAX_PARALLEL_CALLS + 1)))
    assert not accepts(grammar, "Paris") and not accepts(grammar, block("Paris").replace("city", "town"))


def test_one_call_allowed_is_one_block_and_words_only_when_no_call_is_required():
    """Without parallel calls a second block is refused; without a required call, words not starting with `<` are
    the alternative."""
    required = reply_grammar([WEATHER], required=True, parallel=False)
    optional = reply_grammar([WEATHER], required=False, parallel=False)
    assert accepts(required, block("Paris")) and not accepts(required, block("Paris") + "\n" + block("Rome"))
    assert not accepts(required, "No function fits.") and accepts(optional, "No function fits.")
    assert not accepts(optional, "\n" + block("Paris"))  # words do not start with a space (calls hidden in them)
    assert accepts(optional, block("Paris"))


def test_a_reply_decodes_into_its_calls_or_its_words():
    """Blocks become calls (spaced JSON too); words become content; nothing else is a reply."""
    spaced = "<tool_call>\n" + json.dumps({"name": "weather", "arguments": {"city": "Rome"}}) + "\n</tool_call>"
    reply = decode_output(block("Paris") + "\n" + spaced, _Reply)
    assert reply.tool_calls == [FunctionCall("weather", {"city": "Paris"}), FunctionCall("weather", {"city": "Rome"})]
    assert not reply.cut_off
    assert decode_output("No function fits.", _Reply) == _Reply(content="No function fits.")
    for broken in (block("Paris") + " trailing", block("Paris") + "\n" + "Rome", ""):
        with pytest.raises(msgspec.ValidationError):
            _Reply.from_text(broken)


def test_a_reply_cut_off_inside_a_block_keeps_the_whole_blocks_before_it():
    """Run into max_tokens (a small model repeating calls): the whole calls answer, marked cut off; cut inside its
    first block, it is a violation."""
    for tail in ("\n", "\n<tool_ca", "\n<tool_call>\n{\"name\":\"wea"):
        reply = decode_output(block("Paris") + tail, _Reply)
        assert reply.tool_calls == [FunctionCall("weather", {"city": "Paris"})] and reply.cut_off
    for cut in (block("Paris")[:30], "<tool"):
        with pytest.raises(ConstraintViolated):
            decode_output(cut, _Reply)


def test_the_functions_are_shown_as_the_chat_template_shows_tools_after_the_callers_system_text():
    """The caller's system text (else the template's default) first, then each function one JSON line in <tools>."""
    messages = function_messages([Message("system", "Be brief."), Message("user", "Weather in Oslo?")], [WEATHER],
                                 required=True, parallel=False)
    system = messages[0].content
    assert system.startswith("Be brief.\n\n# Tools\n") and [m.role for m in messages] == ["system", "user"]
    line = json.dumps({"type": "function", "function": {"name": "weather", "description": WEATHER.description,
                                                        "parameters": WEATHER.parameters}})
    assert f"<tools>\n{line}\n</tools>" in system and system.endswith("</tool_call>")


def test_the_users_lists_of_numbers_are_shown_spaced():
    """"5,10 and 15" is shown "5, 10 and 15" in a user turn (unspaced, the model wrote 510); other turns as sent."""
    messages = function_messages([Message("user", "Weather on days 5,10 and 15?"), Message("assistant", "2,30")],
                                 [WEATHER], required=True, parallel=True)
    assert [m.content for m in messages[1:]] == ["Weather on days 5, 10 and 15?", "2,30"]


async def test_words_cut_off_at_max_tokens_say_so():
    """No call required and the words run into max_tokens: the answer is marked cut off (OpenAI's "length")."""
    class Cut(Sampler):
        async def generate(self, messages, **kwargs):
            completion = await super().generate(messages, **kwargs)
            return msgspec.structs.replace(completion, finish_reason="length")

    got = await answer(Cut("No function fi", None), required=False, samples=1)
    assert got.text == "No function fi" and got.cut_off and got.tool_calls == []
    whole = await answer(Sampler("No function fits.", None), required=False, samples=1)
    assert not whole.cut_off


def test_earlier_tool_traffic_reads_as_the_template_writes_it():
    """A conversation's earlier calls come back as `<tool_call>` blocks after the assistant's words, and consecutive
    results as one user turn of `<tool_response>` blocks: the model sees the one format it writes calls in."""
    from stepwise.app.openai_api import ChatMessage, ChatRequest, _messages

    request = ChatRequest(model="general", messages=[
        ChatMessage("user", "Weather in Paris and Rome?"),
        ChatMessage("assistant", None, tool_calls=[
            {"id": "call_0", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "not json"}}]),
        ChatMessage("tool", "18 C", tool_call_id="call_0"), ChatMessage("tool", "21 C", tool_call_id="call_1"),
        ChatMessage("user", "Which is warmer?")])
    shown = _messages(request)
    assert [m.role for m in shown] == ["user", "assistant", "user", "user"]
    assert shown[1].content == block("Paris") + '\n<tool_call>\n{"name":"weather","arguments":"not json"}\n</tool_call>'
    assert shown[2].content == "<tool_response>\n18 C\n</tool_response>\n<tool_response>\n21 C\n</tool_response>"


async def test_a_whole_number_where_the_schema_says_float_is_written_as_a_float():
    """OpenAPI's `format: float`/`double` on a number, alone, in a list or an object: the model's 3 comes back 3.0."""
    numbers = Function("scale", "Scales points.", {"type": "object", "properties": {
        "factor": {"type": "number", "format": "float"},
        "points": {"type": "array", "items": {"type": ["number", "null"], "format": "double"}},
        "origin": {"type": "object", "properties": {"x": {"type": "number", "format": "float"}}},
        "count": {"type": "integer"}, "plain": {"type": "number"}, "flag": {"type": "boolean"}},
        "required": ["factor", "points", "origin", "count", "plain", "flag"]})  # kept though the request states none
    written = {"factor": 3, "points": [1, 2.5], "origin": {"x": 0}, "count": 2, "plain": 4, "flag": True}
    for samples in (1, 3):  # the greedy reply alone, and the reply chosen among sampled ones
        got = await answer(Sampler(call("scale", written), [call("scale", written)] * 3), functions=(numbers,),
                           samples=samples)
        assert msgspec.json.encode(got.tool_calls[0].arguments) == (
            b'{"factor":3.0,"points":[1.0,2.5],"origin":{"x":0.0},"count":2,"plain":4,"flag":true}')


async def test_a_schema_the_walk_cannot_follow_leaves_the_call_as_written():
    """A property schema `true`, a list of item schemas, a format that is no string: the values stay as written."""
    odd = Function("f", "d", {"type": "object", "properties": {
        "any": True, "pair": {"type": "array", "items": [{"type": "number", "format": "float"}]},
        "n": {"type": "number", "format": {"float": 1}}}, "required": ["any", "pair", "n"]})
    written = {"any": 1, "pair": [1], "n": 2}
    got = await answer(Sampler(call("f", written), None), functions=(odd,), samples=1)
    assert msgspec.json.encode(got.tool_calls[0].arguments) == b'{"any":1,"pair":[1],"n":2}'


def test_the_model_is_not_shown_a_float_format_the_server_applies_itself():
    """`format: float` on a number is left out of the tools block (shown, it changed other values the model wrote);
    any other format, and a parameter named `format`, are shown as the caller wrote them."""
    function = Function("f", "d", {"type": "object", "properties": {
        "rate": {"type": "number", "format": "float"}, "when": {"type": "string", "format": "date-time"},
        "format": {"type": "string"}, "sizes": {"type": "array", "items": {"type": "number", "format": "double"}}}})
    shown = json.loads(tools_block([function]))["function"]["parameters"]["properties"]
    assert shown == {"rate": {"type": "number"}, "when": {"type": "string", "format": "date-time"},
                     "format": {"type": "string"}, "sizes": {"type": "array", "items": {"type": "number"}}}


ROUTE = Function("route", "A route between two places.", {"type": "object", "properties": {
    "to": {"type": "string", "description": "Where to."},
    "mode": {"type": "string", "description": "The mode of transportation (walk, bike, transit, drive).",
             "default": "walk"},
    "unit": {"type": "string", "description": "The unit ('km' or 'miles'). Default is 'km'."},
    "city": {"type": "string", "description": "A city on the way (e.g. Lyon, Turin)."},
}, "required": ["to"]})


def _route(**arguments: str) -> str:
    written = json.dumps({"name": "route", "arguments": arguments}, separators=(",", ":"))
    return "<tool_call>\n" + written + "\n</tool_call>"


def test_values_a_description_lists_in_parentheses_are_the_only_ones_decoded():
    """"(walk, bike, transit, drive)" and "('km' or 'miles')" are the caller's options, decoded as an enum; examples
    ("e.g. Lyon, Turin") and free text stay open; what the model is shown is the schema as sent."""
    grammar = reply_grammar([ROUTE], required=True, parallel=False)
    assert accepts(grammar, _route(to="Rome", mode="transit", unit="miles", city="Genoa"))
    assert not accepts(grammar, _route(to="Rome", mode="public transportation"))
    assert not accepts(grammar, _route(to="Rome", unit="kilometres"))
    assert "enum" not in tools_block([ROUTE])


@pytest.mark.parametrize(("description", "default", "values"), [
    ("The type of paint (Watercolor, Oil, Acrylic).", None, ["Watercolor", "Oil", "Acrylic"]),
    ("The colour (red, green, or blue)", None, ["red", "green", "blue"]),
    ("The format of the result (percentage or fraction).", "percentage", ["percentage", "fraction"]),
    ("The format (percentage or fraction).", "ratio", None),  # its default is none of them: not the whole list
    ("A city (such as Paris, Rome)", None, None),
    ("The city (New York, London)", None, None),  # names of several words are examples more often than options
    ("The unit (cm)", None, None),
])
def test_a_listed_value_set_is_read_only_where_it_is_a_whole_list_of_words(description, default, values):
    """Two or more single words in parentheses, no "e.g."/"such as", the default (if any) among them."""
    from stepwise.reasoning.functions import listed

    spec = {"type": "string", "description": description} | ({"default": default} if default else {})
    assert listed({"type": "object", "properties": {"p": spec}})["properties"]["p"].get("enum") == values
