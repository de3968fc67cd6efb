"""The read-only SQL tool against a real Postgres holding a small company database: it shows the schema, answers
SELECTs within its row limit, and cannot write, however it is asked. It logs in as the read-only role
`ensure_readonly_role` makes, as users are told to (tests/security/test_sql_privileges.py: what other roles get)."""

from __future__ import annotations

import os
import time

import asyncpg
import msgspec
import pytest

from stepwise.reasoning.types import Plan
from stepwise.tools.sql import SqlTool
from tests.conftest import readonly_database
from tests.conftest import sql_query as query

COMPANY_DB = f"stepwise_company_{os.getpid()}"
READER = f"stepwise_reader_{os.getpid()}"  # roles are cluster-wide: one per session too
SCHEMA = """
CREATE TABLE departments (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE employees (id int PRIMARY KEY, name text NOT NULL, department_id int REFERENCES departments,
                        salary numeric(10,2));
INSERT INTO departments VALUES (1, 'Research'), (2, 'Sales');
INSERT INTO employees SELECT i, 'employee ' || i, 1 + i % 2, 40000 + i * 100 FROM generate_series(1, 120) i;
CREATE TABLE shifts (employee_id int REFERENCES employees, night boolean NOT NULL, starts_on date NOT NULL);
INSERT INTO shifts SELECT i, i % 3 = 0, DATE '2024-01-01' + i FROM generate_series(1, 120) i;
"""


@pytest.fixture(scope="module")
async def company_url():
    """The company database as the sql tool sees it: through a read-only role made by `stepwise sql-role`'s function."""
    async with readonly_database(COMPANY_DB, READER, SCHEMA) as url:
        yield url


async def test_the_description_shows_tables_columns_types_and_sample_rows(company_url):
    """What the planner reads before writing a query: every table, its typed columns (a text column's values when it
    has few), and example rows."""
    tool = await SqlTool.connect(company_url)
    assert "table departments(id integer, name text (Research, Sales))" in tool.description
    assert "table employees(id integer, name text, department_id integer, salary numeric)" in tool.description
    assert 'e.g. {"id":1,"name":"Research"}' in tool.description


async def test_the_tool_knows_the_names_of_several_words_its_rows_hold(company_url):
    """Texts of two to four words (an employee's name) are what a question may name a row by, in lower case; single
    words are the listed values' business."""
    tool = await SqlTool.connect(company_url)
    assert "employee 7" in tool.names and "employee 120" in tool.names
    assert "research" not in tool.names and len(tool.names) == 120


async def test_the_tool_knows_the_capitalised_single_words_its_rows_hold(company_url):
    """A one-word name ("Research") is known too, apart, in lower case; texts of several words, or not capitalised
    ("employee 7"), are not such words."""
    tool = await SqlTool.connect(company_url)
    assert tool.words == {"research", "sales"}


async def test_a_select_answers_within_the_row_limit(company_url):
    """Rows come back as JSON values with their columns; past the limit they are cut and the cut is said."""
    tool = await SqlTool.connect(company_url, row_limit=50)
    result = await query(tool,
                         "SELECT d.name, count(*) AS n FROM employees e JOIN departments d ON d.id = e.department_id "
                         "GROUP BY d.name ORDER BY d.name")
    assert result == {"columns": ["name", "n"], "rows": [["Research", 60], ["Sales", 60]], "truncated": False}
    many = await query(tool, "SELECT id, salary FROM employees ORDER BY id")
    assert len(many["rows"]) == 50 and many["truncated"] is True and many["rows"][0] == [1, "40100.00"]


@pytest.mark.parametrize("sql", [
    "INSERT INTO departments VALUES (3, 'Legal')",
    "UPDATE employees SET salary = 0",
    "DELETE FROM employees",
    "DROP TABLE employees",
    "CREATE TABLE stolen AS SELECT * FROM employees",
    "SELECT 1; DROP TABLE employees",
    "WITH gone AS (DELETE FROM employees RETURNING *) SELECT count(*) FROM gone",
])
async def test_writes_are_refused_however_they_are_asked(company_url, sql):
    """Writes, DDL, a second statement and data-modifying CTEs all fail; the data is untouched."""
    tool = await SqlTool.connect(company_url)
    with pytest.raises(ValueError):
        await query(tool, sql)
    conn = await asyncpg.connect(company_url)
    assert await conn.fetchval("SELECT count(*) FROM employees") == 120
    assert await conn.fetchval("SELECT min(salary) FROM employees") > 0
    await conn.close()


