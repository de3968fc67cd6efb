"""A Postgres role fit for the `sql` tool: it logs in, reads the tables of one schema, and can do nothing else.

The tool's read-only transaction stops writes, but not what a role's privileges allow inside a read: a superuser (or a
member of pg_execute_server_program, pg_read_server_files, pg_write_server_files, pg_signal_backend) can run shell
commands with `COPY … TO PROGRAM`, write and read server files, and kill other sessions, all from one SELECT. So the
role is made to hold exactly: LOGIN, CONNECT on the database, USAGE on the schema and SELECT on its tables (now and,
through default privileges, tables the admin creates later). Every other attribute is off, every role membership is
revoked, CREATE on the schema and TEMPORARY on the database are revoked from it (what PUBLIC holds is the database's
business: see docs/sql-readonly-role.sql), and its sessions default to read-only with a statement timeout.

Running it again on an existing role brings that role back to this state (idempotent). docs/sql-readonly-role.sql is
the same in plain SQL; `stepwise sql-role` runs this function."""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

__all__ = ["RoleError", "ensure_readonly_role", "role_url"]


class RoleError(Exception):
    """The role cannot be made read-only as asked (it is the admin itself, or it owns objects)."""


async def ensure_readonly_role(conn: asyncpg.Connection, role: str, *, schema: str = "public",
                               password: str | None = None,
                               connection_limit: int = 20, statement_timeout_ms: int = 10_000) -> None:
    """Create `role` (or bring an existing one back) as a LOGIN role that may only read the tables of `schema` in the
    database `conn` is connected to. `conn` must belong to a superuser (or a role with CREATEROLE that owns
    `schema`)."""
    q = _Quoter(conn)
    r, s = await q.ident(role), await q.ident(schema)
    db = await q.ident(str(await conn.fetchval("SELECT current_database()")))
    async with conn.transaction():
        if await conn.fetchval("SELECT $1 IN (current_user, session_user)", role):
            raise RoleError(f"{role!r} is the role running this: make a new role for the sql tool, e.g. "
                            "stepwise_reader")
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema):
            raise RoleError(f"there is no schema {schema!r} in this database")
        exists = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role)
        if exists and (owned := await _owned(conn, role)):
            # an owner holds every privilege on what it owns, whatever is granted or revoked
            raise RoleError(f"{role!r} owns {', '.join(owned[:5])}: a read-only role must own "
                            f"nothing; pick another name")
        attributes = (f"LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT "
                      f"CONNECTION LIMIT {int(connection_limit)}")
        if password is not None:
            attributes += f" PASSWORD {await q.literal(password)}"
        await conn.execute(f"{'ALTER' if exists else 'CREATE'} ROLE {r} {attributes}")
        # whatever it was granted before (pg_execute_server_program, a writer group…) goes
        for granted in await conn.fetch(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
            "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1", role
        ):
            await conn.execute(f"REVOKE {await q.ident(granted['rolname'])} FROM {r}")
        await conn.execute(f"GRANT CONNECT ON DATABASE {db} TO {r}")
        await conn.execute(f"REVOKE CREATE, TEMPORARY ON DATABASE {db} FROM {r}")
        await conn.execute(f"GRANT USAGE ON SCHEMA {s} TO {r}")
        await conn.execute(f"REVOKE CREATE ON SCHEMA {s} FROM {r}")
        await conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {r}")
        await conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}")
        await conn.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {r}")
        # tables the admin (this connection's role) creates later in the schema are readable too, and only readable
        await conn.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} REVOKE ALL ON TABLES FROM {r}")
        await conn.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT ON TABLES TO {r}")
        await conn.execute(f"ALTER ROLE {r} IN DATABASE {db} SET search_path = {s}")
        await conn.execute(f"ALTER ROLE {r} SET default_transaction_read_only = on")
        await conn.execute(f"ALTER ROLE {r} SET statement_timeout = {int(statement_timeout_ms)}")
        await conn.execute(f"ALTER ROLE {r} SET idle_in_transaction_session_timeout = {int(statement_timeout_ms)}")


def role_url(admin_url: str, role: str, database: str | None = None, password: str | None = None) -> str:
    """`admin_url` with its user (and password) replaced by `role`'s, and its database by `database` if given:
    host, port and query options (sslmode, a unix-socket host=…) stay as they were."""
    parts = urlsplit(admin_url)
    hostport = parts.netloc.rpartition("@")[2]
    user = quote(role, safe="") + (":" + quote(password, safe="") if password is not None else "")
    path = "/" + quote(database, safe="") if database is not None else parts.path
    return urlunsplit((parts.scheme, f"{user}@{hostport}", path, parts.query, parts.fragment))


async def _owned(conn: asyncpg.Connection, role: str) -> list[str]:
    """Schemas and relations of this database `role` owns."""
    rows = await conn.fetch(
        "SELECT 'schema ' || nspname AS what FROM pg_namespace WHERE nspowner = (SELECT oid FROM "
        "pg_roles WHERE rolname = $1) "
        "UNION ALL SELECT 'table ' || oid::regclass::text FROM pg_class WHERE relowner = (SELECT oid FROM "
        "pg_roles WHERE rolname = $1) "
        "UNION ALL SELECT 'database ' || datname FROM pg_database WHERE datdba = (SELECT oid FROM "
        "pg_roles WHERE rolname = $1)",
        role,
    )
    return [row["what"] for row in rows]


class _Quoter:
    """Identifiers and literals quoted by Postgres itself (quote_ident, quote_literal): role and schema names may hold
    any character, and DDL takes no bind parameters."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def ident(self, name: str) -> str:
        return await self._quoted("SELECT quote_ident($1)", name)

    async def literal(self, text: str) -> str:
        return await self._quoted("SELECT quote_literal($1)", text)

    async def _quoted(self, query: str, text: str) -> str:
        quoted = await self.conn.fetchval(query, text)
        if not isinstance(quoted, str):  # not reached: both functions return text for text
            raise RoleError(f"{query} gave {quoted!r} for {text!r}")
        return quoted
