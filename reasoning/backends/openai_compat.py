"""A client for any OpenAI-compatible `/v1/chat/completions` server (llama.cpp's server, vLLM, SGLang's /v1, …)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import msgspec

from reasoning.errors import BackendError, BackendTimeout, BackendUnavailable, DeadlineExceeded
from reasoning.types import Completion, Constraint, Grammar, JsonSchema, Message, Regex, Sampling, Usage


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: dict[str, Any] | None = None


class _Choice(msgspec.Struct):
    message: dict[str, Any]
    finish_reason: str | None = None


class _Reply(msgspec.Struct):
    choices: list[_Choice]
    usage: _Usage = msgspec.field(default_factory=_Usage)
    model: str = ""


_decode_reply = msgspec.json.Decoder(_Reply).decode


class OpenAICompatBackend:
    """Chat completions over HTTP. Cancelling the awaiting task closes the request, which stops generation."""

    provider = "openai"

    def __init__(self, base_url: str, model: str, client: httpx.AsyncClient | None = None, api_key: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.AsyncClient(headers=headers, timeout=None)

    def constraint_fields(self, constraint: Constraint) -> dict[str, Any]:
        """The request fields that carry a constraint, in this server's dialect."""
        match constraint:
            case JsonSchema(name=name, schema=schema):
                return {"response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}}
            case Regex(pattern=pattern):
                return {"regex": pattern}
            case Grammar(text=text):
                return {"ebnf": text}
        raise TypeError(f"unsupported constraint {constraint!r}")

    async def generate(
        self,
        messages: list[Message],
        *,
        constraint: Constraint | None = None,
        sampling: Sampling = Sampling(),
        deadline: float | None = None,
    ) -> Completion:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if constraint is not None:
            body.update(self.constraint_fields(constraint))
        timeout = None
        if deadline is not None:
            timeout = deadline - asyncio.get_running_loop().time()
            if timeout <= 0:
                raise DeadlineExceeded("no time left for a model call")
        started = time.perf_counter()
        try:
            response = await self._client.post(
                f"{self.base_url}/v1/chat/completions", content=msgspec.json.encode(body),
                headers={"content-type": "application/json"}, timeout=timeout,
            )
        except httpx.TimeoutException as exc:
            raise BackendTimeout(f"{self.base_url} did not answer within {timeout:.1f}s") from exc
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"{self.base_url} unreachable: {exc!r}") from exc
        latency_ms = (time.perf_counter() - started) * 1000
        if response.status_code >= 400:
            raise BackendError(f"{self.base_url} answered {response.status_code}: {response.text[:500]}")
        try:
            reply = _decode_reply(response.content)
        except msgspec.DecodeError as exc:
            raise BackendError(f"{self.base_url} sent an unreadable reply: {exc}") from exc
        if not reply.choices:
            raise BackendError(f"{self.base_url} sent no choices")
        choice = reply.choices[0]
        details = reply.usage.prompt_tokens_details or {}
        return Completion(
            text=choice.message.get("content") or "",
            usage=Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens, int(details.get("cached_tokens") or 0)),
            latency_ms=latency_ms,
            model=reply.model or self.model,
            finish_reason=choice.finish_reason,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
