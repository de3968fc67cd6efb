"""Migrations on the real Postgres: applied in order, recorded, harmless to run again."""

from __future__ import annotations

from stepwise.app.migrate import available, migrate


async def test_migrations_apply_once_and_a_second_run_changes_nothing(pg):
    """Every shipped migration is recorded; running the runner again applies nothing and keeps the tables."""
    assert await migrate(pg) == []  # the session fixture already applied them
    recorded = [r["name"] for r in await pg.fetch("SELECT name FROM schema_migrations ORDER BY version")]
    assert recorded == [name for _, name, _ in available()]
    tables = {r["tablename"] for r in await pg.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"runs", "events", "steps", "model_calls", "tool_calls", "verdicts", "schema_migrations"} <= tables


async def test_migrations_apply_from_scratch_in_a_fresh_schema(pg):
    """On an empty database (a fresh schema here) the runner creates everything, then finds nothing to do."""
    await pg.execute("DROP SCHEMA IF EXISTS fresh CASCADE; CREATE SCHEMA fresh")
    try:
        await pg.execute("SET search_path TO fresh")
        first = await migrate(pg)
        second = await migrate(pg)
        assert first == [name for _, name, _ in available()] and second == []
        assert await pg.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'fresh'") >= 7
    finally:
        await pg.execute("SET search_path TO public; DROP SCHEMA fresh CASCADE")
