"""The generic OpenAI-compatible backend against llama.cpp's own OpenAI-compatible server (real SmolLM2)."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from stepwise.reasoning.backends.openai_compat import OpenAICompatBackend
from stepwise.reasoning.errors import BackendError
from stepwise.reasoning.types import JsonSchema, Message, Regex, Sampling

pytestmark = pytest.mark.model


class Pet(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    legs: int


PET = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                        "legs": {"type": "integer", "minimum": 0, "maximum": 8}},
       "required": ["name", "legs"], "additionalProperties": False}


async def test_json_schema_output_streamed_with_usage_and_time_to_first_token(smollm2_llama):
    """response_format json_schema is honoured; usage (cached tokens included) and TTFT come back from the stream."""
    backend = OpenAICompatBackend(smollm2_llama.base_url, "smollm2")
    prompt = [Message("system", "You describe pets. " * 10), Message("user", "Describe a pet.")]
    deadline = asyncio.get_running_loop().time() + 60
    first = await backend.generate(prompt, constraint=JsonSchema("pet", PET), sampling=Sampling(max_tokens=60),
                                   deadline=deadline)
    second = await backend.generate(prompt, constraint=JsonSchema("pet", PET), sampling=Sampling(max_tokens=60),
                                    deadline=deadline)
    assert 0 <= msgspec.json.decode(first.text, type=Pet).legs <= 8
    assert first.usage.input_tokens > 30 and first.usage.output_tokens > 0 and first.finish_reason == "stop"
    assert second.usage.cached_tokens > 30
    assert 0 < first.ttft_ms <= first.latency_ms
    assert await backend.health()
    await backend.aclose()


async def test_several_completions_of_one_request_count_every_completions_tokens(smollm2_llama):
    """Three completions of one request (llama.cpp's n_cmpl, as the program planner samples): the output tokens are
    all three's, the prompt's counted once. Each is held by a regex longer than max_tokens, so each is 5 tokens."""
    backend = smollm2_llama.new_backend()
    deadline = asyncio.get_running_loop().time() + 60
    one = await backend.generate([Message("user", "Write letters.")], constraint=Regex("[a-z]{60}"),
                                 sampling=Sampling(max_tokens=5, temperature=0.7), deadline=deadline)
    three = await backend.generate([Message("user", "Write letters.")], constraint=Regex("[a-z]{60}"),
                                   sampling=Sampling(max_tokens=5, temperature=0.7, n=3), deadline=deadline)
    assert len(three.alternatives) == 2 and three.finish_reason == "length"
    assert one.usage.output_tokens == 5 and three.usage.output_tokens == 15
    assert three.usage.input_tokens == one.usage.input_tokens > 0
    await backend.aclose()


async def test_a_rejected_request_is_a_backend_error_with_its_status(smollm2_llama):
    """llama.cpp's 4xx (here: an invalid grammar) surfaces as a BackendError carrying the status, not retried."""
    backend = OpenAICompatBackend(smollm2_llama.base_url, "smollm2")
    body_with_bad_grammar = {"grammar": "root ::= ("}
    backend.constraint_fields = lambda constraint: body_with_bad_grammar
    with pytest.raises(BackendError) as caught:
        await backend.generate([Message("user", "hi")], constraint=JsonSchema("x", {}),
                               deadline=asyncio.get_running_loop().time() + 30)
    assert caught.value.status == 400 and not caught.value.retryable_elsewhere
    await backend.aclose()
