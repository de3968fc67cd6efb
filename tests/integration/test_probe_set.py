"""The out-of-domain probe sets (evals/probe, probe2, probe3, probe4, probe5) against real parts: each set's
company.sql loaded into a scratch database on the test Postgres and read through a read-only role; every database
item's reference query, run by the sql tool, gives the item's answer; every document item's answer is in the set's
articles, each hop's words in the article it names; every computed item's check, and every puzzle's solution, gives
its answer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stepwise.evals import datasets, devdb
from stepwise.evals.scoring import check_24
from stepwise.tools.sql import SqlArgs, SqlTool
from tests.conftest import ADMIN_URL, assert_one_cell, drop_scratch

SETS = {"probe": {"sql": 12, "docs": 10}, "probe2": {"sql": 8, "docs": 8, "arithmetic": 6, "comparison": 5,
                                                     "game24": 5},
        "probe3": {"sql": 16, "docs": 6, "arithmetic": 5, "comparison": 3},
        "probe4": {"sql": 8, "docs": 8, "arithmetic": 5, "comparison": 5, "game24": 4},
        "probe5": {"sql": 8, "docs": 8, "arithmetic": 5, "comparison": 5, "game24": 4}}
SOURCES = {"probe3": "probe2"}  # probe3 asks new questions of probe2's database and articles


def _source(name: str) -> Path:
    """The folder holding a set's company.sql and docs/."""
    return datasets.DEV_DIR.parent / SOURCES.get(name, name)


def _items(name: str) -> list[datasets.Item]:
    return list(datasets.jsonl(datasets.DEV_DIR.parent / name / "items.jsonl").items())


def _of_kind(name: str, kind: str) -> list[datasets.Item]:
    items = [i for i in _items(name) if i.id.startswith(f"{name}-{kind}-")]
    assert len(items) == SETS[name].get(kind, 0)
    return items


@pytest.fixture(scope="module", params=sorted(SETS))
async def probe(request):
    """A set's name and the URL of a read-only role on its company.sql in a scratch database; both dropped after."""
    name = request.param
    database, role = f"stepwise_{name}test_{os.getpid()}", f"stepwise_{name}test_reader_{os.getpid()}"
    yield name, await devdb.reader_url(ADMIN_URL, _source(name) / "company.sql", database, role)
    await drop_scratch(database, [role])


@pytest.mark.parametrize("probe", ["probe2"], indirect=True)
async def test_the_sql_tool_moves_a_filter_on_a_city_to_the_city_column(probe):
    """On probe2's database, a department "named" after its city is found by its city: the tool moves the filter and
    answers as the query written right does."""
    _, reader_url = probe
    tool = await SqlTool.connect(reader_url)
    direct = await tool.run(SqlArgs("SELECT count(*) FROM employees e JOIN departments d ON d.id = e.department_id "
                                    "WHERE d.city = 'Porto'"))
    moved = await tool.run(SqlArgs("SELECT count(*) FROM employees WHERE department_id = "
                                   "(SELECT id FROM departments WHERE name = 'Porto')"))
    assert moved == direct and direct["rows"][0][0] > 0


@pytest.mark.parametrize("probe", ["probe4"], indirect=True)
async def test_a_name_kept_in_first_and_last_name_columns_is_a_name_the_database_holds(probe):
    """probe4 keeps a person's name in `first_name` and `last_name`: the tool knows it whole, as a question names it."""
    _, reader_url = probe
    tool = await SqlTool.connect(reader_url)
    assert {"aino virtanen", "lotte van der heijden"} <= tool.names and "aino" not in tool.names


async def test_every_database_items_reference_query_gives_its_answer(probe):
    """One row, one column, equal to the expected answer, through the sql tool as an eval's runs would query."""
    name, reader_url = probe
    tool = await SqlTool.connect(reader_url)
    for item in _of_kind(name, "sql"):
        assert_one_cell(await tool.run(SqlArgs(item.meta["check_sql"])), item)


@pytest.mark.parametrize("name", sorted(SETS))
def test_every_document_items_answer_is_in_the_articles(name: str):
    """The expected name or year is written in some article, and each recorded hop's words in its own article."""
    docs = _source(name) / "docs"
    text = " ".join(p.read_text() for p in Path(docs).glob("*.md"))
    for item in _of_kind(name, "docs"):
        assert str(item.answer) in text, item.id
        for hop in item.meta.get("hops", ()):
            article = (docs / hop["file"]).read_text()
            assert all(word in article for word in hop["words"]), (item.id, hop)


@pytest.mark.parametrize("name", sorted(name for name, kinds in SETS.items() if "arithmetic" in kinds))
def test_every_computed_item_checks_out(name: str):
    """Each word problem's and comparison's check computes its answer (a name by its choices); each puzzle's recorded
    solution makes 24 from its numbers."""
    for item in _of_kind(name, "arithmetic") + _of_kind(name, "comparison"):
        value = eval(item.meta["check"], {"__builtins__": {"round": round, "min": min, "max": max, "abs": abs}})  # noqa: S307
        assert value == item.answer, (item.id, value)
        if "choices" in item.meta:
            assert item.answer in item.meta["choices"], item.id
    for item in _of_kind(name, "game24"):
        assert check_24(item.meta["solution"], item.meta["numbers"]).correct, item.id
