"""Backend errors are translated at the boundary into the project's own types."""

from __future__ import annotations

import asyncio
import socket

import pytest

from stepwise.reasoning.backends.openai_compat import OpenAICompatBackend
from stepwise.reasoning.errors import BackendUnavailable, DeadlineExceeded
from stepwise.reasoning.types import Message


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_an_unreachable_server_is_backend_unavailable():
    """Connection refused becomes BackendUnavailable naming the server."""
    backend = OpenAICompatBackend(f"http://127.0.0.1:{closed_port()}", "m")
    with pytest.raises(BackendUnavailable, match="unreachable"):
        await backend.generate([Message("user", "hi")])
    await backend.aclose()


async def test_no_time_left_means_no_request():
    """A call whose deadline has already passed is refused before it is sent."""
    backend = OpenAICompatBackend(f"http://127.0.0.1:{closed_port()}", "m")
    with pytest.raises(DeadlineExceeded):
        await backend.generate([Message("user", "hi")], deadline=asyncio.get_running_loop().time() - 1)
    await backend.aclose()
