"""One call among several functions: the function is chosen first, as the chat template starts a call
(`{"name": "…"` spaced), and the call is then decoded under that function alone; the prompt is the same for both
model calls. Words, where no call is required, answer at the choice. A turn of one function, or of several calls,
is one model call as before."""

from __future__ import annotations

import json

import msgspec

from stepwise.reasoning.functions import name_grammar
from stepwise.reasoning.types import Function
from tests.doubles import Script
from tests.unit.test_function_replies import WEATHER, accepts, call
from tests.unit.test_function_samples import answer

TIME = Function("local_time", "The local time in a city.",
                {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
HEAD = '<tool_call>\n{"name": "'


def test_the_choice_is_a_calls_start_as_the_template_spaces_it_naming_one_of_the_functions():
    """`{"name": "local_time"` spaced, up to the name's closing quote; not compact, not a name not offered."""
    grammar = name_grammar([WEATHER, TIME], required=True)
    assert accepts(grammar, HEAD + 'local_time"') and accepts(grammar, HEAD + 'weather"')
    assert not accepts(grammar, '<tool_call>\n{"name":"local_time"') and not accepts(grammar, HEAD + 'clock"')
    assert not accepts(grammar, "It is noon.")
    assert accepts(name_grammar([WEATHER, TIME], required=False), "It is noon.")


async def test_the_call_is_decoded_under_the_chosen_function_alone_after_the_same_prompt():
    """Two model calls: the choice, then the call, whose grammar refuses the function not chosen."""
    backend = Script(HEAD + 'local_time"', call("local_time", {"city": "Oslo"}).replace(" ", ""))
    got = await answer(backend, functions=(WEATHER, TIME), parallel=False, samples=1)
    assert [(c.name, c.arguments) for c in got.tool_calls] == [("local_time", {"city": "Oslo"})]
    first_prompt, second_prompt = backend.seen
    assert first_prompt == second_prompt and '"name": "weather"' in first_prompt[0].content  # all functions shown
    grammar = backend.calls[1]["constraint"].text
    assert accepts(grammar, '<tool_call>\n{"name":"local_time","arguments":{"city":"Oslo"}}\n</tool_call>')
    assert not accepts(grammar, '<tool_call>\n{"name":"weather","arguments":{"city":"Oslo"}}\n</tool_call>')


async def test_words_at_the_choice_answer_with_no_second_call():
    """No call required and the model answers in words: those words are the answer, after one model call."""
    backend = Script("No function fits.")
    got = await answer(backend, functions=(WEATHER, TIME), required=False, parallel=False, samples=1)
    assert got.text == "No function fits." and got.tool_calls == [] and len(backend.seen) == 1 and not got.cut_off


async def test_words_cut_off_at_the_choice_say_so():
    """Words that ran into max_tokens at the choice are the answer, marked cut off (OpenAI's "length")."""
    class Cut(Script):
        async def generate(self, messages, **kwargs):
            return msgspec.structs.replace(await super().generate(messages, **kwargs), finish_reason="length")

    got = await answer(Cut("No function fi"), functions=(WEATHER, TIME), required=False, parallel=False,
                       samples=1)
    assert got.text == "No function fi" and got.cut_off


async def test_a_function_chosen_where_no_call_is_required_is_called_not_answered_in_words():
    """Words had their turn at the choice: the call that follows must be a call of the chosen function."""
    backend = Script(HEAD + 'weather"', call("weather", {"city": "Oslo"}).replace(" ", ""))
    got = await answer(backend, functions=(WEATHER, TIME), required=False, parallel=False, samples=1)
    assert got.tool_calls[0].name == "weather"
    grammar = backend.calls[1]["constraint"].text
    assert not accepts(grammar, "It is sunny.")


async def test_a_name_json_escapes_is_chosen_as_the_tools_block_writes_it():
    """A name with a quote or a backslash is matched escaped, as it stands in JSON, and decoded back."""
    odd = Function('say\\"hi"', "Says hi.", {"type": "object", "properties": {}})
    head = HEAD + json.dumps(odd.name)[1:]  # escaped, up to its closing quote
    grammar = name_grammar([odd, WEATHER], required=True)
    assert accepts(grammar, head) and not accepts(grammar, HEAD + odd.name + '"')
    backend = Script(head, "<tool_call>\n" + json.dumps({"name": odd.name, "arguments": {}}, separators=(",", ":"))
                     + "\n</tool_call>")
    got = await answer(backend, functions=(odd, WEATHER), parallel=False, samples=1)
    assert got.tool_calls[0].name == odd.name


async def test_one_function_or_several_calls_take_one_model_call():
    """Nothing to choose (one function), or a turn allowing several calls: the reply is decoded at once."""
    one = Script(call("weather", {"city": "Oslo"}))
    assert (await answer(one, parallel=False, samples=1)).tool_calls[0].name == "weather" and len(one.seen) == 1
    reply = "\n".join([call("weather", {"city": "Oslo"}), call("local_time", {"city": "Oslo"})])
    several = Script(reply)
    got = await answer(several, functions=(WEATHER, TIME), samples=1)
    assert [c.name for c in got.tool_calls] == ["weather", "local_time"] and len(several.seen) == 1
