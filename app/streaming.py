"""Runs as streams: a sink that queues a run's events (and an expert's text as it is generated) for one HTTP reply,
and the loop that hands them out until the run ends. Leaving the loop early (the client went away) cancels the run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from reasoning.events import AnyEvent
from reasoning.report import RunReport

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

    async def follow(self, start: Callable[[Channel], Awaitable[RunReport]]) -> AsyncIterator[AnyEvent | Text | RunReport]:
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