async def test_a_column_the_querys_table_lacks_is_refused_naming_the_tables_that_have_it(company_url):
    """`salary` asked of departments: the refusal says it is a column of employees, so a rewrite knows what to join;
    a column no table has is said so."""
    tool = await SqlTool.connect(company_url)
    with pytest.raises(ValueError, match='column "salary" does not exist; salary is a column of employees'):
        await query(tool, "SELECT avg(salary) FROM departments")
    with pytest.raises(ValueError, match="no table has a column headcount"):
        await query(tool, "SELECT d.headcount FROM departments d")


async def test_a_slow_query_is_stopped_by_the_statement_timeout(company_url):
    """pg_sleep(5) under a 200 ms timeout fails fast, naming the cancellation."""
    tool = await SqlTool.connect(company_url, timeout_ms=200)
    started = time.monotonic()
    with pytest.raises(ValueError, match="QueryCanceledError"):
        await query(tool, "SELECT pg_sleep(5)")
    assert time.monotonic() - started < 2


@pytest.mark.model
async def test_a_database_and_a_document_lookup_run_in_parallel_verified_and_cited(company_url, database_url, pg):
    """Through the whole server stack: the sql and docs steps of one plan overlap in time, each is verified, and
    the composed answer cites both (real SmolLM2 composing)."""
    from pathlib import Path

    from stepwise.app.runtime import Runtime
    from tests.conftest import settings_for

    docs = Path(__file__).resolve().parent.parent / "fixtures" / "docs"
    runtime = await Runtime.start(settings_for(database_url, "smollm2", sql_url=company_url, docs_dir=docs))
    plan = msgspec.convert({"steps": [
        {"id": 1, "kind": "tool", "target": "sql",
         "input": {"query": "SELECT count(*) AS n FROM employees e JOIN departments d ON d.id = e.department_id "
                            "WHERE d.name = 'Research'"}, "depends_on": []},
        {"id": 2, "kind": "tool", "target": "docs", "input": {"query": "vacation days per year", "k": 1},
         "depends_on": []},
    ]}, type=Plan)
    try:
        # The deadline only bounds a hung run: SmolLM2's composing takes seconds alone and minutes beside another suite.
        report = await runtime.ask("How many people work in Research, and how many vacation days do they get?", 600,
                                   plan=plan)
    finally:
        await runtime.close()
    sql, docs_step = report.steps
    assert sql.output["rows"] == [[60]] and docs_step.output[0]["source"] == "handbook.md:5"
    assert sql.started_at < docs_step.finished_at and docs_step.started_at < sql.finished_at  # they overlapped
    assert all(v.outcome == "pass" for s in report.steps for v in s.verdicts) and all(s.verdicts for s in report.steps)
    assert report.status == "finished", report.error
    assert report.answer.uses and set(report.answer.uses) <= {1, 2}  # the schema makes it cite, and only real steps
    rows = await pg.fetch("SELECT tool, error FROM tool_calls WHERE run_id = $1 ORDER BY tool", report.run_id)
    assert [(r["tool"], r["error"]) for r in rows] == [("docs", None), ("sql", None)]


@pytest.mark.model
@pytest.mark.slow
async def test_the_planner_answers_a_question_needing_the_database_and_the_documents(company_url, database_url, pg):
    """Qwen's program queries the database and reads the documents for a question that needs both (the headcount is
    in the database, the vacation policy in the handbook); they run in parallel, pass their verifiers, and the answer
    states both, citing the steps and the handbook's passage."""
    from pathlib import Path

    from stepwise.app.runtime import Runtime
    from tests.conftest import settings_for

    docs = Path(__file__).resolve().parent.parent / "fixtures" / "docs"
    # One greedy program (no sampling at temperature): the same plan on every run of the test.
    runtime = await Runtime.start(settings_for(database_url, "qwen", sql_url=company_url, docs_dir=docs,
                                               plan_samples=1))
    try:
        report = await runtime.ask("How many people work in Research, and how many vacation days do they get?", 600)
    finally:
        await runtime.close()
    assert report.status == "finished", report.error
    by_tool = {s.target: s for s in report.steps}
    assert {"sql", "docs"} <= set(by_tool), [s.target for s in report.steps]
    assert by_tool["sql"].output["rows"] == [[60]]
    assert any("25" in passage["text"] for passage in by_tool["docs"].output)
    assert "60" in report.answer.text and "25" in report.answer.text
    sql, docs_step = by_tool["sql"], by_tool["docs"]
    assert sql.started_at < docs_step.finished_at and docs_step.started_at < sql.finished_at  # in parallel
    assert all(v.outcome == "pass" for s in (sql, docs_step)
               for v in s.verdicts) and sql.verdicts and docs_step.verdicts
    reader = next(s for s in report.steps if s.kind == "expert" and docs_step.id in s.depends_on)
    assert {sql.id, reader.id} <= set(report.answer.uses)  # cited: the query and the reading of the documents
    assert "handbook.md:" in report.answer.text  # and the passage the days were read from
    tools_used = "SELECT count(DISTINCT tool) FROM tool_calls WHERE run_id = $1 AND tool IN ('sql', 'docs')"
    assert await pg.fetchval(tools_used, report.run_id) == 2


