"""Postgres: which server (DATABASE_URL, else an embedded one from the pgserver package), connections, codecs."""

from __future__ import annotations

import re
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


# A number JSON writes with a positive exponent: msgspec writes floats of 1e16 and more so (1.2345678901234567e19).
# Only a token standing between JSON's delimiters, as msgspec writes compact JSON (no spaces; the only JSON handed
# in as msgspec.Raw is msgspec's own, app.trace._stored): a looser test (a digit, "e", a digit) also matched the hex of
# run ids, in nearly half of the trace's events, and the rewrite below then took over half of the time the trace
# writer spends making a batch's rows (cProfile over bench.sink's events).
_BIG_FLOAT = re.compile(rb"(?:^|[:\[,])-?\d+(?:\.\d+)?e\+?\d+(?:$|[,\]}])")
# A string (skipped whole, so text that looks like a number stays as it is) or such a number.
_STRING_OR_BIG_FLOAT = re.compile(rb'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?[eE]\+?\d+')


def _exact(match: re.Match[bytes]) -> bytes:
    token = match.group()
    return token if token.startswith(b'"') else b"%d.0" % int(float(token))


def jsonb_bytes(value: Any) -> bytes:
    """`value` as JSON jsonb reads back as it was. jsonb keeps a number's digits, not its type: 1.2345678901234567e19
    would come back as the integer 12345678901234567000, another number than the float. Written as its exact value
    with a `.0` (12345678901234567168.0), it comes back as the same float."""
    data = msgspec.json.encode(value)
    return _STRING_OR_BIG_FLOAT.sub(_exact, data) if _BIG_FLOAT.search(data) else data


async def init_connection(conn: asyncpg.Connection) -> None:
    """JSONB and JSON in binary format, which COPY needs (jsonb's a version byte + JSON, json's the JSON itself),
    encoded and decoded by msgspec (jsonb's as `jsonb_bytes`: json keeps a number as written)."""
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", format="binary",
        encoder=lambda value: b"\x01" + jsonb_bytes(value),
        decoder=lambda data: msgspec.json.decode(data[1:]),
    )
    await conn.set_type_codec("json", schema="pg_catalog", format="binary", encoder=msgspec.json.encode,
                              decoder=msgspec.json.decode)


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
