"""What the sql tool hands back is bounded whatever the query: each value's text is cut inside Postgres past the
value limit (the server never holds the whole), a query may return so many columns, and a result so many characters;
cut values say so and queries within the bounds come back exactly as before."""

from __future__ import annotations

import os
import tracemalloc

import pytest

from stepwise.tools.sql import SqlTool
from tests.conftest import readonly_database
from tests.conftest import sql_query as query

DATABASE = f"stepwise_sql_bounds_{os.getpid()}"
READER = f"stepwise_bounds_reader_{os.getpid()}"
SCHEMA = """
CREATE TABLE notes (id int PRIMARY KEY, body text, score numeric(6,2), tags jsonb);
INSERT INTO notes VALUES (1, 'short', 1.50, '["a"]'), (2, repeat('long ', 1000), NULL, NULL), (3, NULL, 2.00, '{}');
"""


@pytest.fixture(scope="module")
async def notes_url():
    async with readonly_database(DATABASE, READER, SCHEMA) as url:
        yield url


async def test_values_within_the_limit_come_back_as_they_are_with_types_nulls_and_order(notes_url):
    """Numbers, NULLs, JSON, duplicate and unnamed columns, ORDER BY, a final semicolon or a trailing comment."""
    tool = await SqlTool.connect(notes_url)
    for ending in (";", " ;; ", " -- newest first"):
        result = await query(tool,
                             "SELECT id, score, tags, id, 1 + 1 FROM notes WHERE id <> 2 ORDER BY id DESC" + ending)
        assert result == {"columns": ["id", "score", "tags", "id", "?column?"],
                          "rows": [[3, "2.00", "{}", 3, 2], [1, "1.50", '["a"]', 1, 2]], "truncated": False}


async def test_a_value_past_the_limit_is_cut_and_says_how_long_it_was(notes_url):
    """A 5,000-character body comes back as its first 100 characters and its length; the other columns are whole."""
    tool = await SqlTool.connect(notes_url, value_limit=100)
    (row,) = (await query(tool, "SELECT id, body FROM notes WHERE id = 2"))["rows"]
    assert row == [2, "long " * 20 + "… (cut at 100 of 5000 characters)"]


async def test_a_huge_computed_value_is_cut_inside_postgres(notes_url):
    """SELECT repeat('x', 50 million): Python allocates under 1 MB while the tool runs (not the 50 MB value)."""
    tool = await SqlTool.connect(notes_url)
    tracemalloc.start()
    try:
        result = await query(tool, "SELECT repeat('x', 50000000) AS big")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result["rows"] == [["x" * 2000 + "… (cut at 2000 of 50000000 characters)"]]
    assert peak < 1_000_000


async def test_too_many_columns_are_refused_and_a_long_result_is_cut_by_rows(notes_url):
    """More columns than the limit: a ValueError naming both numbers. Rows past the result's character limit are
    dropped and the result says it is truncated."""
    tool = await SqlTool.connect(notes_url, column_limit=3, result_limit=30)
    with pytest.raises(ValueError, match="returns 4 columns; at most 3"):
        await query(tool, "SELECT 1, 2, 3, 4")
    result = await query(tool, "SELECT repeat('y', 20) FROM generate_series(1, 5)")
    assert result == {"columns": ["repeat"], "rows": [["y" * 20]], "truncated": True}


@pytest.mark.parametrize("sql", ["EXPLAIN SELECT 1", "SHOW search_path"])
async def test_statements_other_than_queries_are_refused(notes_url, sql):
    """Only a query's rows can be read: EXPLAIN and SHOW have rows, but no bound can be put around them."""
    tool = await SqlTool.connect(notes_url)
    with pytest.raises(ValueError, match="only a query's rows can be read"):
        await query(tool, sql)
