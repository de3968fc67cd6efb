"""The SGLang backends over real HTTP against a protocol-faithful test server that generates with the real SmolLM2:
request bodies pinned field for field, constraints honoured, cached tokens reported (on /v1 only when the server
reports them), concurrent calls sent as separate requests, tool calls read with or without a tool-call parser, and
faults (503s, slow replies, refused connections) retried, then failed clearly, never past the deadline."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time

import msgspec
import pytest

from stepwise.reasoning.backends.sglang import SGLangBackend, SGLangOpenAIBackend
from stepwise.reasoning.backends.templates import ADDED_BY_TOKENIZER, chatml
from stepwise.reasoning.backends.transport import post_json
from stepwise.reasoning.errors import BackendError, BackendTimeout, BackendUnavailable
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.types import Grammar, JsonSchema, Message, Regex, Sampling
from tests.conftest import deadline_in
from tests.sglang_server import FAST_RETRY, SGLangTestServer, native_backend

pytestmark = pytest.mark.model


class Color(msgspec.Struct, forbid_unknown_fields=True):
    color: str
    count: int


COLOR_SCHEMA = {"type": "object", "properties": {"color": {"enum": ["red", "green"]},
                                                 "count": {"type": "integer", "minimum": 0, "maximum": 9}},
                "required": ["color", "count"], "additionalProperties": False}
ASK = [Message("user", "Name a color and a small number.")]


@pytest.fixture(scope="module")
def reporting_server(smollm2_llama):
    """Started as `stepwise experts launch` starts SGLang: --enable-cache-report and a --tool-call-parser."""
    with SGLangTestServer(smollm2_llama.base_url, enable_cache_report=True, tool_call_parser="qwen25") as server:
        yield server


@pytest.fixture
async def native(sglang_server):
    async with native_backend(sglang_server, "smollm2") as backend:
        yield backend


async def test_the_native_request_body_is_sglangs_generate_req_input(native, sglang_server):
    """A JSON-schema call sends exactly {text, sampling_params{max_new_tokens, temperature, json_schema (a string)},
    rid, stream: true}, and the streamed pieces add up to the answer."""
    pieces: list[str] = []
    result = await native.generate(ASK, constraint=JsonSchema("color", COLOR_SCHEMA), sampling=Sampling(max_tokens=40),
                                   deadline=deadline_in(60), on_text=pieces.append)
    (route, body), = sglang_server.requests
    assert route == "/generate"
    assert body == {
        "text": chatml(ASK),
        "sampling_params": {"max_new_tokens": 40, "temperature": 0.0,
                            "json_schema": json.dumps(COLOR_SCHEMA, separators=(",", ":"))},
        "rid": body["rid"],
        "stream": True,
    }
    assert re.fullmatch("[0-9a-f]{32}", body["rid"]) and "".join(pieces) == result.text and result.ttft_ms is not None


async def test_each_constraint_kind_is_honoured(native):
    """JSON schema, regex and EBNF constraints each shape the real model's output."""
    as_json = await native.generate(ASK, constraint=JsonSchema("color", COLOR_SCHEMA), sampling=Sampling(max_tokens=40),
                                    deadline=deadline_in(60))
    decoded = msgspec.json.decode(as_json.text, type=Color)
    assert decoded.color in ("red", "green") and 0 <= decoded.count <= 9
    as_regex = await native.generate(ASK, constraint=Regex("[0-9]{3}-[a-z]{2}"), sampling=Sampling(max_tokens=20),
                                     deadline=deadline_in(60))
    assert re.fullmatch("[0-9]{3}-[a-z]{2}", as_regex.text)
    as_ebnf = await native.generate(ASK, constraint=Grammar('root ::= "yes" | "no"'), sampling=Sampling(max_tokens=5),
                                    deadline=deadline_in(60))
    assert as_ebnf.text in ("yes", "no")


