"""SGLang, through its two HTTP APIs (field names from SGLang's own source: srt/managers/io_struct.py
GenerateReqInput, srt/sampling/sampling_params.py SamplingParams, srt/entrypoints/openai/protocol.py).

- `SGLangBackend`: native `POST /generate`. Calls that arrive in the same event-loop tick — the ready steps of a
  plan that target one expert — go out as one batched request (`text` as a list, one `sampling_params` each);
  SGLang answers a batch with a list in the same order.
- `SGLangOpenAIBackend`: its OpenAI-compatible `/v1/chat/completions` (response_format json_schema; `regex` and
  `ebnf` as extra body fields; `usage.prompt_tokens_details.cached_tokens` with --enable-cache-report)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import msgspec

from reasoning.backends.http import RetryPolicy, answers_ok, post_json
from reasoning.backends.openai_compat import OpenAICompatBackend
from reasoning.backends.templates import TEMPLATES
from reasoning.errors import BackendError
from reasoning.types import Completion, Constraint, Grammar, JsonSchema, Message, Regex, Sampling, Usage


class _MetaInfo(msgspec.Struct):
    id: str = ""
    finish_reason: dict[str, Any] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    e2e_latency: float | None = None


class _Reply(msgspec.Struct):
    text: str
    meta_info: _MetaInfo


_decode_one = msgspec.json.Decoder(_Reply).decode
_decode_many = msgspec.json.Decoder(list[_Reply]).decode


class _Pending(msgspec.Struct):
    prompt: str
    params: dict[str, Any]
    deadline: float | None
    future: asyncio.Future


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


class SGLangBackend:
    provider = "sglang"
    health_path = "/health"

    def __init__(self, base_url: str, model: str, *, template: str = "chatml", client: httpx.AsyncClient | None = None,
                 policy: RetryPolicy = RetryPolicy(), max_batch: int = 64, regex_of=None):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.policy = policy
        self.max_batch = max_batch
        self._format = TEMPLATES[template]
        self._regex_of = regex_of  # set to send JSON schemas as regexes (constraints.as_regex)
        self._client = client or httpx.AsyncClient(timeout=None)
        self._pending: list[_Pending] = []
        self._sending: set[asyncio.Task] = set()
        self.batches_sent = 0

    async def generate(
        self,
        messages: list[Message],
        *,
        constraint: Constraint | None = None,
        sampling: Sampling = Sampling(),
        deadline: float | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Completion:
        loop = asyncio.get_running_loop()
        item = _Pending(self._format(messages), sampling_params(constraint, sampling, self._regex_of), deadline, loop.create_future())
        if not self._pending:
            loop.call_soon(self._flush)  # runs after every task already ready in this tick has had its turn
        self._pending.append(item)
        completion = await item.future
        if on_text is not None:
            on_text(completion.text)  # /generate is not streamed here: batching matters more
        return completion

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), self.max_batch):
            batch = pending[start:start + self.max_batch]
            task = asyncio.get_running_loop().create_task(self._send(batch), name=f"sglang-generate:{len(batch)}")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
            for item in batch:
                item.future.add_done_callback(lambda _, b=batch, t=task: _cancel_if_abandoned(b, t))

    def request_body(self, batch: list[_Pending]) -> dict[str, Any]:
        if len(batch) == 1:
            return {"text": batch[0].prompt, "sampling_params": batch[0].params}
        return {"text": [i.prompt for i in batch], "sampling_params": [i.params for i in batch]}

    async def _send_now(self, body: dict[str, Any], deadline: float | None) -> httpx.Response:
        return await post_json(self._client, f"{self.base_url}/generate", body, deadline=deadline, policy=self.policy)

    async def _send(self, batch: list[_Pending]) -> None:
        deadlines = [i.deadline for i in batch if i.deadline is not None]
        started = time.perf_counter()
        url = f"{self.base_url}/generate"
        try:
            response = await self._send_now(self.request_body(batch), min(deadlines, default=None))
            try:
                replies = [_decode_one(response.content)] if len(batch) == 1 else _decode_many(response.content)
            except msgspec.DecodeError as exc:
                raise BackendError(f"{url} sent an unreadable reply: {exc}") from exc
            if len(replies) != len(batch):
                raise BackendError(f"{url} answered {len(replies)} items for a batch of {len(batch)}")
        except Exception as exc:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        self.batches_sent += 1
        latency_ms = (time.perf_counter() - started) * 1000
        for item, reply in zip(batch, replies):
            if not item.future.done():
                item.future.set_result(self._completion(reply, latency_ms))

    def _completion(self, reply: _Reply, latency_ms: float) -> Completion:
        meta = reply.meta_info
        finish = (meta.finish_reason or {}).get("type")
        return Completion(
            text=reply.text,
            usage=Usage(meta.prompt_tokens, meta.completion_tokens, meta.cached_tokens),
            latency_ms=latency_ms,
            model=self.model,
            finish_reason=finish,
        )

    async def health(self) -> bool:
        return await answers_ok(self._client, f"{self.base_url}{self.health_path}")

    async def model_info(self) -> dict[str, Any]:
        """Model facts from /model_info (older servers: /get_model_info)."""
        for path in ("/model_info", "/get_model_info"):
            reply = await self._client.get(f"{self.base_url}{path}", timeout=5)
            if reply.status_code != 404:
                reply.raise_for_status()
                return reply.json()
        raise BackendError(f"{self.base_url} has neither /model_info nor /get_model_info", status=404)

    async def aclose(self) -> None:
        for task in list(self._sending):
            task.cancel()
        await self._client.aclose()


def _cancel_if_abandoned(batch: list[_Pending], task: asyncio.Task) -> None:
    """When every caller of a batch has gone (cancelled or past its deadline), stop its request too."""
    if all(item.future.cancelled() for item in batch):
        task.cancel()


class SGLangOpenAIBackend(OpenAICompatBackend):
    """SGLang's /v1/chat/completions: the base class's dialect (response_format, `regex`, `ebnf`) is SGLang's."""

    provider = "sglang"
    health_path = "/health"