async def test_a_query_finding_nothing_through_a_filter_on_a_text_the_column_never_holds_is_refused(company_url):
    """`name = 'research'` matches nothing and would answer 0: refused, naming the column's values and where the text
    is, so the rewrite can spell it; a value the column holds, a query that found rows, and a column whose values are
    not listed run as written."""
    tool = await SqlTool.connect(company_url)
    with pytest.raises(ValueError, match=r"found nothing: name has no value 'research' \(its values: Research, "
                                         r"Sales\)$"):
        await query(tool, "SELECT count(*) FROM departments d WHERE d.name = 'research'")
    with pytest.raises(ValueError, match=r"found nothing: no row has name 'sales'; 'Sales' is a value of departments"):
        await query(tool, "SELECT count(*) FROM employees e JOIN departments d ON d.id = e.department_id "
                          "WHERE e.name = 'sales'")
    assert (await query(tool, "SELECT count(*) FROM departments WHERE name = 'Sales'"))["rows"] == [[1]]
    assert (await query(tool, "SELECT count(*) FROM employees WHERE name = 'nobody'"))["rows"] == [[0]]
    assert (await query(tool, "SELECT count(*) FROM departments WHERE name = 'Sales' OR name = 'x'"))["rows"] == [[1]]


def test_a_filter_is_read_against_the_tables_the_query_reads_by_name_or_alias():
    """Qualifiers resolve through FROM/JOIN aliases; a column of a table the query does not read is not judged."""
    from stepwise.tools.sql import unlisted

    listed = {"bikes": {"kind": ["cargo", "city", "electric"]}}
    tables = {"bikes": ["bike_id", "model", "kind"], "rentals": ["member_id", "bike_id", "minutes"]}
    sub = "SELECT count(DISTINCT member_id) FROM rentals WHERE bike_id IN (SELECT bike_id FROM bikes WHERE {})"
    assert unlisted(sub.format("model = 'Electric'"), listed, tables) == (
        "no row has model 'Electric'; 'electric' is a value of bikes.kind")
    assert unlisted(sub.format("kind = 'Cargo'"), listed, tables) == (
        "kind has no value 'Cargo' (its values: cargo, city, electric)")
    assert unlisted("SELECT count(*) FROM rentals r JOIN bikes AS b ON b.bike_id = r.bike_id WHERE b.kind = 'city'",
                    listed, tables) is None
    assert unlisted("SELECT count(*) FROM rentals WHERE kind = 'x'", listed, tables) is None


def test_a_filter_on_a_text_one_other_column_of_its_table_holds_is_moved_to_that_column():
    """`name = 'Ghent'` where departments.city lists 'Ghent' compares city instead (as listed); a text no other
    column holds, held by a column of another table, or by two columns, is left for the refusal to explain."""
    from stepwise.tools.sql import moved_filter

    listed = {"departments": {"name": ["Finance", "Sales"], "city": ["Ghent", "Lyon"], "region": ["Lyon", "North"]},
              "projects": {"status": ["active", "done"]}}
    tables = {"departments": ["id", "name", "city", "region"], "projects": ["id", "department_id", "status"]}
    sub = "SELECT count(*) FROM projects p WHERE p.department_id IN (SELECT d.id FROM departments d WHERE {})"
    assert moved_filter(sub.format("d.name = 'ghent'"), listed, tables) == sub.format("d.city = 'Ghent'")
    assert moved_filter("SELECT 1 FROM departments WHERE name = 'Ghent'", listed, tables) == (
        "SELECT 1 FROM departments WHERE city = 'Ghent'")
    assert moved_filter("SELECT 1 FROM departments WHERE name = 'Paris'", listed, tables) is None
    assert moved_filter("SELECT 1 FROM departments WHERE name = 'active'", listed, tables) is None
    assert moved_filter("SELECT 1 FROM departments WHERE name = 'Lyon'", listed, tables) is None  # city or region
    unlisted_name = {"departments": {"city": ["Ghent", "Lyon"]}}  # name's values unknown: it may hold 'Ghent'
    assert moved_filter("SELECT 1 FROM departments WHERE name = 'Ghent'", unlisted_name, tables) is None