async def test_cached_tokens_are_reported_on_a_repeated_prefix(native):
    """The second call with the same prompt reports the prefix cache's hit in meta_info.cached_tokens."""
    prompt = [Message("system", "You are terse. " * 20), Message("user", "Say one word.")]
    first = await native.generate(prompt, sampling=Sampling(max_tokens=3), deadline=deadline_in(60))
    second = await native.generate(prompt, sampling=Sampling(max_tokens=3), deadline=deadline_in(60))
    assert first.usage.input_tokens > 40
    assert second.usage.cached_tokens >= 40 and second.usage.input_tokens == first.usage.input_tokens


async def test_calls_in_one_tick_go_as_separate_requests_each_answered(native, sglang_server):
    """Three calls started together are three /generate requests (one prompt each); each gets its own answer."""
    words = ["alpha", "bravo", "charlie"]
    calls = [native.generate([Message("user", f"Say {w}")], constraint=Regex(w), sampling=Sampling(max_tokens=8),
                             deadline=deadline_in(60)) for w in words]
    results = await asyncio.gather(*calls)
    assert [r.text for r in results] == words
    bodies = [body for route, body in sglang_server.requests if route == "/generate"]
    assert sorted(b["sampling_params"]["regex"] for b in bodies) == words
    assert all(isinstance(b["text"], str) for b in bodies)


async def test_503s_are_retried_then_succeed(native, sglang_server):
    """Two 503s, then an answer: three requests, one completion."""
    sglang_server.inject(status=503, times=2)
    result = await native.generate(ASK, constraint=Regex("ok"), sampling=Sampling(max_tokens=4),
                                   deadline=deadline_in(60))
    assert result.text == "ok" and len(sglang_server.requests) == 3


async def test_persistent_503s_fail_clearly_after_three_tries(native, sglang_server):
    """Three 503s in a row: a BackendError with the status, saying it was the third try."""
    sglang_server.inject(status=503, times=3)
    with pytest.raises(BackendError, match="503.*try 3 of 3") as caught:
        await native.generate(ASK, sampling=Sampling(max_tokens=4), deadline=deadline_in(60))
    assert caught.value.status == 503 and len(sglang_server.requests) == 3


async def test_a_request_error_is_not_retried(native, sglang_server):
    """SGLang's 400 (two constraints at once, its own message) fails at once: retrying cannot help."""
    with pytest.raises(BackendError, match="Only one of regex, json_schema, or ebnf can be set") as caught:
        await post_json(native._client, f"{sglang_server.url}/generate",
                        {"text": "x", "sampling_params": {"regex": "a", "ebnf": 'root ::= "a"'}},
                        deadline=deadline_in(10), policy=native.policy)
    assert caught.value.status == 400 and len(sglang_server.requests) == 1


async def test_a_slow_reply_never_holds_the_caller_past_its_deadline(native, sglang_server):
    """A reply that would come after the deadline becomes a BackendTimeout at the deadline."""
    sglang_server.inject(delay_s=5)
    started = time.monotonic()
    with pytest.raises(BackendTimeout):
        await native.generate(ASK, sampling=Sampling(max_tokens=4), deadline=deadline_in(0.5))
    assert time.monotonic() - started < 1.5


async def test_a_refused_connection_is_retried_then_unavailable():
    """Nothing listening: three tries, then BackendUnavailable naming the server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    backend = SGLangBackend(url, "m", policy=FAST_RETRY)
    with pytest.raises(BackendUnavailable, match="try 3 of 3"):
        await backend.generate(ASK, deadline=deadline_in(10))
    await backend.aclose()


async def test_health_and_model_info(native):
    """/health answers 200; /model_info gives SGLang's keys."""
    assert await native.health()
    info = await native.model_info()
    assert {"model_path", "tokenizer_path", "is_generation"} <= set(info)


