"""`stepwise serve`: uvicorn running the app, and the one human line it prints once it listens."""

from __future__ import annotations

import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import uvicorn

from app.settings import Settings


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


def ready_line(url: str, *, model: str, database: str) -> str:
    """What `stepwise serve` prints on stderr when it is ready."""
    return (f"stepwise is listening on {url} · API docs {url}/schema · trace pages {url}/runs/<run id> · "
            f"model {model} · database {database}")


def describe_database(settings: Settings) -> str:
    """The trace database for people: host:port/dbname (and the user) without the password, or the embedded one."""
    if not settings.database_url:
        return f"embedded (pgserver, {settings.data_dir / 'pgdata'})"
    parts = urlsplit(settings.database_url)
    where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}/{parts.path.lstrip('/') or parts.username or 'postgres'}"
    return f"postgres {where}" + (f" (user {parts.username})" if parts.username else "")


def describe_model(settings: Settings) -> str:
    """The model the server answers with, or the experts file that names them."""
    return f"experts from {settings.experts_file}" if settings.experts_file else settings.model