async def test_a_comparison_with_a_subquery_finding_several_rows_matches_any_of_them(company_url):
    """`= (SELECT …)` finding two departments fails in Postgres; the tool runs it as `IN (SELECT …)` (its result as
    any query's: the vote compares rows). A comparison without such a subquery is refused with the way to write it."""
    tool = await SqlTool.connect(company_url)
    result = await query(tool, "SELECT count(*) FROM employees WHERE department_id = (SELECT id FROM departments)")
    assert result == {"columns": ["count"], "rows": [[120]], "truncated": False}
    with pytest.raises(ValueError, match=r"more than one row .*compare with IN \(SELECT …\)"):
        await query(tool, "SELECT count(*) FROM employees WHERE department_id > (SELECT id FROM departments)")


async def test_sqlite_and_mysql_comparisons_postgres_has_no_operator_for_run_in_postgres_types(company_url):
    """`night = 1` and `starts_on LIKE '2024-02%'` (as SQLite and MySQL take them) have no operator in Postgres;
    the tool runs them as `night = true` and `starts_on::text LIKE '2024-02%'`, which is what they meant, and
    `night <> 1` as `night = false`. A text column compared with a number stays the query's fault."""
    tool = await SqlTool.connect(company_url)
    assert tool.flags == {"night"}
    assert (await query(tool, "SELECT count(*) FROM shifts s WHERE s.night = 1"))["rows"] == [[40]]
    assert (await query(tool, "SELECT count(*) FROM shifts WHERE night <> 1"))["rows"] == [[80]]
    assert (await query(tool, "SELECT count(*) FROM shifts WHERE starts_on LIKE '2024-02%'"))["rows"] == [[29]]
    with pytest.raises(ValueError, match="operator does not exist: text = integer"):
        await query(tool, "SELECT count(*) FROM departments WHERE name = 1")


async def test_a_column_its_table_lacks_is_renamed_to_the_one_holding_its_words(company_url):
    """`s.starts` where shifts has `starts_on` runs as `s.starts_on`; a column no name holds stays the query's
    fault, refused with the tables that have it, as does a failed rewrite (with the written query's reason)."""
    tool = await SqlTool.connect(company_url)
    assert (await query(tool, "SELECT max(s.starts) FROM shifts s"))["rows"] == [["2024-04-30"]]
    with pytest.raises(ValueError, match="no table has a column headcount"):
        await query(tool, "SELECT headcount FROM departments")
    with pytest.raises(ValueError, match='column "starts" does not exist'):
        await query(tool, "SELECT starts FROM shifts WHERE starts_on > 5")  # renamed, it fails: date > integer


def test_a_missing_column_is_renamed_only_where_one_column_of_its_one_table_holds_its_words():
    """As qualified (any case), or everywhere unqualified outside quoted text when one table is read; not where
    two columns, or none, could be meant, nor a key for a name, nor a type's name."""
    from stepwise.tools.sql import renamed_column

    tables = {"employees": ["id", "full_name", "manager_id", "start_date"], "departments": ["id", "name"],
              "people": ["id", "first_name", "last_name"]}
    assert renamed_column("SELECT M.name FROM employees e JOIN employees M ON M.id = e.manager_id WHERE e.full_name"
                          " = 'a name'", "column m.name does not exist", tables) == (
        "SELECT m.full_name FROM employees e JOIN employees M ON M.id = e.manager_id WHERE e.full_name = 'a name'")
    assert renamed_column("SELECT name FROM employees WHERE name <> 'name'", 'column "name" does not exist',
                          tables) == "SELECT full_name FROM employees WHERE full_name <> 'name'"
    joined = "SELECT name FROM employees e JOIN people p ON p.id = e.id"
    assert renamed_column(joined, 'column "name" does not exist', tables) is None  # either table's
    assert renamed_column("SELECT name FROM people", 'column "name" does not exist', tables) is None  # two
    assert renamed_column("SELECT manager FROM employees", 'column "manager" does not exist', tables) is None
    assert renamed_column("SELECT 1 FROM employees WHERE start_date > DATE '2022-01-01'",
                          'column "date" does not exist', tables) is None