async def test_the_openai_route_body_and_usage(reporting_server):
    """The /v1 backend sends response_format json_schema {name, schema, strict} and streams; usage reports cached
    tokens."""
    sglang_server = reporting_server
    sglang_server.requests.clear()
    backend = SGLangOpenAIBackend(sglang_server.url, "smollm2", policy=FAST_RETRY)
    prompt = [Message("system", "You are terse. " * 20), *ASK]
    first = await backend.generate(prompt, constraint=JsonSchema("color", COLOR_SCHEMA),
                                   sampling=Sampling(max_tokens=40), deadline=deadline_in(60))
    second = await backend.generate(prompt, constraint=Regex("(red|green)"), sampling=Sampling(max_tokens=5),
                                    deadline=deadline_in(60))
    await backend.aclose()
    assert msgspec.json.decode(first.text, type=Color).color in ("red", "green")
    assert second.text in ("red", "green") and second.usage.cached_tokens > 0 and second.ttft_ms is not None
    (_, body1), (_, body2) = sglang_server.requests
    assert body1["response_format"] == {"type": "json_schema",
                                        "json_schema": {"name": "color", "schema": COLOR_SCHEMA, "strict": True}}
    assert body1["stream"] is True and body1["stream_options"] == {"include_usage": True}
    assert body2["regex"] == "(red|green)" and "response_format" not in body2


async def test_without_cache_report_the_v1_route_reports_no_cached_tokens_and_says_so(sglang_server):
    """A server without --enable-cache-report: the repeated prefix shows 0 cached tokens on /v1, and the backend's
    notes name the flag (the native route reports them either way)."""
    backend = SGLangOpenAIBackend(sglang_server.url, "smollm2", policy=FAST_RETRY)
    prompt = [Message("system", "You are terse. " * 20), *ASK]
    await backend.generate(prompt, sampling=Sampling(max_tokens=3), deadline=deadline_in(60))
    second = await backend.generate(prompt, sampling=Sampling(max_tokens=3), deadline=deadline_in(60))
    notes = await backend.notes()
    await backend.aclose()
    assert second.usage.cached_tokens == 0 and second.usage.input_tokens > 40
    assert notes == ["reports no cached tokens on /v1 (start SGLang with --enable-cache-report)"]


async def test_a_schema_sent_as_a_regex_is_honoured(sglang_server):
    """With constraint_mode regex, a JSON schema goes out as outlines' regex for it and the output decodes."""
    from stepwise.reasoning.constraints import as_regex

    sglang_server.requests.clear()
    backend = SGLangBackend(sglang_server.url, "smollm2", policy=FAST_RETRY, regex_of=as_regex)
    result = await backend.generate(ASK, constraint=JsonSchema("color", COLOR_SCHEMA), sampling=Sampling(max_tokens=40),
                                    deadline=deadline_in(60))
    await backend.aclose()
    assert msgspec.json.decode(result.text, type=Color).color in ("red", "green")
    (_, body), = sglang_server.requests
    assert "json_schema" not in body["sampling_params"] and body["sampling_params"]["regex"].startswith('\\{"color":')


def test_launch_waits_for_health_and_notices_a_dead_process(sglang_server):
    """The launcher's health wait returns once /health answers 200, and fails fast if the process has died."""
    import subprocess
    import sys

    from stepwise.app.experts import wait_healthy

    wait_healthy(f"{sglang_server.url}/health", timeout_s=5)
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    dead.wait()
    with pytest.raises(RuntimeError, match="exited with 3"):
        wait_healthy("http://127.0.0.1:9/health", timeout_s=30, process=dead, poll_s=0.05)


async def test_ready_expert_steps_for_one_sglang_expert_go_as_separate_requests(sglang_server):
    """Two independent expert steps targeting the same SGLang expert reach it as two /generate requests of one prompt
    each (sglang-router refuses a batch; SGLang batches concurrent requests itself), then the composer's call."""
    from stepwise.reasoning.engine import Engine
    from stepwise.reasoning.events import Recorder
    from stepwise.reasoning.report import fold
    from stepwise.reasoning.router import Router
    from stepwise.reasoning.types import Expert, ExpertStep, Plan
    from stepwise.tools import default_tools
    from stepwise.verifiers import default_verifiers
    from stepwise.verifiers.policy import VerdictPolicy

    sglang_server.requests.clear()
    backend = SGLangBackend(sglang_server.url, "smollm2", policy=FAST_RETRY)
    router = Router({"remote": Expert(name="remote", backend=backend, kind="sglang", skills=["facts"])}, "remote")
    tools = default_tools()
    engine = Engine(router, tools, default_verifiers(tools), policy=VerdictPolicy())
    plan = Plan([ExpertStep(1, "remote", "Name a fruit."), ExpertStep(2, "remote", "Name a colour.")])
    recorder = Recorder()
    await engine.run("A fruit and a colour?", RunOptions(deadline_s=60, plan=plan), sink=recorder)
    await backend.aclose()
    report = fold(recorder.events)
    assert [s.status for s in report.steps] == ["finished", "finished"]
    generate_bodies = [body for route, body in sglang_server.requests if route == "/generate"]
    assert all(isinstance(b["text"], str) for b in generate_bodies)
    steps = [b for b in generate_bodies if "Results:" not in b["text"]]  # the composer's request quotes both steps
    assert [sum(step in b["text"] for b in steps) for step in ("Name a fruit.", "Name a colour.")] == [1, 1]


WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "the weather in a city",
                                            "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"],
    "additionalProperties": False}}}
TIME = {"type": "function", "function": {"name": "get_time", "description": "the time in a timezone", "parameters": {
    "type": "object", "properties": {"tz": {"enum": ["UTC", "CET"]}}, "required": ["tz"],
    "additionalProperties": False}}}


async def test_tools_go_out_as_openai_defines_them_and_a_parser_returns_tool_calls(reporting_server):
    """tools, tool_choice and parallel_tool_calls are sent as OpenAI defines them; a server with --tool-call-parser
    streams tool_calls, which are assembled."""
    reporting_server.requests.clear()
    backend = SGLangOpenAIBackend(reporting_server.url, "smollm2", policy=FAST_RETRY)
    result = await backend.generate(
        [Message("user", "What is the weather in Paris, and the time in UTC?")], sampling=Sampling(max_tokens=80),
        deadline=deadline_in(60), tools=[WEATHER, TIME], tool_choice="required", parallel_tool_calls=True,
    )
    await backend.aclose()
    (_, body), = reporting_server.requests
    assert body["tools"] == [WEATHER,
                             TIME] and body["tool_choice"] == "required" and body["parallel_tool_calls"] is True
    assert result.finish_reason == "tool_calls" and result.tool_calls
    for call in result.tool_calls:
        assert call.name in ("get_weather", "get_time") and isinstance(json.loads(call.arguments), dict)


async def test_forced_tool_calls_are_read_without_a_tool_call_parser(sglang_server):
    """A server without --tool-call-parser answers a forced tool choice with the call array as content; the backend
    still returns them as tool_calls, a named choice as exactly that function."""
    backend = SGLangOpenAIBackend(sglang_server.url, "smollm2", policy=FAST_RETRY)
    several = await backend.generate(
        [Message("user", "What is the weather in Paris, and the time in UTC?")], sampling=Sampling(max_tokens=80),
        deadline=deadline_in(60), tools=[WEATHER, TIME], tool_choice="required", parallel_tool_calls=True,
    )
    named = await backend.generate(
        [Message("user", "Weather in Rome?")], sampling=Sampling(max_tokens=40), deadline=deadline_in(60),
        tools=[WEATHER, TIME], tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
    )
    await backend.aclose()
    assert several.finish_reason == "tool_calls" and several.tool_calls and several.text == ""
    for call in several.tool_calls:
        assert call.name in ("get_weather", "get_time") and isinstance(json.loads(call.arguments), dict)
    (only,) = named.tool_calls
    assert only.name == "get_weather" and set(json.loads(only.arguments)) == {"city"}


async def test_the_chatml_template_matches_smollm2s_tokenizer(smollm2_llama):
    """Tokenized with special tokens on (as SGLang tokenizes /generate's text), the chatml prompt gets nothing put in
    front of its first <|im_start|>: ADDED_BY_TOKENIZER's None for chatml is true of SmolLM2."""
    import httpx

    prompt = chatml(ASK)
    async with httpx.AsyncClient() as client:
        reply = await client.post(f"{smollm2_llama.base_url}/tokenize",
                                  json={"content": prompt, "add_special": True, "with_pieces": True})
    pieces = [t["piece"] for t in reply.json()["tokens"]]
    assert ADDED_BY_TOKENIZER["chatml"] is None and pieces[0] == "<|im_start|>"
    assert pieces.count("<|im_start|>") == prompt.count("<|im_start|>")  # no BOS of the same spelling added either
