"""The dev set against real parts: company.sql loaded by the eval's loader into a scratch database on the test
Postgres, read through the read-only role the sql tool accepts; every sql item's reference query, run by the sql
tool itself, gives the item's answer; every docs item's two hops are in the files it names; and eval rows keep the
kind of each item, so accuracy per kind is in the summary and in SQL."""

from __future__ import annotations

import os
import re
import uuid

import asyncpg
import pytest

from stepwise.app import db
from stepwise.evals import datasets, devdb, report, store
from stepwise.tools.sql import SqlArgs, SqlTool
from tests.conftest import ADMIN_URL, assert_one_cell, drop_scratch

SCRATCH_DB = f"stepwise_devtest_{os.getpid()}"
SCRATCH_ROLE = f"stepwise_devtest_reader_{os.getpid()}"
SQL_FILE = datasets.DEV_DIR / "company.sql"
ITEMS = list(datasets.dev().items())


@pytest.fixture(scope="module")
async def reader_url():
    """company.sql in a scratch database, and the URL of a read-only role on it; both dropped afterwards."""
    yield await devdb.reader_url(ADMIN_URL, SQL_FILE, SCRATCH_DB, SCRATCH_ROLE)
    await drop_scratch(SCRATCH_DB, [SCRATCH_ROLE])


async def test_loading_is_idempotent_and_follows_the_files_hash(reader_url, tmp_path):
    """A second load finds the database ready (its comment is the file's hash); a changed file recreates it."""
    assert await devdb.load(ADMIN_URL, SQL_FILE, SCRATCH_DB) is False
    changed = tmp_path / "company.sql"
    changed.write_text(SQL_FILE.read_text() + "\nINSERT INTO stations VALUES (99, 'Test Dock', 'Ashby', 2026, 1);\n")
    try:
        assert await devdb.load(ADMIN_URL, changed, SCRATCH_DB) is True
        conn = await asyncpg.connect(devdb.with_database(ADMIN_URL, SCRATCH_DB))
        try:
            assert await conn.fetchval("SELECT count(*) FROM stations") == 9
            assert await conn.fetchval("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                                       "WHERE datname = current_database()") == devdb.fingerprint(changed)
        finally:
            await conn.close()
    finally:
        assert await devdb.load(ADMIN_URL, SQL_FILE, SCRATCH_DB) is True  # back to the real file for the other tests
        await devdb.reader_url(ADMIN_URL, SQL_FILE, SCRATCH_DB, SCRATCH_ROLE)  # the new database's grants


async def test_the_sql_tool_accepts_the_reader_role_which_cannot_write(reader_url):
    """The role is not privileged (the sql tool, which refuses roles that reach past their tables, starts on it),
    sees the five tables, and cannot write even outside the tool's read-only transaction."""
    tool = await SqlTool.connect(reader_url)
    assert tool.privileges == ()
    for table in ("stations", "bikes", "members", "rentals", "staff"):
        assert f"table {table}(" in tool.description
    conn = await asyncpg.connect(reader_url)
    try:
        assert await conn.fetchval("SELECT current_user") == SCRATCH_ROLE
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute("INSERT INTO stations VALUES (100, 'Nope', 'Ashby', 2026, 1)")
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute("CREATE TABLE scratch (x int)")
    finally:
        await conn.close()


async def test_every_sql_items_reference_query_gives_its_answer(reader_url):
    """Run through the sql tool as the eval's runs would: one row, one column, equal to the expected answer (a
    "which" query lists every row tied for first, so one row also means the answer is unambiguous)."""
    tool = await SqlTool.connect(reader_url)
    items = [i for i in ITEMS if i.meta["kind"] == "sql"]
    assert len(items) >= 15
    for item in items:
        assert_one_cell(await tool.run(SqlArgs(item.meta["check_sql"])), item)



def _has(text: str, words: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(words.lower())}(?!\w)", " ".join(text.lower().split())) is not None


def test_every_docs_items_two_hops_are_in_the_files_it_names():
    """Both files exist and hold their hop's words; the answer is in the second; and no one document holds both
    what the question names and the answer, so two hops are needed."""
    folder = datasets.DEV_DIR / "docs"
    documents = {p.name: p.read_text() for p in folder.glob("*.md")}
    items = [i for i in ITEMS if i.meta["kind"] == "docs"]
    assert len(items) >= 15
    for item in items:
        first, second = item.meta["hops"]
        for hop in (first, second):
            assert hop["file"] in documents, (item.id, hop["file"])
            assert all(_has(documents[hop["file"]], w) for w in hop["words"]), (item.id, hop)
        assert _has(documents[second["file"]], str(item.answer)), item.id
        both = [name for name, text in documents.items() if _has(text, item.meta["anchor"])
                and _has(text, str(item.answer))]
        assert both == [], (item.id, both)


async def test_eval_rows_keep_kinds_and_summaries_report_accuracy_per_kind(database_url):
    """Items carry kind and split into eval_items; the summary, its stored JSON, the summary line and the
    eval_kind_summary view give accuracy per kind."""
    pool = await db.create_pool(database_url, max_size=2)
    try:
        run = await store.create_run(pool, "dev", "direct", "m", None, 1, {"split": None})
        outcomes = [("sql", "dev", True), ("sql", "heldout", False), ("docs", "dev", True), ("docs", "dev", True),
                    ("game24", "heldout", False)]
        for n, (kind, split, correct) in enumerate(outcomes):
            await store.add_item(pool, run, {"item_id": f"dev-{kind}-{n}", "run_id": uuid.uuid4(), "question": "q",
                                             "expected": "a", "correct": correct, "status": "finished",
                                             "latency_ms": 10.0, "kind": kind, "split": split})
        summary = await store.finish_run(pool, run, "finished")
        assert [(k.kind, k.items, k.correct, k.accuracy) for k in summary.kinds] == [
            ("docs", 2, 2, 1.0), ("game24", 1, 0, 0.0), ("sql", 2, 1, 0.5)]
        stored = await pool.fetchval("SELECT summary FROM eval_runs WHERE id = $1", run)
        assert {k["kind"]: k["accuracy"] for k in stored["kinds"]} == {"docs": 1.0, "game24": 0.0, "sql": 0.5}
        assert "by kind: docs 2/2 (100.0%) · game24 0/1 (0.0%) · sql 1/2 (50.0%)" in report.summary_line(summary)
        view = await pool.fetch("SELECT kind, items, accuracy::float8 AS accuracy FROM eval_kind_summary "
                                "WHERE eval_run_id = $1 ORDER BY kind", run)
        assert [(r["kind"], r["items"], r["accuracy"]) for r in view] == [("docs", 2, 1.0), ("game24", 1, 0.0),
                                                                          ("sql", 2, 0.5)]
        by_split = await pool.fetch("SELECT split, avg(correct::int)::float8 AS accuracy FROM eval_items "
                                    "WHERE eval_run_id = $1 GROUP BY split ORDER BY split", run)
        assert [(r["split"], r["accuracy"]) for r in by_split] == [("dev", 1.0), ("heldout", 0.0)]
        other = await store.create_run(pool, "dev", "orchestrated", "m", None, 1, {})
        await store.add_item(pool, other, {"item_id": "dev-sql-0", "question": "q", "correct": True,
                                           "status": "finished", "kind": "sql", "split": "dev"})
        again = await store.finish_run(pool, other, "finished")
        compared = report.compare_text(summary, again, [], [])
        assert "accuracy sql" in compared and "+50.0 points" in compared
        assert "| game24 | 1 | 0 | 0.0% |" in report.markdown([summary], {}, [])
    finally:
        await pool.close()
