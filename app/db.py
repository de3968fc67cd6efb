"""Postgres: which server (DATABASE_URL, else an embedded one from the pgserver package), connections, codecs."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

Connection = asyncpg.Connection | PoolConnectionProxy
"""A connection of its own (`connect`) or one lent by the pool (`pool.acquire()`, a proxy forwarding to it): the
trace's reads, migrations and cancel requests take either."""

_embedded: dict[Path, Any] = {}


def database_url(configured: str | None, data_dir: Path) -> str:
    """The configured URL, or that of an embedded Postgres kept in `data_dir/pgdata` and reused across runs."""
    if configured:
        return configured
    pgdata = data_dir / "pgdata"
    if pgdata not in _embedded:
        pgdata.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on headless machines
            from pgserver.postgres_server import get_server

            # cleanup_mode=None leaves the server running for the next process, which finds and reuses it.
            _embedded[pgdata] = get_server(pgdata, cleanup_mode=None)
    return _embedded[pgdata].get_uri()


async def init_connection(conn: asyncpg.Connection) -> None:
    """JSONB in binary format (version byte + JSON), which COPY needs; encoded and decoded by msgspec."""
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", format="binary",
        encoder=lambda value: b"\x01" + msgspec.json.encode(value),
        decoder=lambda data: msgspec.json.decode(data[1:]),
    )


async def connect(url: str, timeout: float = 10.0, application_name: str = "stepwise") -> asyncpg.Connection:
    # asyncpg leaves `timeout` unannotated, so its default (60) makes checkers read it as int; it takes float seconds.
    conn = await asyncpg.connect(url, timeout=timeout,  # pyright: ignore[reportArgumentType]
                                 server_settings={"application_name": application_name})
    await init_connection(conn)
    return conn


async def create_pool(url: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, init=init_connection)


def redact(url: str) -> str:
    """The URL without its password, for logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    return urlunsplit(parts)
