"""`stepwise serve`: uvicorn running the app, the one human line it prints once it listens, and its graceful stop.

On SIGTERM the server stops accepting connections, lets the runs in progress go on for the grace period
(STEPWISE_SHUTDOWN_GRACE_S), cancels those still going (each records itself as cancelled, and its client gets the
report), then the app's shutdown flushes the trace sink; the process exits 0. (Ctrl-C stops the same way, then the
process ends by the signal, as uvicorn makes it.) uvicorn alone would wait for open
connections without a bound (or cancel their request tasks, so clients get no reply), and after its shutdown it
raises the signal again, so a SIGTERM'd server died with status 143 even when it had stopped cleanly."""

from __future__ import annotations

import signal
import socket
from collections.abc import Awaitable, Callable
from types import FrameType
from urllib.parse import urlsplit

import uvicorn

from stepwise.app.settings import Settings


class AnnouncingServer(uvicorn.Server):
    """uvicorn's server that calls `on_ready(url)` once it listens: the app's startup (database, model) has run and
    the socket is bound, so the URL is the one it really listens on (port 0 becomes the port chosen)."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[str], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self._on_ready(f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}")


class GracefulServer(AnnouncingServer):
    """An AnnouncingServer that, when told to stop, lets the runs in flight end first: `drain()` waits for them for
    the grace period and cancels the rest (app.runtime.Runtime.drain). A SIGTERM it has handled so ends the process
    with status 0; a second signal, or Ctrl-C, keeps uvicorn's behaviour (re-raised after the shutdown)."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[str], None],
                 drain: Callable[[], Awaitable[object]]) -> None:
        super().__init__(config, on_ready)
        self._drain = drain

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and not self.should_exit:
            self.should_exit = True  # not recorded for re-raising: the stop is the graceful one asked for
            return
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Stop accepting, and close idle keep-alive connections (a busy one closes after its reply), so no new run
        # starts while the ones in flight end; then uvicorn's own shutdown, whose connections are done by then.
        for server in getattr(self, "servers", []):
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        await self._drain()
        await super().shutdown(sockets)


def ready_line(url: str, *, model: str, database: str) -> str:
    """What `stepwise serve` prints on stderr when it is ready."""
    return (f"stepwise is listening on {url} · API docs {url}/schema · trace pages {url}/runs/<run id> · "
            f"model {model} · database {database}")


def describe_database(settings: Settings) -> str:
    """The trace database for people: host:port/dbname (and the user) without the password, or the embedded one."""
    if not settings.database_url:
        return f"embedded (pgserver, {settings.data_dir / 'pgdata'})"
    parts = urlsplit(settings.database_url)
    name = parts.path.lstrip("/") or parts.username or "postgres"
    where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}/{name}"
    return f"postgres {where}" + (f" (user {parts.username})" if parts.username else "")


def describe_model(settings: Settings) -> str:
    """The model the server answers with, or the experts file that names them."""
    return f"experts from {settings.experts_file}" if settings.experts_file else settings.model
