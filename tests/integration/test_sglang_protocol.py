"""The SGLang client against the test server's scripted model, over real HTTP and without a model: one streamed
/generate per call with its own rid, SGLang's error statuses (500 for an unknown sampling field: not retried),
aborts that reach the server, health as SGLang answers it, and the flags an operator is told about."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from stepwise.app.experts import expert_statuses, wait_healthy
from stepwise.reasoning.backends.sglang import SGLangBackend, SGLangOpenAIBackend
from stepwise.reasoning.backends.templates import chatml
from stepwise.reasoning.errors import BackendError, BackendTimeout
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import Expert, Message, Regex, Sampling
from tests.conftest import deadline_in
from tests.sglang_server import FAST_RETRY, SGLangTestServer, native_backend

ASK = [Message("user", "Sing.")]


@pytest.fixture(scope="module")
def scripted():
    with SGLangTestServer(None, token_s=0.01, health_delay_s=0.2) as server:
        yield server


@pytest.fixture
async def native(scripted):
    async with native_backend(scripted, "scripted") as backend:
        yield backend


async def wait_for(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


class _Extra(SGLangBackend):
    """Adds fields to every /generate body: a client SGLang does not know."""

    def __init__(self, *args, top: dict | None = None, sampling: dict | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.top, self.sampling = top or {}, sampling or {}

    def request_body(self, prompt, params, rid):
        body = super().request_body(prompt, params, rid)
        return {**body, **self.top, "sampling_params": {**body["sampling_params"], **self.sampling}}


async def test_a_call_is_one_streamed_generate_with_its_own_rid(native, scripted):
    """The body is exactly {text (one string), sampling_params, rid, stream: true}; the streamed text arrives as new
    pieces that add up to the completion, with usage and the time to the first token."""
    pieces: list[str] = []
    result = await native.generate(ASK, constraint=Regex("(la )+"), sampling=Sampling(max_tokens=5),
                                   deadline=deadline_in(10), on_text=pieces.append)
    (route, body), = scripted.requests
    assert route == "/generate" and re.fullmatch("[0-9a-f]{32}", body["rid"])
    assert body == {"text": chatml(ASK), "sampling_params": {"max_new_tokens": 5, "temperature": 0.0,
                                                             "regex": "(la )+"},
                    "rid": body["rid"], "stream": True}
    assert pieces == ["la "] * 5 and result.text == "la " * 5
    assert result.finish_reason == "length" and result.usage.output_tokens == 5 and result.usage.input_tokens > 0
    assert result.ttft_ms is not None and result.ttft_ms <= result.latency_ms


async def test_calls_made_together_go_as_separate_requests(native, scripted):
    """Three calls started in the same tick are three /generate requests, each with its own rid and answer."""
    results = await asyncio.gather(*(native.generate([Message("user", w)], sampling=Sampling(max_tokens=n),
                                                     deadline=deadline_in(10))
                                     for w, n in (("a", 1), ("b", 2), ("c", 3))))
    assert [r.text for r in results] == ["la ", "la la ", "la la la "]
    bodies = [body for _, body in scripted.requests]
    # In any order: three concurrent connections reach the server as the scheduler lets them.
    assert sorted(b["text"] for b in bodies) == [chatml([Message("user", w)])
                                                 for w in "abc"] and len({b["rid"] for b in bodies}) == 3


async def test_an_unknown_sampling_field_is_a_500_and_not_retried(scripted):
    """SGLang raises TypeError on a sampling field it does not know, and answers 500: one request, a clear error."""
    scripted.requests.clear()
    backend = _Extra(scripted.url, "scripted", policy=FAST_RETRY, sampling={"made_up": 1})
    with pytest.raises(BackendError, match="answered 500") as caught:
        await backend.generate(ASK, sampling=Sampling(max_tokens=2), deadline=deadline_in(10))
    await backend.aclose()
    assert caught.value.status == 500 and len(scripted.requests) == 1


async def test_an_unknown_top_level_field_is_ignored(scripted):
    """A field GenerateReqInput does not have is dropped, as FastAPI drops it: the call succeeds."""
    backend = _Extra(scripted.url, "scripted", policy=FAST_RETRY, top={"made_up": 1})
    result = await backend.generate(ASK, sampling=Sampling(max_tokens=2), deadline=deadline_in(10))
    await backend.aclose()
    assert result.text == "la la "


async def test_a_bad_value_is_sglangs_400_with_its_message(scripted):
    """SamplingParams.verify's ValueError is a 400 with SGLang's message, not retried."""
    scripted.requests.clear()
    backend = _Extra(scripted.url, "scripted", policy=FAST_RETRY, sampling={"top_p": 0})
    with pytest.raises(BackendError, match=re.escape("top_p must be in (0, 1], got 0.")) as caught:
        await backend.generate(ASK, sampling=Sampling(max_tokens=2), deadline=deadline_in(10))
    await backend.aclose()
    assert caught.value.status == 400 and len(scripted.requests) == 1


async def test_503s_are_retried_then_succeed(native, scripted):
    """Two 503s (SGLang starting, a router without a worker), then an answer: three requests, one completion."""
    scripted.inject(status=503, times=2)
    result = await native.generate(ASK, sampling=Sampling(max_tokens=1), deadline=deadline_in(10))
    assert result.text == "la " and len(scripted.requests) == 3


async def test_a_cancelled_call_is_aborted_on_the_server(native, scripted):
    """Cancelling a long call closes its stream and posts /abort_request with its rid; the server stops generating."""
    first = asyncio.Event()
    call = asyncio.create_task(native.generate(ASK, sampling=Sampling(max_tokens=5000), deadline=deadline_in(60),
                                               on_text=lambda _: first.set()))
    await asyncio.wait_for(first.wait(), 5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    rid = scripted.requests[0][1]["rid"]
    await wait_for(lambda: ("/abort_request", {"rid": rid}) in scripted.requests and native.aborts == 1)
    stopped_at = scripted.tokens[rid]
    await asyncio.sleep(0.2)
    assert rid in scripted.aborted and scripted.tokens[rid] == stopped_at < 500


async def test_a_call_past_its_deadline_times_out_there_and_is_aborted(native, scripted):
    """A call still streaming at its deadline raises BackendTimeout then, and the server is told to stop."""
    started = time.monotonic()
    with pytest.raises(BackendTimeout):
        await native.generate(ASK, sampling=Sampling(max_tokens=5000), deadline=deadline_in(0.5))
    assert time.monotonic() - started < 1.0
    rid = scripted.requests[0][1]["rid"]
    await wait_for(lambda: ("/abort_request", {"rid": rid}) in scripted.requests)
    assert rid in scripted.aborted


async def test_a_request_the_server_aborts_is_an_error(native, scripted):
    """A stream that ends with finish_reason abort (someone aborted the rid) is a BackendError, not an answer."""
    call = asyncio.create_task(native.generate(ASK, sampling=Sampling(max_tokens=5000), deadline=deadline_in(30)))
    await wait_for(lambda: scripted.requests)
    rid = scripted.requests[0][1]["rid"]
    await wait_for(lambda: scripted.tokens.get(rid, 0) > 0)
    async with httpx.AsyncClient() as client:
        assert (await client.post(f"{scripted.url}/abort_request", json={"rid": rid})).status_code == 200
    with pytest.raises(BackendError, match="aborted the request"):
        await call


def test_health_is_503_while_loading_then_slow_but_200():
    """Like SGLang, /health answers 503 while the server starts, then 200 after its one-token check (here 0.3 s);
    the launcher's wait takes both in its stride."""
    with SGLangTestServer(None, loading_s=1.0, health_delay_s=0.3) as server:
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 503
        started = time.monotonic()
        wait_healthy(f"{server.url}/health", timeout_s=10, poll_s=0.05)
        assert time.monotonic() - started >= 0.5
        started = time.monotonic()
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200 and time.monotonic() - started >= 0.3


async def test_an_expert_whose_v1_server_reports_no_cached_tokens_says_so():
    """Without --enable-cache-report SGLang's /v1 usage has no cached tokens: the expert's status says so (instead of
    a silent 0%); with the flag it says nothing."""
    with SGLangTestServer(None, health_delay_s=0) as plain, SGLangTestServer(None, health_delay_s=0,
                                                                             enable_cache_report=True) as reporting:
        experts = {name: Expert(name=name, backend=SGLangOpenAIBackend(server.url, "scripted"), kind="sglang-openai")
                   for name, server in (("plain", plain), ("reporting", reporting))}
        statuses = {s.name: s for s in await expert_statuses(Router(experts, "plain"))}
        for expert in experts.values():
            await expert.backend.aclose()
    assert statuses["plain"].notes == ["reports no cached tokens on /v1 (start SGLang with --enable-cache-report)"]
    assert statuses["reporting"].notes == [] and statuses["plain"].healthy and statuses["reporting"].healthy
