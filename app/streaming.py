"""Runs tied to their HTTP request: a sink that queues a run's events (and an expert's text as it is generated) for
a streamed reply, and the loop that hands them out until the run ends; for a plain reply, a wait that ends the run
when the client goes away. Either way a run does not outlive the request that started it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from litestar import Request

from stepwise.reasoning.events import AnyEvent
from stepwise.reasoning.report import RunReport

_END = object()


class Text(str):
    """A piece of generated text, as opposed to an event."""


class Channel:
    """An EventSink (and an `on_text` target) whose items one consumer reads in order."""

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: asyncio.Queue = asyncio.Queue()

    def emit(self, event: AnyEvent) -> None:
        self._queue.put_nowait(event)

    def text(self, piece: str) -> None:
        self._queue.put_nowait(Text(piece))

    async def follow(self, start: Callable[[Channel], Coroutine[Any, Any, RunReport]],
                     ) -> AsyncIterator[AnyEvent | Text | RunReport]:
        """Start the run with this channel as its extra sink; yield its events and text as they come, then its
        report. If the consumer stops early, the run is cancelled (and records itself as cancelled)."""
        run = asyncio.create_task(start(self))
        run.add_done_callback(lambda _: self._queue.put_nowait(_END))
        try:
            while (item := await self._queue.get()) is not _END:
                yield item
            yield run.result()
        finally:
            if not run.done():
                run.cancel()


async def unless_gone(request: Request, run: Awaitable[RunReport]) -> RunReport | None:
    """The run's report; None if the client disconnected first (the run is then cancelled and records itself so)."""
    task = asyncio.ensure_future(run)
    gone = asyncio.create_task(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when the handler is cancelled (shutdown)
        gone.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
    return None if task.cancelled() else task.result()


async def _disconnected(request: Request) -> None:
    """Returns when the client disconnects (the body has been read, so the next ASGI message can only be that)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
