"""Cancelling a run from any replica. A run is a task in the process that started it (`Runtime.active`); a
`DELETE /v1/runs/{id}` may reach another process behind the balancer. That process asks the trace whether the run has
ended and, if not, sends the id on a Postgres channel (`NOTIFY stepwise_cancel`); every replica listens on it with a
connection of its own (`CancelListener`) and the one running the run cancels it, which records it as cancelled.

Postgres delivers a notification to the sessions listening when it is sent; one sent while a listener's connection is
down (Postgres restarting, the session killed) is not kept for it. The listener reconnects by itself, with backoff.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import structlog

from stepwise.app.db import Connection

log = structlog.get_logger("stepwise.cancellation")

CHANNEL = "stepwise_cancel"
_ENDED = "SELECT EXISTS (SELECT 1 FROM events WHERE run_id = $1 AND type IN ('run_finished', 'run_failed'))"
_RETRY_FIRST_S, _RETRY_MAX_S = 0.1, 5.0


async def request_cancel(conn: Connection, run_id: uuid.UUID) -> bool:
    """Ask every replica to cancel `run_id`, unless the trace has its end (then False). The owner may still finish it
    first: the answer is that it was asked to stop, not that it stopped."""
    if await conn.fetchval(_ENDED, run_id):
        return False
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(run_id))
    return True


class CancelListener:
    """Listens on CHANNEL on a connection of its own (not a pooled one: releasing it to the pool would UNLISTEN) and
    calls `cancel(run_id)` for each run named; `cancel` says whether the run was going on here. A lost connection is
    replaced, waiting 0.1 s doubling to 5 s between tries."""

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]],
                 cancel: Callable[[uuid.UUID], bool]) -> None:
        self._connect = connect
        self._cancel = cancel
        self._conn: asyncpg.Connection | None = None
        self._reconnecting: asyncio.Task | None = None
        self._closed = False
        self.connections = 0
        """Connections made so far (1 after start; each reconnection adds one)."""

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    @property
    def server_pid(self) -> int | None:
        """The Postgres backend listening for this process (what pg_stat_activity calls it)."""
        conn = self._conn
        return conn.get_server_pid() if conn is not None and not conn.is_closed() else None

    async def start(self) -> None:
        """Listen; raises if Postgres does not answer (the server is starting, so that is a failed start)."""
        await self._listen()

    async def _listen(self) -> None:
        conn = await self._connect()
        try:
            await conn.add_listener(CHANNEL, self._received)
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(self._lost)
        self._conn = conn
        self.connections += 1

    def _received(self, conn: asyncpg.Connection, pid: int, channel: str, payload: str) -> None:
        try:
            run_id = uuid.UUID(payload)
        except ValueError:
            log.warning("cancel_request_malformed", payload=payload[:100], sender_pid=pid)
            return
        if self._cancel(run_id):
            log.info("run_cancel_requested_elsewhere", run_id=str(run_id), sender_pid=pid)

    def _lost(self, conn: asyncpg.Connection) -> None:
        if self._closed or conn is not self._conn:
            return
        self._conn = None
        log.warning("cancel_listener_lost", retry_s=_RETRY_FIRST_S)
        self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect(), name="cancel-listener-reconnect")

    async def _reconnect(self) -> None:
        wait, tries = _RETRY_FIRST_S, 0
        while not self._closed:
            await asyncio.sleep(wait)
            tries += 1
            try:
                await self._listen()
            except Exception as exc:  # whatever stops it now (refused, starting up, timed out) may pass: try again
                wait = min(wait * 2, _RETRY_MAX_S)
                if tries == 1:
                    log.warning("cancel_listener_reconnect_failed", error=f"{type(exc).__name__}: {exc}", retry_s=wait)
                continue
            log.info("cancel_listener_reconnected", tries=tries)
            return

    async def close(self) -> None:
        self._closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            await asyncio.wait({self._reconnecting})  # a connection it was making is closed, not left open
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close(timeout=5)
            except Exception:  # Postgres gone or not answering: drop the socket instead
                conn.terminate()
