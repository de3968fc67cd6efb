"""Request bodies decoded strictly at the boundary: JSON only when the client says it is JSON (415 otherwise), nesting
bounded, and the handler's `data` type decoded by msgspec with `strict=True` ("10" is not a number, "1" not an id),
so every refusal is a 4xx naming the field.

Litestar decodes a body to Python objects and then converts them loosely (`msgspec.convert(..., strict=False)`), and
a body nested deeper than the stack allows raised RecursionError there: a 500. `StrictRequest.json()` is the one
place Litestar reads a JSON body from; it returns the handler's struct already decoded, which Litestar's conversion
passes through unchanged, so handlers keep their typed `data` and the OpenAPI document still comes from those types."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ClientException, ValidationException

MAX_DEPTH = 64
"""Arrays and objects nested deeper than this are refused: no request needs more, and deep values break recursion
everywhere after the decoder (plan references, logs, the trace's JSONB)."""

_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_PATH = re.compile(r"^(.*) - at `\$\.?(.*)`$", re.DOTALL)


def nesting(body: bytes, limit: int = MAX_DEPTH) -> int:
    """How deep the body's arrays and objects nest, counting no further than limit + 1 (strings are skipped, so a
    bracket inside one does not count). Linear in the body, which the body size limit bounds."""
    brackets = _STRINGS.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        depth += 1 if byte in b"[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                break
    return deepest


@cache
def _decoder(target: Any) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(target, strict=True)


def decode_strict(body: bytes, target: Any) -> Any:
    """The body as `target`, decoded strictly; a ValidationException (400) naming the field and the problem."""
    if nesting(body) > MAX_DEPTH:
        raise ValidationException(detail=f"body: JSON nested more than {MAX_DEPTH} levels deep is not accepted")
    try:
        return _decoder(target).decode(body)
    except msgspec.ValidationError as exc:
        match = _PATH.match(str(exc))
        key, message = (match.group(2) or "body", match.group(1)) if match else ("body", str(exc))
        extra = [{"message": message, "key": key, "source": "body"}]
        raise ValidationException(detail=f"{key}: {message}", extra=extra) from None
    except msgspec.DecodeError as exc:
        raise ValidationException(detail=f"body: not valid JSON ({exc})") from None
    except RecursionError:  # the depth check above makes this unlikely; the decoder's own limit depends on the stack
        raise ValidationException(detail="body: JSON nested too deeply") from None


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


class StrictRequest(Request):
    """Litestar's Request whose JSON body is checked for its content type and decoded strictly into the type the route
    handler's `data` parameter declares."""

    async def json(self) -> Any:
        body = await self.body()
        media_type = self.content_type[0]
        if not _is_json(media_type):
            raise ClientException(status_code=415, detail=f"Content-Type: {media_type or 'none'} is not JSON; "
                                                          "send the body as application/json")
        data = self.route_handler.parsed_fn_signature.parameters.get("data")
        return decode_strict(body, data.annotation if data is not None else Any)
