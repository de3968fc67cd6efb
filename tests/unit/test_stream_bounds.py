"""A model server's stream is read within bounds (issue 14 §6): lines are split as the text arrives, a line longer
than the chunk bound or a stream longer than the stream bound is a BackendError naming the server, and an ordinary
stream reads as before (pieces split anywhere, CRLF line ends, comments, [DONE])."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from stepwise.reasoning.backends.transport import stream_chunks
from stepwise.reasoning.errors import BackendError

URL = "http://model.test/generate"


class _Pieces(httpx.AsyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            self.sent += 1
            yield piece


async def _read(pieces: list[bytes], **bounds) -> tuple[list, _Pieces]:
    body = _Pieces(pieces)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=body))
    async with httpx.AsyncClient(transport=transport) as client, client.stream("POST", URL) as response:
        return [chunk async for chunk in stream_chunks(response, URL, msgspec.json.decode, **bounds)], body


async def test_an_ordinary_stream_reads_as_before_wherever_its_pieces_are_cut():
    """Data lines split across pieces, CRLF, an SSE comment and an event name: the chunks, then None for [DONE]."""
    text = b': keep-alive\r\nevent: x\r\ndata: {"a": 1}\r\n\r\ndata: {"a": 2}\n\ndata: [DONE]\n\n'
    for cut in (1, 3, 7, len(text)):
        chunks, _ = await _read([text[i:i + cut] for i in range(0, len(text), cut)])
        assert chunks == [{"a": 1}, {"a": 2}, None]


async def test_a_stream_without_done_ends_without_none_and_keeps_its_last_line():
    """A stream that just stops yields what it sent, its last line too even without a newline, and no None."""
    chunks, _ = await _read([b'data: {"a": 1}\n', b'data: {"a": 2}'])
    assert chunks == [{"a": 1}, {"a": 2}]


async def test_a_line_longer_than_the_bound_is_refused_before_it_ends():
    """A line that never ends is refused once the bound has arrived, not read to the end of the stream."""
    pieces = [b"data: " + b"x" * 1000] * 100
    with pytest.raises(BackendError, match="streamed a line longer than 4,096 characters"):
        await _read(pieces, max_chunk_chars=4096)


async def test_a_long_line_inside_one_piece_is_refused_too():
    """The bound holds for a whole line that came in one piece with its newline."""
    with pytest.raises(BackendError, match=URL):
        await _read([b'data: "' + b"y" * 10_000 + b'"\n'], max_chunk_chars=4096)


async def test_a_stream_longer_than_its_bound_is_refused_and_not_read_further():
    """Short lines without end (a server ignoring max_tokens): refused at the stream bound, the rest never read."""
    body_pieces = [b'data: {"t": "la"}\n' for _ in range(10_000)]
    with pytest.raises(BackendError, match="streamed more than 1,000 characters"):
        await _read(body_pieces, max_stream_chars=1000)
