"""Where several function calls may answer a turn, replies sampled beside the greedy one can add the calls it left
out: the reply with the most distinct calls answers, the greedy one on a tie; one call allowed, or a reply in words,
and the greedy reply stands."""

from __future__ import annotations

import json
import time
import uuid

from stepwise.reasoning.context import RunContext
from stepwise.reasoning.errors import BackendError
from stepwise.reasoning.events import Recorder
from stepwise.reasoning.functions import MAX_PARALLEL_CALLS, call_functions
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import Completion, Expert, Function, FunctionCall, Message, Usage

WEATHER = Function(name="weather", description="The weather in a city.",
                   parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def reply(*cities: str) -> str:
    """A reply as the model writes it: one <tool_call> block a call."""
    return "\n".join("<tool_call>\n" + json.dumps({"name": "weather", "arguments": {"city": c}}) + "\n</tool_call>"
                     for c in cities)


class Sampler:
    """A backend answering the greedy call with `greedy` and a sampled call with `samples` (first, alternatives)."""

    provider, model = "test", "test"

    def __init__(self, greedy: str, samples: list[str] | None) -> None:
        self.greedy, self.samples = greedy, samples
        self.calls: list = []

    async def generate(self, messages, *, constraint=None, sampling=None, deadline=None, on_text=None) -> Completion:
        self.calls.append(sampling)
        if sampling is None or sampling.n == 1:
            return Completion(self.greedy, Usage(10, 5, 0), 1.0, "test")
        if self.samples is None:
            raise BackendError("the sampled call failed")
        return Completion(self.samples[0], Usage(10, 5, 0), 1.0, "test", alternatives=self.samples[1:])


async def answer(backend: Sampler, *, parallel: bool = True, required: bool = True, samples: int = 5,
                 functions: tuple[Function, ...] = (WEATHER,), messages: list[Message] | None = None,
                 recheck: int = 1):
    router = Router({"general": Expert(name="general", backend=backend)}, "general")
    ctx = RunContext(uuid.uuid4(), Recorder(), time.monotonic() + 1e6)
    messages = messages or [Message("user", "Weather in Paris and Rome?")]
    return await call_functions(router, "general", messages, list(functions),
                                ctx, required=required, parallel=parallel, max_tokens=64, samples=samples,
                                recheck=recheck)


def cities(calls: list[FunctionCall]) -> list[str]:
    return [c.arguments["city"] for c in calls]


async def test_a_sample_with_more_calls_answers_where_the_greedy_reply_made_too_few():
    """The greedy reply asks for Paris only; a sample asks for both: the sample's calls answer."""
    backend = Sampler(reply("Paris"), [reply("Paris"), reply("Paris", "Rome"), reply("Rome")])
    got = await answer(backend)
    assert cities(got.tool_calls) == ["Paris", "Rome"]
    assert [s.n for s in backend.calls] == [1, 5]


async def test_on_a_tie_the_greedy_reply_stands():
    """As many calls in a sample as in the greedy reply: the greedy reply's calls answer."""
    backend = Sampler(reply("Paris", "Rome"), [reply("Paris", "Oslo"), reply("Rome")])
    assert cities((await answer(backend)).tool_calls) == ["Paris", "Rome"]


async def test_repeated_calls_count_once():
    """A sample repeating one call is one call, not two."""
    backend = Sampler(reply("Paris"), [reply("Paris", "Paris")])
    assert cities((await answer(backend)).tool_calls) == ["Paris"]


async def test_a_sample_cut_off_mid_reply_is_ignored():
    """A sampled text that is not a whole reply (cut at max_tokens) takes no part."""
    backend = Sampler(reply("Paris"), [reply("Paris", "Rome")[:30]])
    assert cities((await answer(backend)).tool_calls) == ["Paris"]


async def test_with_one_call_allowed_or_one_sample_nothing_is_sampled():
    """Without parallel calls, or with samples set to 1, the greedy reply is the only call made."""
    for options in ({"parallel": False}, {"samples": 1}):
        backend = Sampler(reply("Paris"), [reply("Paris", "Rome")])
        assert cities((await answer(backend, **options)).tool_calls) == ["Paris"]
        assert len(backend.calls) == 1


async def test_a_greedy_reply_in_words_is_not_overruled_by_a_sample_with_calls():
    """No call required and the greedy reply answers in words: it stands, whatever a sample called."""
    backend = Sampler("No function fits.", [reply("Paris")])
    got = await answer(backend, required=False)
    assert got.text == "No function fits." and got.tool_calls == []


async def test_a_greedy_reply_cut_off_mid_number_is_replaced_by_a_whole_sample():
    """The greedy reply runs into max_tokens (a number repeating its digits): the sample with the most calls answers
    instead of the turn failing."""
    backend = Sampler(reply("Paris", "Rome")[:60], [reply("Paris", "Rome")])
    assert cities((await answer(backend)).tool_calls) == ["Paris", "Rome"]


async def test_a_failed_sampled_call_leaves_the_greedy_reply():
    """The sampled call failing, or none of its texts a whole reply, changes nothing: the greedy reply answers."""
    for samples in (None, ["<tool_call>\n{", reply("Paris", "Rome")[:-3]]):
        backend = Sampler(reply("Paris"), samples)
        assert cities((await answer(backend)).tool_calls) == ["Paris"]


async def test_a_greedy_reply_carrying_a_guess_is_rechecked_and_a_sample_with_more_calls_answers():
    """The greedy reply's one call names a city the question does not state: replies are sampled after it, and one
    that asks for each city the question names answers."""
    backend = Sampler(reply("Madrid"), [reply("Madrid"), reply("Paris", "Rome")])
    got = await answer(backend, samples=1, recheck=4)
    assert cities(got.tool_calls) == ["Paris", "Rome"]
    assert [s.n for s in backend.calls] == [1, 4]


async def test_a_greedy_reply_of_stated_values_is_not_rechecked():
    """Every value stated: the greedy reply answers alone, one model call."""
    backend = Sampler(reply("Paris"), [reply("Paris", "Rome")])
    got = await answer(backend, samples=1, recheck=4)
    assert cities(got.tool_calls) == ["Paris"] and [s.n for s in backend.calls] == [1]


async def test_a_failed_recheck_leaves_the_greedy_reply_and_one_call_allowed_is_never_rechecked():
    """The samples' call fails: the greedy reply answers; where one call is allowed there is no recheck at all."""
    failed = Sampler(reply("Madrid"), None)
    assert cities((await answer(failed, samples=1, recheck=4)).tool_calls) == ["Madrid"]
    assert [s.n for s in failed.calls] == [1, 4]
    single = Sampler(reply("Madrid"), [reply("Paris")])
    assert cities((await answer(single, parallel=False, samples=1, recheck=4)).tool_calls) == ["Madrid"]
    assert [s.n for s in single.calls] == [1]


async def test_calls_free_of_guesses_count_before_calls():
    """A sample with more calls, each of a city the question does not name, leaves a greedy reply of a named one."""
    backend = Sampler(reply("Paris"), [reply("Madrid", "Lisbon", "Oslo")])
    assert cities((await answer(backend)).tool_calls) == ["Paris"]


async def test_a_reply_that_ran_to_the_bound_of_calls_is_a_loop():
    """A sample of MAX_PARALLEL_CALLS distinct calls takes no part; a greedy one is rechecked and a whole sample
    answers; the same calls repeated to the bound are the calls once, not a loop."""
    loop = reply(*(["Paris", "Rome"] + [f"Paris {i}" for i in range(MAX_PARALLEL_CALLS - 2)]))
    ignored = Sampler(reply("Paris"), [loop])
    assert cities((await answer(ignored)).tool_calls) == ["Paris"]
    rechecked = Sampler(loop, [loop, reply("Paris", "Rome")])
    assert cities((await answer(rechecked, samples=1, recheck=3)).tool_calls) == ["Paris", "Rome"]
    assert [s.n for s in rechecked.calls] == [1, 3]
    repeated = Sampler(reply(*["Paris", "Rome"] * (MAX_PARALLEL_CALLS // 2)), [reply("Paris", "Rome", "Oslo")])
    assert cities((await answer(repeated, samples=1, recheck=3)).tool_calls) == ["Paris", "Rome"]
    assert [s.n for s in repeated.calls] == [1]
