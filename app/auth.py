"""Optional API keys (STEPWISE_API_KEYS): every route but /health asks for one, as `Authorization: Bearer KEY`
(what OpenAI's clients send) or `X-API-Key: KEY`. The trace page, which a browser opens without custom headers, also
takes it as `?key=KEY` (the page keeps the query string when it refreshes itself)."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Collection
from urllib.parse import parse_qs

import msgspec
from litestar.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/health"})
PAGE_PREFIX = "/runs/"


def _presented(scope: Scope) -> str | None:
    headers = dict(scope["headers"])
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    key = headers.get(b"x-api-key")
    if key:
        return key.decode("latin-1").strip()
    if scope["type"] == "http" and scope["path"].startswith(PAGE_PREFIX) and scope["method"] == "GET":
        return next(iter(parse_qs(scope.get("query_string", b"").decode("latin-1")).get("key", [])), None)
    return None


def key_guard(keys: Collection[str]) -> Callable[[ASGIApp], ASGIApp]:
    encoded = [k.encode() for k in keys]

    def middleware(app: ASGIApp) -> ASGIApp:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not encoded or scope["path"] in OPEN_PATHS:
                await app(scope, receive, send)
                return
            given = _presented(scope)
            # compare_digest against every key: the time taken says nothing about which key came close
            if given is not None and any(hmac.compare_digest(given.encode(), k) for k in encoded):
                await app(scope, receive, send)
                return
            detail = ("an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY' (for "
                      "the trace page, ?key=KEY)"
                      if given is None else "the API key is not valid")
            body = msgspec.json.encode({"status_code": 401, "detail": detail})
            await send({"type": "http.response.start", "status": 401, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="stepwise"'),
            ]})
            await send({"type": "http.response.body", "body": body})

        return guarded

    return middleware
