"""SGLang, through its two HTTP APIs (field names from SGLang's own source: srt/managers/io_struct.py
GenerateReqInput, srt/sampling/sampling_params.py SamplingParams, srt/entrypoints/openai/protocol.py).

- `SGLangBackend`: native `POST /generate`, one request per call, streamed, with its own `rid`. Never a batch (`text`
  as a list): sglang-router reads `text` as one string and answers a list with 422 (its protocols/generate.rs), and
  SGLang batches concurrent requests on the GPU by itself, so a client-side batch only makes every caller wait for
  the slowest item, fail with any bad one and time out at the earliest deadline.
  A call that is cancelled or passes its deadline closes its stream (SGLang aborts a streamed request whose client
  went away: the StreamingResponse's abort task in http_server.generate_request) and posts `/abort_request {rid}`
  (a non-streamed request would only be noticed on tokenizer_manager's 4 s disconnect poll).
- `SGLangOpenAIBackend`: its OpenAI-compatible `/v1/chat/completions` (response_format json_schema; `regex` and
  `ebnf` as extra body fields). Forced tool calls are read whether or not the server has a `--tool-call-parser`.

Behind sglang-router both work the same; the router has no /abort_request (404), so there closing the stream is what
reaches the worker."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import structlog

from stepwise.reasoning.backends.base import HttpBackend
from stepwise.reasoning.backends.openai_compat import OpenAICompatBackend
from stepwise.reasoning.backends.templates import TEMPLATES
from stepwise.reasoning.backends.transport import RetryPolicy, post_json, stream_chunks
from stepwise.reasoning.errors import BackendError, BackendTimeout, BackendUnavailable, OutputInvalid
from stepwise.reasoning.types import (
    Completion,
    Constraint,
    Grammar,
    JsonSchema,
    Message,
    Regex,
    Sampling,
    ToolCall,
    Usage,
)

log = structlog.get_logger(__name__)

# SGLang's /health runs a one-token generation and polls for it once a second, answering 503 only after
# SGLANG_HEALTH_CHECK_TIMEOUT (20 s) without progress (http_server.health_generate): give it that long to decide.
HEALTH_TIMEOUT_S = 21.0
ABORT_TIMEOUT_S = 2.0


class SGLangRetryPolicy(RetryPolicy, frozen=True):
    """A 500 from SGLang is a request it cannot read (an unknown sampling field is a TypeError in
    SamplingParams(**...), which http_server's `except ValueError` lets through), never load: another try repeats
    the mistake. sglang-router's 500 with code `call_upstream_request_error` is different — it could not reach the
    worker it chose (killed, say) — and is retried: the router's circuit breaker takes that worker out after a few
    failures (10 by default, six per request with its own retries), so the next try reaches a live one."""

    def retried(self, response: httpx.Response) -> bool:
        if response.status_code == 500:
            return b"call_upstream_request_error" in response.content
        return response.status_code in self.statuses


def sglang_policy(policy: RetryPolicy) -> SGLangRetryPolicy:
    return SGLangRetryPolicy(**msgspec.structs.asdict(policy))


class _MetaInfo(msgspec.Struct):
    id: str = ""
    finish_reason: dict[str, Any] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


class _Chunk(msgspec.Struct):
    """One `data:` line of a streamed /generate: the text so far and meta_info, or SGLang's mid-stream error."""

    text: str | None = None
    meta_info: _MetaInfo = msgspec.field(default_factory=_MetaInfo)
    error: dict[str, Any] | None = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode


def sampling_params(constraint: Constraint | None, sampling: Sampling, regex_of=None) -> dict[str, Any]:
    """SGLang's sampling_params: at most one of json_schema (a JSON *string*), regex, ebnf."""
    params: dict[str, Any] = {"max_new_tokens": sampling.max_tokens, "temperature": sampling.temperature}
    if sampling.stop:
        params["stop"] = list(sampling.stop)
    match constraint:
        case None:
            pass
        case JsonSchema(schema=schema) if regex_of is not None:
            params["regex"] = regex_of(constraint)
        case JsonSchema(schema=schema):
            params["json_schema"] = json.dumps(schema, separators=(",", ":"))
        case Regex(pattern=pattern):
            params["regex"] = pattern
        case Grammar(text=text):
            params["ebnf"] = text
    return params


class _SGLangServer(HttpBackend):
    """What both of SGLang's APIs share: its /health (slow to decide) and what the server says about its own flags
    (/server_info; older servers /get_server_info)."""

    provider = "sglang"
    health_path = "/health"
    health_timeout_s = HEALTH_TIMEOUT_S

    async def server_info(self) -> dict[str, Any] | None:
        """The server's arguments, or None when it does not say (sglang-router answers /get_server_info with its own
        summary, not a worker's flags)."""
        for path in ("/server_info", "/get_server_info"):
            try:
                reply = await self._client.get(f"{self.base_url}{path}", timeout=5)
            except httpx.HTTPError:
                return None
            if reply.status_code == 200:
                try:
                    info = reply.json()
                except ValueError:
                    return None
                return info if isinstance(info, dict) and "enable_cache_report" in info else None
        return None

    async def notes(self) -> list[str]:
        """What an operator should know about this server's flags (empty when all is well or it cannot be told)."""
        return []


class SGLangBackend(_SGLangServer):
    def __init__(self, base_url: str, model: str, *, template: str = "chatml", client: httpx.AsyncClient | None = None,
                 policy: RetryPolicy = RetryPolicy(), regex_of=None):
        super().__init__(base_url, model, client, sglang_policy(policy))
        self._format = TEMPLATES[template]
        self._regex_of = regex_of  # set to send JSON schemas as regexes (constraints.as_regex)
        self._aborting: set[asyncio.Task] = set()
        self.aborts = 0  # abort_request calls the server acknowledged
        self._abort_route = True  # False once the server (a router) has answered 404: closing the stream must do

    def request_body(self, prompt: str, params: dict[str, Any], rid: str) -> dict[str, Any]:
        return {"text": prompt, "sampling_params": params, "rid": rid, "stream": True}

    async def generate(self, messages: list[Message], *, constraint: Constraint | None = None,
                       sampling: Sampling = Sampling(), deadline: float | None = None,
                       on_text: Callable[[str], None] | None = None) -> Completion:
        rid = uuid.uuid4().hex
        url = f"{self.base_url}/generate"
        body = self.request_body(self._format(messages), sampling_params(constraint, sampling, self._regex_of), rid)
        try:
            # The whole call, streamed reply included, ends at the deadline (httpx's timeout bounds each read only).
            async with asyncio.timeout_at(deadline):
                return await self._stream(url, body, deadline, on_text)
        except TimeoutError as exc:
            self._abort(rid)
            raise BackendTimeout(f"{url} did not finish before the deadline (rid {rid})") from exc
        except (asyncio.CancelledError, BackendTimeout):  # the server may hold the request even with no answer yet
            self._abort(rid)
            raise

    async def _stream(self, url: str, body: dict[str, Any], deadline: float | None,
                      on_text: Callable[[str], None] | None) -> Completion:
        started = time.perf_counter()
        # A refused request (4xx/5xx) raises here: the server never ran it, so there is nothing to abort.
        response = await post_json(self._client, url, body, deadline=deadline, policy=self.policy, stream=True)
        text, ttft_ms, last, complete = "", None, None, False
        try:
            async for chunk in stream_chunks(response, url, _decode_chunk):
                if chunk is None:
                    complete = True
                    break
                if chunk.error is not None:
                    raise BackendError(f"{url} failed mid-stream: {chunk.error.get('message', chunk.error)}")
                # Each chunk carries the whole text so far (SGLang's default; --incremental-streaming-output would
                # send pieces): pass on what is new.
                if chunk.text is not None and chunk.text.startswith(text) and len(chunk.text) > len(text):
                    if ttft_ms is None:
                        ttft_ms = (time.perf_counter() - started) * 1000
                    if on_text is not None:
                        on_text(chunk.text[len(text):])
                if chunk.text is not None:
                    text = chunk.text
                last = chunk
        except httpx.TimeoutException as exc:  # (generate aborts it)
            raise BackendTimeout(f"{url} stopped streaming until the deadline: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"{url} broke off mid-stream: {exc!r}") from exc  # nobody left to abort
        except BackendError:
            self._abort(body["rid"])  # an unreadable chunk: make sure the server stops too
            raise
        finally:
            await response.aclose()
        if not complete or last is None:
            # A worker that dies mid-stream behind sglang-router can leave a stream that just ends.
            raise BackendUnavailable(f"{url} ended its stream before the reply was complete")
        return self._completion(url, text, last, started, ttft_ms)

    def _completion(self, url: str, text: str, last: _Chunk, started: float, ttft_ms: float | None) -> Completion:
        """The completed stream's reply, from its last chunk's meta_info; an abort SGLang reports is an error."""
        meta = last.meta_info
        finish = meta.finish_reason or {}
        if finish.get("type") == "abort":
            # SGLang ends a request it refused after accepting it (too long, aborted) this way; status_code if it says.
            raise BackendError(f"{url} aborted the request: {finish.get('message', '')}",
                               status=finish.get("status_code"))
        return Completion(
            text=text,
            usage=Usage(meta.prompt_tokens, meta.completion_tokens, meta.cached_tokens),
            latency_ms=(time.perf_counter() - started) * 1000,
            model=self.model,
            finish_reason=finish.get("type"),
            ttft_ms=ttft_ms,
        )

    def _abort(self, rid: str) -> None:
        """Tell the server to stop generating for `rid`, without making the caller (who is leaving) wait."""
        if not self._abort_route:
            return
        task = asyncio.get_running_loop().create_task(self._post_abort(rid), name=f"sglang-abort:{rid}")
        self._aborting.add(task)
        task.add_done_callback(self._aborting.discard)

    async def _post_abort(self, rid: str) -> None:
        url = f"{self.base_url}/abort_request"
        try:
            reply = await self._client.post(url, json={"rid": rid}, timeout=ABORT_TIMEOUT_S)
        except httpx.HTTPError as exc:
            log.warning("sglang abort failed", url=url, rid=rid, error=repr(exc))
            return
        if reply.status_code == 404:
            self._abort_route = False  # sglang-router: the closed stream is the abort
        elif reply.status_code == 200:
            self.aborts += 1
        else:
            log.warning("sglang abort refused", url=url, rid=rid, status=reply.status_code, body=reply.text[:200])

    async def model_info(self) -> dict[str, Any]:
        """Model facts from /model_info (older servers: /get_model_info)."""
        for path in ("/model_info", "/get_model_info"):
            reply = await self._client.get(f"{self.base_url}{path}", timeout=5)
            if reply.status_code != 404:
                reply.raise_for_status()
                return reply.json()
        raise BackendError(f"{self.base_url} has neither /model_info nor /get_model_info", status=404)

    async def aclose(self) -> None:
        if self._aborting:  # aborts of calls just cancelled: let them reach the server before the client closes
            await asyncio.wait(set(self._aborting), timeout=ABORT_TIMEOUT_S)
        await super().aclose()


class _Call(msgspec.Struct):
    """One item of the array SGLang constrains a forced tool choice to
    (function_call/utils.get_json_schema_constraint)."""

    name: str
    parameters: dict[str, Any] = {}


_decode_calls = msgspec.json.Decoder(list[_Call]).decode


def _forced(tool_choice: Any) -> bool:
    return tool_choice == "required" or (isinstance(tool_choice, dict) and "function" in tool_choice)


class SGLangOpenAIBackend(_SGLangServer, OpenAICompatBackend):
    """SGLang's /v1/chat/completions: the base class's dialect (response_format, `regex`, `ebnf`) is SGLang's."""

    def __init__(self, base_url: str, model: str, **kwargs: Any) -> None:
        super().__init__(base_url, model, **kwargs)
        self.policy = sglang_policy(self.policy)

    async def generate(self, messages: list[Message], *, tools: list[dict[str, Any]] | None = None,
                       tool_choice: Any = None, parallel_tool_calls: bool | None = None, **kwargs: Any) -> Completion:
        """As the base class; a forced tool choice (`required` or a named function) always comes back as
        `tool_calls`. SGLang constrains such a reply to a JSON array of {name, parameters} under the functions' own
        schemas with or without a parser (serving_chat._process_messages' fallback), but only a server started with
        --tool-call-parser turns it into tool_calls; without one it arrives as content, and is decoded here."""
        completion = await super().generate(messages, tools=tools, tool_choice=tool_choice,
                                            parallel_tool_calls=parallel_tool_calls, **kwargs)
        if completion.tool_calls or not tools or not _forced(tool_choice):
            return completion
        try:
            calls = _decode_calls(completion.text)
        except msgspec.DecodeError as exc:
            cut = " (cut off at max_tokens)" if completion.finish_reason == "length" else ""
            raise OutputInvalid(f"{self.base_url} answered a forced tool choice with content that is "
                                f"not its call array{cut}: "
                                f"{completion.text[:200]!r}") from exc
        tool_calls = [ToolCall(f"call_{i}", c.name, json.dumps(c.parameters)) for i, c in enumerate(calls)]
        return msgspec.structs.replace(completion, text="", tool_calls=tool_calls, finish_reason="tool_calls")

    async def notes(self) -> list[str]:
        info = await self.server_info()
        if info is not None and not info.get("enable_cache_report"):
            # serving_chat reports usage.prompt_tokens_details.cached_tokens only with this flag: without it every
            # call would show 0 cached tokens, which reads as a cold cache.
            return ["reports no cached tokens on /v1 (start SGLang with --enable-cache-report)"]
        return []