async def test_a_key_compared_with_another_tables_ids_is_refused_before_it_runs(company_url):
    """`department_id = (SELECT id FROM employees …)` runs in Postgres (ids are numbers either way) and finds the
    wrong rows; the tool refuses it, naming the table the key's ids are of."""
    tool = await SqlTool.connect(company_url)
    with pytest.raises(ValueError, match="department_id holds ids of departments, not of employees"):
        await query(tool, "SELECT count(*) FROM employees WHERE department_id = (SELECT id FROM employees "
                          "WHERE name = 'employee 7')")
    assert (await query(tool, "SELECT count(*) FROM employees WHERE department_id IN (SELECT d.id FROM departments d "
                              "WHERE d.name = 'Sales')"))["rows"] == [[60]]


def test_a_key_is_crossed_only_where_a_table_is_named_after_it_and_the_subquery_reads_another():
    """A key named after no table (`manager_id`), one compared with its own table's ids, with a joining subquery's
    or with those of a table whose name holds its own (`active_employees`), or quoted text, is not."""
    from stepwise.tools.sql import crossed_key

    tables = ["departments", "employees", "categories"]
    assert crossed_key("SELECT 1 FROM e WHERE e.category_id IN (SELECT id FROM employees)", tables) is not None
    assert crossed_key("SELECT 1 FROM e WHERE manager_id = (SELECT id FROM employees)", tables) is None
    assert crossed_key("SELECT 1 FROM e WHERE department_id = (SELECT id FROM departments)", tables) is None
    assert crossed_key("SELECT 1 FROM e WHERE x = 'department_id = (SELECT id FROM employees'", tables) is None
    assert crossed_key("SELECT 1 FROM p WHERE department_id = (SELECT d.id FROM employees e JOIN departments d ON "
                       "d.id = e.department_id WHERE e.id = 3)", tables) is None  # the id may be either table's
    assert crossed_key("SELECT 1 FROM p WHERE employee_id IN (SELECT id FROM active_employees)", tables) is None


async def test_an_undefined_alias_is_written_as_the_one_defined_with_its_digit(company_url):
    """`s2.name` over `employees e2` (a worked example's alias copied without its join) runs as `e2.name`; an alias
    no defined one shares a digit with stays the query's fault."""
    tool = await SqlTool.connect(company_url)
    assert (await query(tool, "SELECT s2.name FROM employees e JOIN departments e2 ON e2.id = e.department_id "
                              "WHERE e.name = 'employee 7'"))["rows"] == [["Sales"]]
    with pytest.raises(ValueError, match='missing FROM-clause entry for table "x"'):
        await query(tool, "SELECT x.name FROM employees e")


def test_an_alias_is_realiased_only_to_the_one_alias_with_its_digit():
    """Not in quoted text; not where two aliases, or none, end with the digit."""
    from stepwise.tools.sql import realiased

    tables = {"employees": ["id", "name", "manager_id"]}
    error = 'missing FROM-clause entry for table "s2"'
    assert realiased("SELECT s2.name FROM employees e JOIN employees e2 ON e2.id = e.manager_id WHERE e.name = "
                     "'s2.x'", error, tables) == (
        "SELECT e2.name FROM employees e JOIN employees e2 ON e2.id = e.manager_id WHERE e.name = 's2.x'")
    assert realiased("SELECT s2.name FROM employees e2 JOIN employees m2 ON m2.id = e2.manager_id", error,
                     tables) is None
    assert realiased("SELECT s2.name FROM employees e", error, tables) is None


