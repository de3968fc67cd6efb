"""What every HTTP backend has, written once: where its server is, the model it asks for, the retry policy and the
client it posts with, the health probe of its `health_path`, and closing the client."""

from __future__ import annotations

import httpx

from stepwise.reasoning.backends.transport import PROBE_TIMEOUT_S, RetryPolicy, answers_ok


class HttpBackend:
    """The base of the OpenAI-compatible and SGLang backends; each sets `provider` and `health_path` and implements
    `generate` (reasoning.types.ModelBackend)."""

    provider: str
    health_path: str
    health_timeout_s = PROBE_TIMEOUT_S

    def __init__(self, base_url: str, model: str, client: httpx.AsyncClient | None, policy: RetryPolicy,
                 headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.policy = policy
        self._client = client or httpx.AsyncClient(headers=headers, timeout=None)

    async def health(self) -> bool:
        return await answers_ok(self._client, f"{self.base_url}{self.health_path}", self.health_timeout_s)

    async def aclose(self) -> None:
        await self._client.aclose()
