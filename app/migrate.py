"""Applies migrations/NNNN_*.sql in order, each once, each in its own transaction, recorded in schema_migrations.
An advisory lock lets several server replicas start at once."""

from __future__ import annotations

import importlib.resources
import re

import structlog

from stepwise.app import db

log = structlog.get_logger("stepwise.migrate")
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
LOCK = 0x5E57_15E
"""The advisory lock (on the database migrated) held while migrating: any constant every replica shares. Replicas
starting together wait for it in turn; the first applies what is missing, the others then find nothing to do."""


def available() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration shipped with the package, in order."""
    found = []
    for entry in importlib.resources.files("stepwise.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number: {versions}")
    return found


async def migrate(conn: db.Connection) -> list[str]:
    """Apply what has not been applied; return the names applied now."""
    applied_now = []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in available():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
            log.info("migration_applied", migration=name)
            applied_now.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK)
    return applied_now


async def migrate_url(url: str) -> list[str]:
    """`migrate` on its own connection to `url`, closed after: for a database made just before (tests, benchmarks)."""
    conn = await db.connect(url)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
