"""The out-of-domain probe set (evals/probe) against real parts: its company.sql loaded into a scratch database on the
test Postgres and read through a read-only role; every database item's reference query, run by the sql tool, gives
the item's answer; every document item's answer is in the probe's articles."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stepwise.evals import datasets, devdb
from stepwise.tools.sql import SqlArgs, SqlTool
from tests.conftest import ADMIN_URL, assert_one_cell, drop_scratch

PROBE = datasets.DEV_DIR.parent / "probe"
SCRATCH_DB = f"stepwise_probetest_{os.getpid()}"
SCRATCH_ROLE = f"stepwise_probetest_reader_{os.getpid()}"
ITEMS = list(datasets.jsonl(PROBE / "items.jsonl").items())
# The reference queries ride in each line's `meta`, which a user's .jsonl may carry and the loader leaves aside.
CHECKS = {row["id"]: row.get("meta", {}).get("check_sql")
          for row in map(json.loads, (PROBE / "items.jsonl").read_text().splitlines())}


@pytest.fixture(scope="module")
async def reader_url():
    """company.sql in a scratch database, and the URL of a read-only role on it; both dropped afterwards."""
    yield await devdb.reader_url(ADMIN_URL, PROBE / "company.sql", SCRATCH_DB, SCRATCH_ROLE)
    await drop_scratch(SCRATCH_DB, [SCRATCH_ROLE])


async def test_every_database_items_reference_query_gives_its_answer(reader_url):
    """One row, one column, equal to the expected answer, through the sql tool as an eval's runs would query."""
    tool = await SqlTool.connect(reader_url)
    items = [i for i in ITEMS if i.id.startswith("probe-sql-")]
    assert len(items) == 12
    for item in items:
        assert_one_cell(await tool.run(SqlArgs(CHECKS[item.id])), item)


def test_every_document_items_answer_is_in_the_articles():
    """The expected name or year is written in some article, so the question can be answered from them."""
    text = " ".join(p.read_text() for p in Path(PROBE / "docs").glob("*.md"))
    items = [i for i in ITEMS if i.id.startswith("probe-docs-")]
    assert len(items) == 10
    for item in items:
        assert str(item.answer) in text, item.id
