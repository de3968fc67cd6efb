"""A client for any OpenAI-compatible `/v1/chat/completions` server (llama.cpp's server, vLLM, SGLang's /v1, hosted
APIs). Replies are streamed so the time to the first token is measured; usage comes from the last chunk."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import msgspec

from stepwise.reasoning import types
from stepwise.reasoning.backends.base import HttpBackend
from stepwise.reasoning.backends.transport import RetryPolicy, post_json, stream_chunks
from stepwise.reasoning.errors import BackendError
from stepwise.reasoning.types import Completion, Constraint, Message, Sampling, ToolCall, Usage


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: dict[str, Any] | None = None


def _merged(seen: _Usage, usage: _Usage) -> _Usage:
    """The usage so far with a usage chunk added. One request for several completions gets from llama.cpp one usage
    chunk after each completion, each with that completion's tokens and the same prompt (read once); from a server
    sending one chunk for the whole request, that chunk."""
    if not seen.prompt_tokens and not seen.completion_tokens:
        return usage
    return msgspec.structs.replace(seen, completion_tokens=seen.completion_tokens + usage.completion_tokens)


class _FunctionDelta(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCallDelta(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: _FunctionDelta = msgspec.field(default_factory=_FunctionDelta)


class _Delta(msgspec.Struct):
    content: str | None = None
    tool_calls: list[_ToolCallDelta] | None = None


class _ChunkChoice(msgspec.Struct):
    index: int = 0
    delta: _Delta = msgspec.field(default_factory=_Delta)
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    choices: list[_ChunkChoice] = []
    usage: _Usage | None = None
    model: str = ""
    error: Any = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode


class OpenAICompatBackend(HttpBackend):
    """Chat completions over HTTP. Cancelling the awaiting task closes the request, which stops generation."""

    provider = "openai"
    health_path = "/v1/models"  # hosted APIs have no /health; llama.cpp and SGLang override this

    def __init__(self, base_url: str, model: str, *, client: httpx.AsyncClient | None = None,
                 api_key: str | None = None, policy: RetryPolicy = RetryPolicy()):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        super().__init__(base_url, model, client, policy, headers)

    def constraint_fields(self, constraint: Constraint) -> dict[str, Any]:
        """The request fields that carry a constraint, in this server's dialect (vLLM's and SGLang's extras)."""
        match constraint:
            case types.JsonSchema(name=name, schema=schema):
                return {"response_format": {"type": "json_schema",
                                            "json_schema": {"name": name, "schema": schema, "strict": True}}}
            case types.Regex(pattern=pattern):
                return {"regex": pattern}
            case types.Grammar(text=text):
                return {"ebnf": text}
        raise TypeError(f"unsupported constraint {constraint!r}")

    def request_body(self, messages: list[Message], constraint: Constraint | None, sampling: Sampling,
                     tools: list[dict[str, Any]] | None = None, tool_choice: Any = None,
                     parallel_tool_calls: bool | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if sampling.n > 1:
            body["n"] = sampling.n
        if constraint is not None:
            body.update(self.constraint_fields(constraint))
        if tools:
            body["tools"] = tools
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
            if parallel_tool_calls is not None:
                body["parallel_tool_calls"] = parallel_tool_calls
        return body

    async def generate(
        self,
        messages: list[Message],
        *,
        constraint: Constraint | None = None,
        sampling: Sampling = Sampling(),
        deadline: float | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = None,
        parallel_tool_calls: bool | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Completion:
        """`tools` (OpenAI function definitions), `tool_choice` and `parallel_tool_calls` are passed as OpenAI
        defines them; the calls the model makes come back in `Completion.tool_calls`."""
        url = f"{self.base_url}/v1/chat/completions"
        started = time.perf_counter()
        body = self.request_body(messages, constraint, sampling, tools, tool_choice, parallel_tool_calls)
        response = await post_json(self._client, url, body, deadline=deadline, policy=self.policy, stream=True)
        parts: list[str] = []
        others: dict[int, list[str]] = {}  # choice index → text so far, for Sampling.n > 1
        calls: dict[int, list[str]] = {}  # index → [id, name, arguments so far]
        ttft_ms = None
        usage, finish_reason, model = _Usage(), None, self.model
        try:
            async for chunk in stream_chunks(response, url, _decode_chunk):
                if chunk is None:
                    break
                if chunk.error is not None:
                    raise BackendError(f"{url} failed mid-stream: {chunk.error}")
                model = chunk.model or model
                for choice in chunk.choices:
                    if choice.index:
                        others.setdefault(choice.index, []).append(choice.delta.content or "")
                        continue
                    delta = choice.delta
                    if ttft_ms is None and (delta.content or delta.tool_calls):
                        ttft_ms = (time.perf_counter() - started) * 1000
                    if delta.content:
                        parts.append(delta.content)
                        if on_text is not None:
                            on_text(delta.content)
                    for call in delta.tool_calls or ():
                        entry = calls.setdefault(call.index, ["", "", ""])
                        entry[0] = call.id or entry[0]
                        entry[1] += call.function.name or ""
                        entry[2] += call.function.arguments or ""
                    finish_reason = choice.finish_reason or finish_reason
                if chunk.usage is not None:
                    usage = _merged(usage, chunk.usage)
        except httpx.TransportError as exc:
            raise BackendError(f"{url} broke off mid-stream: {exc!r}") from exc
        finally:
            await response.aclose()
        details = usage.prompt_tokens_details or {}
        return Completion(
            text="".join(parts),
            usage=Usage(usage.prompt_tokens, usage.completion_tokens, int(details.get("cached_tokens") or 0)),
            latency_ms=(time.perf_counter() - started) * 1000,
            model=model,
            finish_reason=finish_reason,
            ttft_ms=ttft_ms,
            tool_calls=[ToolCall(*calls[i]) for i in sorted(calls)],
            alternatives=["".join(others[i]) for i in sorted(others)],
        )