def test_only_flags_compared_with_a_lone_one_or_zero_and_columns_matched_with_like_are_rewritten():
    """Quoted text, other columns, other numbers and operands already cast are left as written."""
    from stepwise.tools.sql import in_postgres_types

    query_ = "SELECT 1 FROM a WHERE a.is_lead = 1 AND x = 1 AND note = 'is_lead = 1' AND is_lead != 0 AND is_lead = 10"
    assert in_postgres_types(query_, {"is_lead"}) == (
        "SELECT 1 FROM a WHERE a.is_lead = true AND x = 1 AND note = 'is_lead = 1' AND is_lead = true AND is_lead = 10")
    assert in_postgres_types("SELECT 1 FROM a WHERE is_lead = 0", set()) == "SELECT 1 FROM a WHERE is_lead = 0"
    assert in_postgres_types("SELECT 1 FROM e WHERE NOT e.hired like '2022%' AND d::text LIKE 'x like y'", set()) == (
        "SELECT 1 FROM e WHERE NOT e.hired::text like '2022%' AND d::text LIKE 'x like y'")


def test_a_whole_condition_comparing_a_column_with_itself_is_found_outside_quoted_text():
    """`x = x` as a whole condition is found; part of a longer expression, between two columns or in text it is not."""
    from stepwise.tools.sql import self_compared

    assert self_compared("SELECT count(*) FROM books WHERE branch_id = branch_id") == "branch_id = branch_id"
    assert self_compared("SELECT 1 FROM books b WHERE b.id=B.ID AND x > 2") == "b.id=B.ID"
    assert self_compared("SELECT 1 FROM a JOIN b ON a.id = a.id") == "a.id = a.id"
    assert self_compared("SELECT sum(CASE WHEN (kind = kind) THEN 1 END) FROM t") == "kind = kind"
    for fine in ("SELECT count(*) FROM a JOIN b ON a.id = b.id", "SELECT 1 FROM t WHERE 1 = 1",
                 "SELECT 1 FROM t WHERE true = true", "SELECT 1 FROM t WHERE name = 'name = name'",
                 "SELECT 1 FROM t WHERE id = id2", "SELECT 1 FROM t WHERE a.id = a.id2",
                 "SELECT 1 FROM t WHERE id = idx(id)", "SELECT 1 FROM t WHERE x = x + 1",
                 "SELECT 1 FROM t WHERE price = price::int", "SELECT 1 FROM t WHERE b - a = a"):
        assert self_compared(fine) is None, fine


async def test_a_query_comparing_a_column_with_itself_is_refused_before_it_connects():
    """The refusal names the condition and comes before the database is reached (this URL reaches none)."""
    tool = SqlTool("postgresql://stepwise@127.0.0.1:1/nothing", "")
    with pytest.raises(ValueError, match=r"^the condition department_id = department_id compares a column with itself"):
        await query(tool, "SELECT count(*) FROM employees WHERE department_id = department_id")


def test_a_person_is_named_in_two_columns_only_where_a_table_has_one_first_and_one_last_name_column():
    """`split_name`: first_name/last_name, given_name/surname; not two candidates for a part, nor a non-text column."""
    from stepwise.tools.sql import split_name

    assert split_name([("id", "integer"), ("first_name", "text"), ("last_name", "text")]) == ("first_name", "last_name")
    assert split_name([("given_name", "character varying"), ("surname", "text")]) == ("given_name", "surname")
    assert split_name([("first_name", "text"), ("firstname", "text"), ("last_name", "text")]) is None
    assert split_name([("first_name", "text"), ("last_name", "integer")]) is None
    assert split_name([("name", "text"), ("first_seen", "date")]) is None
    assert split_name([("first", "text"), ("last", "text")]) is None  # a first and a last what?


