"""The dev set's database: evals/dev/company.sql loaded into a database of its own on the Postgres server the eval
uses, and read by the `sql` tool through a read-only role (app/sqlrole.py), never as the admin.

Loading is idempotent: the database's comment holds the SHA-256 of the file it was loaded from, so a run finds the
database ready, and a changed file (or a load that stopped halfway, which never wrote the comment) recreates it."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from stepwise.app.sqlrole import ensure_readonly_role, role_url

DATABASE = "stepwise_dev"
ROLE = "stepwise_dev_reader"
_LOCK = 0x5E57_DE5  # two evals starting at once load the database once


class DevDatabaseError(Exception):
    """The dev database cannot be made on this server (no CREATEDB right, a bad dump); the message says which."""


def fingerprint(sql_file: Path) -> str:
    return "stepwise dev set, company.sql sha256:" + hashlib.sha256(sql_file.read_bytes()).hexdigest()


def with_database(url: str, database: str) -> str:
    """The same server and user, another database."""
    return urlsplit(url)._replace(path="/" + database).geturl()


def reader_password(admin_url: str, role: str) -> str:
    """The role's password, derived from the admin's URL: the same for every eval on this server, so two evals at
    once do not reset it under each other, and known to no one who does not hold the admin's URL already."""
    return hashlib.sha256(f"{role}\0{admin_url}".encode()).hexdigest()[:32]


@contextlib.asynccontextmanager
async def _admin(admin_url: str):
    """An admin connection holding the dev database's lock: two evals starting at once load it (and reset its role)
    once, one after the other."""
    admin = await asyncpg.connect(admin_url, timeout=10)
    try:
        await admin.execute("SELECT pg_advisory_lock($1)", _LOCK)
        try:
            yield admin
        finally:
            await admin.execute("SELECT pg_advisory_unlock($1)", _LOCK)
    finally:
        await admin.close()


async def load(admin_url: str, sql_file: Path, database: str = DATABASE) -> bool:
    """Make `database` hold `sql_file`, unless it already does; True when it was (re)created now."""
    async with _admin(admin_url) as admin:
        return await _load(admin, admin_url, sql_file, database)


async def reader_url(admin_url: str, sql_file: Path, database: str = DATABASE, role: str = ROLE) -> str:
    """The URL the sql tool uses: `role`, which may only read `database`'s tables, after loading it if needed."""
    password = reader_password(admin_url, role)
    async with _admin(admin_url) as admin:
        await _load(admin, admin_url, sql_file, database)
        conn = await asyncpg.connect(with_database(admin_url, database), timeout=10)
        try:
            await ensure_readonly_role(conn, role, password=password)
        finally:
            await conn.close()
    return role_url(admin_url, role, database, password)


async def _load(admin: asyncpg.Connection, admin_url: str, sql_file: Path, database: str) -> bool:
    mark = fingerprint(sql_file)
    current = await admin.fetchval(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", database)
    if current == mark:
        return False
    name = await admin.fetchval("SELECT quote_ident($1)", database)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    except asyncpg.PostgresError as exc:
        raise DevDatabaseError(f"cannot create the dev set's database {database!r}: {exc} "
                               "(the eval's DATABASE_URL needs a role with CREATEDB)") from exc
    target = await asyncpg.connect(with_database(admin_url, database), timeout=10)
    try:
        async with target.transaction():
            await target.execute(sql_file.read_text())
    except asyncpg.PostgresError as exc:
        raise DevDatabaseError(f"{sql_file} does not load: {exc}") from exc
    finally:
        await target.close()
    # written last: a load that stopped halfway leaves no comment, so the next run starts again
    await admin.execute(f"COMMENT ON DATABASE {name} IS {await admin.fetchval('SELECT quote_literal($1)', mark)}")
    return True
