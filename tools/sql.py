"""Read-only SQL against a configured Postgres. Writes are impossible by construction: every query runs in a READ
ONLY transaction (Postgres refuses INSERT, UPDATE, DELETE and DDL there, in functions too), as one prepared
statement (no second statement can ride along), with a statement timeout and a row limit. The tool's description —
what the planner sees before it writes a query — lists the tables, their columns and types, and a few sample rows.
A failed query's error is the step's failure, which the planner gets back when it repairs the plan."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
import msgspec


class SqlArgs(msgspec.Struct, forbid_unknown_fields=True):
    query: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class SqlTool:
    name = "sql"
    args_type = SqlArgs
    result_type = dict[str, Any]
    deterministic = False  # rows without ORDER BY may come back in another order

    def __init__(self, url: str, schema_text: str, *, row_limit: int = 50, timeout_ms: int = 2000) -> None:
        self.url = url
        self.row_limit = row_limit
        self.timeout_ms = timeout_ms
        self.description = "runs one read-only PostgreSQL SELECT query on this database and returns its rows:\n" + schema_text

    @classmethod
    async def connect(cls, url: str, *, sample_rows: int = 2, **options: Any) -> SqlTool:
        """A tool for the database at `url`, its description built from the database's own catalogue."""
        conn = await asyncpg.connect(url, timeout=10)
        try:
            schema_text = await describe(conn, sample_rows)
        finally:
            await conn.close()
        return cls(url, schema_text, **options)

    async def run(self, args: SqlArgs) -> dict[str, Any]:
        try:
            conn = await asyncpg.connect(self.url, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise ValueError(f"the database is unreachable: {exc}") from exc
        try:
            async with conn.transaction(readonly=True):
                await conn.execute(f"SET LOCAL statement_timeout = {int(self.timeout_ms)}")
                statement = await conn.prepare(args.query)
                cursor = await statement.cursor()
                rows = await cursor.fetch(self.row_limit + 1)  # one more than shown tells whether there was more
                columns = [a.name for a in statement.get_attributes()]
        except asyncpg.PostgresError as exc:
            raise ValueError(f"{type(exc).__name__}: {exc}") from None  # the message is what a repair needs
        finally:
            await conn.close()
        return {
            "columns": columns,
            "rows": [[_jsonable(v) for v in row] for row in rows[: self.row_limit]],
            "truncated": len(rows) > self.row_limit,
        }


async def describe(conn: asyncpg.Connection, sample_rows: int = 2) -> str:
    """Tables of the public schema with columns, types and a few rows, compact (every token costs time)."""
    columns = await conn.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
    )
    tables: dict[str, list[str]] = {}
    for row in columns:
        tables.setdefault(row["table_name"], []).append(f"{row['column_name']} {row['data_type']}")
    lines = []
    for table, cols in tables.items():
        lines.append(f"  table {table}({', '.join(cols)})")
        samples = await conn.fetch(f'SELECT * FROM "{table}" LIMIT {int(sample_rows)}')
        for sample in samples:
            lines.append("    e.g. " + msgspec.json.encode({k: _jsonable(v) for k, v in sample.items()}).decode())
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)  # dates, decimals, uuids: as Postgres would print them