def test_a_filter_on_a_column_of_a_table_the_query_does_not_read_goes_through_the_key_they_share():
    """`filtered_through_key`: `client = 'X'` over allocations, where projects alone has client and allocations
    refers to it by project_id (named alike or `id`); not where the column is also selected, nor two tables have it,
    nor no key is shared, nor where the query reads several tables."""
    from stepwise.tools.sql import filtered_through_key

    tables = {"allocations": ["staff_id", "project_id", "weekly_hours"], "projects": ["project_id", "client"],
              "staff": ["staff_id", "team"]}
    error = 'column "client" does not exist'
    query = "SELECT sum(weekly_hours) FROM allocations WHERE client = 'Bank' AND weekly_hours > 2"
    assert filtered_through_key(query, error, tables) == (
        "SELECT sum(weekly_hours) FROM allocations WHERE project_id IN (SELECT project_id FROM projects WHERE "
        "client = 'Bank') AND weekly_hours > 2")
    assert filtered_through_key("SELECT 1 FROM allocations a WHERE a.client LIKE 'B%'", 'column a.client does not '
                                "exist", tables) == ("SELECT 1 FROM allocations a WHERE a.project_id IN (SELECT "
                                                     "project_id FROM projects WHERE client LIKE 'B%')")
    by_id = {"assignments": ["project_id", "hours"], "projects": ["id", "status"]}
    assert filtered_through_key("SELECT sum(hours) FROM assignments WHERE status = 'open'",
                                'column "status" does not exist', by_id) == (
        "SELECT sum(hours) FROM assignments WHERE project_id IN (SELECT id FROM projects WHERE status = 'open')")
    assert filtered_through_key("SELECT client FROM allocations WHERE client = 'Bank'", error, tables) is None
    assert filtered_through_key("SELECT sum(weekly_hours) FROM allocations WHERE client = 'Bank' GROUP BY client",
                                error, tables) is None
    assert filtered_through_key("SELECT 1 FROM allocations WHERE team = 'x'", 'column "team" does not exist',
                                tables) == ("SELECT 1 FROM allocations WHERE staff_id IN (SELECT staff_id FROM staff "
                                            "WHERE team = 'x')")
    offices = {**tables, "teams": ["team_id", "office"]}
    assert filtered_through_key("SELECT 1 FROM allocations WHERE office = 'x'", 'column "office" does not exist',
                                offices) is None  # allocations has no team_id
    two = {**tables, "invoices": ["client"]}
    assert filtered_through_key(query, error, two) is None
    assert filtered_through_key("SELECT 1 FROM allocations a JOIN staff s ON s.staff_id = a.staff_id WHERE "
                                "client = 'Bank'", error, tables) is None


def test_a_whole_name_compared_with_one_of_its_two_columns_compares_both_joined():
    """`whole_named`: `first_name = 'Mei Zhou'` (several words) and a missing `name`, `full_name` or `<table>_name`
    column, on a table keeping names in two columns; a one-word first name, another thing's name (`team_name`), or
    quoted text stay."""
    from stepwise.tools.sql import whole_named

    tables = {"staff": ["staff_id", "first_name", "last_name"], "teams": ["team_id", "name"]}
    split = {"staff": ("first_name", "last_name")}
    assert whole_named("SELECT staff_id FROM staff WHERE first_name = 'Mei Zhou'", tables, split) == (
        "SELECT staff_id FROM staff WHERE (first_name || ' ' || last_name) = 'Mei Zhou'")
    assert whole_named("SELECT 1 FROM staff s WHERE s.last_name = 'Mei Zhou'", tables, split) == (
        "SELECT 1 FROM staff s WHERE (s.first_name || ' ' || s.last_name) = 'Mei Zhou'")
    assert whole_named("SELECT 1 FROM staff WHERE first_name = 'Mei'", tables, split) is None
    assert whole_named("SELECT 1 FROM staff WHERE x = 'first_name = ''A B'''", tables, split) is None
    missing = "SELECT m.name FROM staff s JOIN staff m ON m.staff_id = s.staff_id WHERE s.staff_id = 1"
    assert whole_named(missing, tables, split, error='column m.name does not exist') == (
        "SELECT (m.first_name || ' ' || m.last_name) FROM staff s JOIN staff m ON m.staff_id = s.staff_id "
        "WHERE s.staff_id = 1")
    assert whole_named("SELECT staff_id FROM staff WHERE full_name = 'A B'", tables, split,
                       error='column "full_name" does not exist') == (
        "SELECT staff_id FROM staff WHERE (first_name || ' ' || last_name) = 'A B'")
    assert whole_named("SELECT 1 FROM staff WHERE title = 'x'", tables, split,
                       error='column "title" does not exist') is None
    assert whole_named("SELECT 1 FROM staff WHERE staff_name = 'A B'", tables, split,
                       error='column "staff_name" does not exist') is not None
    assert whole_named("SELECT 1 FROM staff WHERE team_name = 'Design'", tables, split,
                       error='column "team_name" does not exist') is None  # another thing's name
    assert whole_named("SELECT 1 FROM staff WHERE st_name = 'A B'", tables, split,
                       error='column "st_name" does not exist') is None  # not the table's name
