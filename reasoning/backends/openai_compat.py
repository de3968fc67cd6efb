"""A client for any OpenAI-compatible `/v1/chat/completions` server (llama.cpp's server, vLLM, SGLang's /v1, hosted
APIs). Replies are streamed so the time to the first token is measured; usage comes from the last chunk."""

from __future__ import annotations

import time
from typing import Any

import httpx
import msgspec

from reasoning.backends.http import RetryPolicy, answers_ok, post_json
from reasoning.errors import BackendError
from reasoning.types import Completion, Constraint, Grammar, JsonSchema, Message, Regex, Sampling, Usage


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: dict[str, Any] | None = None


class _Delta(msgspec.Struct):
    content: str | None = None


class _ChunkChoice(msgspec.Struct):
    delta: _Delta = msgspec.field(default_factory=_Delta)
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    choices: list[_ChunkChoice] = []
    usage: _Usage | None = None
    model: str = ""
    error: Any = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode


class OpenAICompatBackend:
    """Chat completions over HTTP. Cancelling the awaiting task closes the request, which stops generation."""

    provider = "openai"
    health_path = "/v1/models"  # hosted APIs have no /health; llama.cpp and SGLang override this

    def __init__(self, base_url: str, model: str, *, client: httpx.AsyncClient | None = None, api_key: str | None = None,
                 policy: RetryPolicy = RetryPolicy()):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.policy = policy
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.AsyncClient(headers=headers, timeout=None)

    def constraint_fields(self, constraint: Constraint) -> dict[str, Any]:
        """The request fields that carry a constraint, in this server's dialect (vLLM's and SGLang's extras)."""
        match constraint:
            case JsonSchema(name=name, schema=schema):
                return {"response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}}
            case Regex(pattern=pattern):
                return {"regex": pattern}
            case Grammar(text=text):
                return {"ebnf": text}
        raise TypeError(f"unsupported constraint {constraint!r}")

    def request_body(self, messages: list[Message], constraint: Constraint | None, sampling: Sampling) -> dict[str, Any]:
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
        if constraint is not None:
            body.update(self.constraint_fields(constraint))
        return body

    async def generate(
        self,
        messages: list[Message],
        *,
        constraint: Constraint | None = None,
        sampling: Sampling = Sampling(),
        deadline: float | None = None,
    ) -> Completion:
        url = f"{self.base_url}/v1/chat/completions"
        started = time.perf_counter()
        response = await post_json(self._client, url, self.request_body(messages, constraint, sampling),
                                   deadline=deadline, policy=self.policy, stream=True)
        parts: list[str] = []
        ttft_ms = None
        usage, finish_reason, model = _Usage(), None, self.model
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    chunk = _decode_chunk(data)
                except msgspec.DecodeError as exc:
                    raise BackendError(f"{url} streamed an unreadable chunk: {data[:200]!r}") from exc
                if chunk.error is not None:
                    raise BackendError(f"{url} failed mid-stream: {chunk.error}")
                model = chunk.model or model
                for choice in chunk.choices[:1]:
                    if choice.delta.content:
                        if ttft_ms is None:
                            ttft_ms = (time.perf_counter() - started) * 1000
                        parts.append(choice.delta.content)
                    finish_reason = choice.finish_reason or finish_reason
                if chunk.usage is not None:
                    usage = chunk.usage
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
        )

    async def health(self) -> bool:
        return await answers_ok(self._client, f"{self.base_url}{self.health_path}")

    async def aclose(self) -> None:
        await self._client.aclose()
