"""How the trace sink isolates refused events, on a stand-in connection that refuses what a real one would: a
refused batch is halved until the bad event is alone, only connection errors are retried, and the order of what is
written stays the order of the events. (tests/integration/test_trace_sink.py does the same against real Postgres.)"""

from __future__ import annotations

import time
import uuid

import asyncpg
import msgspec
import pytest

from stepwise.app.trace import TraceSink
from stepwise.reasoning import events as ev

POISON = 10**5000  # a result JSON cannot hold (the stand-in describes it)


def tool_called(n: int, result: object = 0) -> ev.ToolCalled:
    return ev.ToolCalled(run_id=uuid.UUID(int=1), at=time.time(), step_id=n, tool="calculator", args={}, result=result,
                         error=None, latency_ms=0.1)


def payload(value):
    """The event an `events` row's payload holds: its JSON as the sink sends it (msgspec.Raw), or the event itself."""
    return msgspec.json.decode(value, type=ev.AnyEvent) if isinstance(value, msgspec.Raw) else value


class Refusing:
    """A connection that commits rows per transaction and refuses, with the server's `error`, a COPY holding the
    poison result; the server's `first` error, if any, fails the first COPY (closing the connection if `closes`)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.closed = False
        self._staged: list = []

    def is_closed(self) -> bool:
        return self.closed

    def terminate(self) -> None:
        self.closed = True

    def transaction(self) -> Refusing:
        return self

    async def __aenter__(self) -> None:
        self._staged = []

    async def __aexit__(self, kind, exc, tb) -> None:
        if kind is None:
            self.server.events += self._staged

    async def copy_records_to_table(self, table: str, *, records: list, columns: tuple) -> None:
        if table != "events":
            return
        self.server.attempts.append(len(records))
        if self.server.first is not None:
            first, self.server.first = self.server.first, None
            self.closed = self.server.closes
            raise first
        events = [payload(record[3]) for record in records]
        if any(event.result == POISON for event in events if isinstance(event, ev.ToolCalled)):
            raise self.server.error
        self._staged += events

    async def executemany(self, query: str, rows: list) -> None:
        pass

    async def execute(self, query: str, *args) -> None:
        assert query.startswith("INSERT INTO trace_dead_letters")
        self.server.dead_letters.append(args)


class Server:
    def __init__(self, error: BaseException | None = None, first: BaseException | None = None,
                 closes: bool = False) -> None:
        self.error = error
        self.first = first
        self.closes = closes
        self.attempts: list[int] = []
        self.events: list[ev.AnyEvent] = []
        self.dead_letters: list[tuple] = []
        self.connections = 0

    async def connect(self) -> Refusing:
        self.connections += 1
        return Refusing(self)


async def store(server: Server, events: list[ev.AnyEvent]) -> TraceSink:
    sink = TraceSink(server.connect, retry_initial_s=0.001)
    for event in events:
        sink.emit(event)
    sink.start()
    await sink.close()
    return sink


async def test_a_refused_batch_is_halved_until_the_bad_event_is_alone():
    """8 events, the 6th poisoned: 8 → 4 + 4 → 2 + 2 → 1 + 1; seven written in order, the 6th dead-lettered and its
    stand-in written in its place; nothing retried."""
    server = Server(asyncpg.exceptions.DataError("invalid input"))
    events = [tool_called(n, POISON if n == 6 else n) for n in range(1, 9)]
    sink = await store(server, events)
    assert server.attempts == [8, 4, 4, 2, 1, 1, 1, 2]  # the lone 1 after the refused one is the stand-in
    assert (sink.written, sink.dead_lettered, sink.dropped, sink.retries) == (7, 1, 0, 0)
    assert [e.step_id for e in server.events] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert server.events[5].result == "<an integer of 16610 bits>"
    (run_id, event_type, payload, error), = server.dead_letters
    assert event_type == "tool_called" and "DataError" in error and '"step_id": 6' in payload


@pytest.mark.parametrize("error", [
    asyncpg.exceptions.UntranslatableCharacterError("character with byte sequence 0xe6 0x97 0xa5 has no equivalent"),
    asyncpg.exceptions.NumericValueOutOfRangeError("integer out of range"),
    asyncpg.exceptions.CheckViolationError("violates check constraint"),
    OverflowError("value out of int32 range"),
    ValueError("Exceeds the limit (4300 digits) for integer string conversion"),
    UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
])
async def test_any_refusal_of_the_data_is_isolated_never_retried(error):
    """Postgres' data errors and asyncpg's encoders' errors alike: the bad event is dead-lettered, the rest written."""
    server = Server(error)
    sink = await store(server, [tool_called(1), tool_called(2, POISON), tool_called(3)])
    assert (sink.written, sink.dead_lettered, sink.retries, server.connections) == (2, 1, 0, 1)
    assert type(error).__name__ in server.dead_letters[0][3]


@pytest.mark.parametrize(("error", "closes"), [
    (asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"), True),
    (ConnectionResetError("connection reset by peer"), True),
    (asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"), False),
    (asyncpg.exceptions.DiskFullError("could not extend file"), False),
])
async def test_a_server_that_cannot_work_for_now_is_retried_with_the_whole_batch(error, closes):
    """A connection lost mid-batch, a server shutting down or out of disk says nothing about the rows: the same batch
    is written again on a new connection, whole, nothing dead-lettered."""
    server = Server(first=error, closes=closes)
    sink = await store(server, [tool_called(n) for n in range(1, 6)])
    assert server.attempts == [5, 5] and server.connections == 2
    assert (sink.written, sink.dead_lettered, sink.retries) == (5, 0, 1)
    assert [e.step_id for e in server.events] == [1, 2, 3, 4, 5]
