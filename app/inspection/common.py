"""What the inspection commands share: the error they print, the migrated connection, a run's lookup."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from stepwise.app import db
from stepwise.app.migrate import migrate
from stepwise.app.settings import Settings
from stepwise.app.trace import RunLookupError, find_run


class InspectError(Exception):
    """A request the trace cannot answer (no such run, an ambiguous id, a bad age); printed, exit status 1."""


async def connect(settings: Settings) -> asyncpg.Connection:
    """The configured database, migrated (so the views exist on a database older than them)."""
    url = await asyncio.to_thread(db.database_url, settings.database_url, settings.data_dir)
    conn = await db.connect(url, application_name="stepwise-inspect")
    try:
        await migrate(conn)
    except BaseException:
        await conn.close()
        raise
    return conn


async def resolve_run(conn: asyncpg.Connection, text: str) -> uuid.UUID:
    """A full run id, or the one run whose id starts with `text` (app.trace.find_run's rule)."""
    try:
        return await find_run(conn, text)
    except RunLookupError as exc:
        raise InspectError(str(exc)) from None
