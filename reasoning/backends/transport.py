"""One POST with the boundary's rules: the timeout is what is left of the deadline, connection errors and the
policy's statuses (429 and 5xx by default) are retried with backoff (never sleeping past the deadline), and httpx
errors become BackendErrors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import httpx
import msgspec

from stepwise.reasoning.errors import BackendError, BackendTimeout, BackendUnavailable, DeadlineExceeded

T = TypeVar("T")
DONE = "[DONE]"  # the last data line of an OpenAI-style stream (SGLang's /generate ends so too)

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


class RetryPolicy(msgspec.Struct, frozen=True):
    tries: int = 3
    initial_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 4.0
    statuses: frozenset[int] = RETRIED_STATUSES

    def retried(self, response: httpx.Response) -> bool:
        """Whether this answer (status, and the body, already read) is worth another try."""
        return response.status_code in self.statuses


def remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - asyncio.get_running_loop().time()


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: Any,
    *,
    deadline: float | None,
    policy: RetryPolicy = RetryPolicy(),
    stream: bool = False,
) -> httpx.Response:
    """POST `body` as JSON; return the first successful response, or raise a BackendError. With `stream`, the
    response's body is not read yet: the caller iterates it and must close it."""
    payload = msgspec.json.encode(body)
    delay = policy.initial_s
    last: BackendError | None = None
    for attempt in range(1, policy.tries + 1):
        timeout = remaining(deadline)
        if timeout is not None and timeout <= 0:
            if last is not None:
                raise last
            raise DeadlineExceeded(f"no time left to call {url}")
        request = client.build_request("POST", url, content=payload, headers={"content-type": "application/json"},
                                       timeout=timeout)
        try:
            response = await client.send(request, stream=stream)
            if stream and response.status_code >= 400:
                await response.aread()
                await response.aclose()
        except httpx.TimeoutException as exc:
            # The timeout is the rest of the run's deadline: there is no time for another try.
            raise BackendTimeout(f"{url} did not answer within {timeout:.1f}s") from exc
        except httpx.TransportError as exc:
            last = BackendUnavailable(f"{url} unreachable: {exc!r} (try {attempt} of {policy.tries})")
        else:
            if not policy.retried(response):
                if response.status_code >= 400:
                    raise BackendError(f"{url} answered {response.status_code}: {response.text[:500]}",
                                       status=response.status_code)
                return response
            last = BackendError(f"{url} answered {response.status_code}: {response.text[:300]} "
                                f"(try {attempt} of {policy.tries})", status=response.status_code)
        if attempt < policy.tries:
            left = remaining(deadline)
            if left is not None and left <= delay:
                break  # sleeping would pass the deadline
            await asyncio.sleep(delay)
            delay = min(delay * policy.factor, policy.cap_s)
    assert last is not None
    raise last


PROBE_TIMEOUT_S = 5.0


async def answers_ok(client: httpx.AsyncClient, url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether GET `url` answers 200 within `timeout_s` (a health probe: never raises)."""
    try:
        reply = await client.get(url, timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return reply.status_code == 200


MAX_CHUNK_CHARS = 1 << 20
"""The longest line a model server's stream may send (1 Mi characters). SGLang's chunks carry the whole text so far,
so this bounds the text a call holds (max_tokens 8,192 is ~40,000 characters); a line past it, or one that never
ends, is a BackendError once this much of it has arrived, not held whole."""
MAX_STREAM_CHARS = 1 << 28
"""All the data lines of one stream together (256 Mi characters): the bound on what a call that adds pieces up (the
OpenAI-compatible backend) holds, and on how long a server that ignores max_tokens can go on. SGLang's whole-text
chunks of an 8,192-token reply add up to ~170 Mi characters."""


async def stream_chunks(response: httpx.Response, url: str, decode: Callable[[str], T], *,
                        max_chunk_chars: int = MAX_CHUNK_CHARS,
                        max_stream_chars: int = MAX_STREAM_CHARS) -> AsyncIterator[T | None]:
    """The decoded `data:` chunks of a server-sent event stream, then None if the server ended it with [DONE]
    (a stream that just stops yields no None: the caller decides whether that is an error). An unreadable chunk,
    a line longer than `max_chunk_chars` or a stream longer than `max_stream_chars` is a BackendError naming the
    server; lines are split here, as the text arrives, so neither is ever held whole."""
    buffer: list[str] = []  # the line being received, in pieces
    buffered = total = 0
    async for piece in response.aiter_text():
        total += len(piece)
        if total > max_stream_chars:
            raise BackendError(f"{url} streamed more than {max_stream_chars:,} characters: stopped reading")
        if "\n" not in piece:
            buffer.append(piece)
            buffered += len(piece)
            if buffered > max_chunk_chars:
                raise BackendError(f"{url} streamed a line longer than {max_chunk_chars:,} characters: stopped reading")
            continue
        head, *lines, tail = piece.split("\n")
        lines.insert(0, "".join(buffer) + head)
        buffer, buffered = [tail], len(tail)
        for line in lines:
            if (chunk := _data(line, url, decode, max_chunk_chars)) is not _SKIP:
                yield chunk  # type: ignore[misc]
                if chunk is None:
                    return
    if (chunk := _data("".join(buffer), url, decode, max_chunk_chars)) is not _SKIP:
        yield chunk  # type: ignore[misc]


_SKIP = object()


def _data(line: str, url: str, decode: Callable[[str], T], max_chars: int) -> object:
    """A line's decoded chunk, None for [DONE], or _SKIP for a line that is not data (a comment, an event name)."""
    if len(line) > max_chars:
        raise BackendError(f"{url} streamed a line longer than {max_chars:,} characters: stopped reading")
    line = line.rstrip("\r")
    if not line.startswith("data:"):
        return _SKIP
    data = line[5:].strip()
    if data == DONE:
        return None
    try:
        return decode(data)
    except msgspec.DecodeError as exc:
        raise BackendError(f"{url} streamed an unreadable chunk: {data[:200]!r}") from exc
