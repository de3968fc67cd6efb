"""The schema grammar with a real model and a real database: SmolLM2 (weak, fast) decoding under the sql tool's
grammar in llama.cpp writes queries that parse, name only what the schema has, and run on Postgres; and a query
that names a column the table lacks is repaired inside its step by the model under that grammar.

The database has one table, so the grammar's approximations (a bare column may be any table's; an alias may stand
for any table it prefixes) are exact here, and what remains for Postgres to refuse is only what a grammar cannot
see: types, grouping. SmolLM2 writes poor queries; these tests hold the constraint to its word, not the model."""

from __future__ import annotations

import asyncio
import os
import re

import pytest

from stepwise.reasoning import events as ev
from stepwise.reasoning.engine import Engine
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.repair import repair_grammar
from stepwise.reasoning.report import fold
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import Answer, Expert, Grammar, Message, Plan, Sampling, ToolStep
from stepwise.tools.sql import SqlArgs, SqlTool
from stepwise.verifiers import default_verifiers
from stepwise.verifiers.policy import VerdictPolicy
from tests.conftest import readonly_role, scratch_database
from tests.unit.test_sql_grammar import accepts

pytestmark = pytest.mark.model

SCRATCH_DB = f"stepwise_sqlgrammar_{os.getpid()}"
READER = f"stepwise_sqlgrammar_reader_{os.getpid()}"
SCHEMA = """
CREATE TABLE employees (id int PRIMARY KEY, name text NOT NULL, department text NOT NULL, salary numeric(10, 2),
                        hired_year int NOT NULL);
INSERT INTO employees VALUES (1, 'Ann Lee', 'Research', 52000, 2019), (2, 'Bo Chan', 'Sales', 48000, 2021),
    (3, 'Cy Diaz', 'Research', 61000, 2022), (4, 'Di Park', 'Support', 39000, 2020);
"""
QUESTIONS = ["How many employees are there?", "What is the average salary in the Research department?",
             "Who earns the most?", "How many employees were hired after 2020?"]
# Errors the grammar exists to prevent; anything else Postgres refuses (types, grouping) is beyond a grammar.
PREVENTED = ("PostgresSyntaxError", "UndefinedTableError", "UndefinedColumnError")


@pytest.fixture(scope="module")
async def tool():
    """The sql tool on a scratch database, logged in as a read-only role, its grammar built at connect."""
    async with scratch_database(SCRATCH_DB, roles=[READER]) as url:
        yield await SqlTool.connect(await readonly_role(url, READER, SCHEMA))


@pytest.fixture(scope="module")
async def backend(smollm2_llama):
    backend = smollm2_llama.new_backend()
    yield backend
    await backend.aclose()


def names_outside_the_schema(query: str, tables: dict[str, list[str]]) -> set[str]:
    """The lower-case names in a query (string literals aside) that are no table, column, function, type, alias
    (a table's prefix, maybe with a digit) or output label."""
    words = set(re.findall(r"[a-z_][a-z0-9_]*", re.sub(r"'(?:[^']|'')*'", "''", query)))
    known = {*tables, *(c for cols in tables.values() for c in cols), *re.findall(r" AS ([a-z_][a-z0-9_]*)", query),
             "count", "sum", "avg", "min", "max", "round", "abs", "lower", "upper", "length", "coalesce",
             "numeric", "float", "integer", "int", "text", "date"}
    alias = re.compile("|".join(f"{re.escape(t[:n])}[1-9]?" for t in tables for n in (1, 2, 3)))
    return {w for w in words - known if not alias.fullmatch(w)}


async def test_queries_decoded_under_the_grammar_parse_name_only_the_schema_and_run(tool, backend):
    """For each question: the query llama.cpp let SmolLM2 write is in the grammar's language (checked again by
    llguidance), names nothing the table lacks, and Postgres never refuses it as a syntax error or an unknown name;
    most of them run."""
    assert tool.tables == {"employees": ["id", "name", "department", "salary", "hired_year"]}
    assert "department text (Research, Sales, Support)" in tool.description
    grammar = repair_grammar(tool)
    ran = 0
    for question in QUESTIONS:
        messages = [Message("system", f"You write one PostgreSQL query for a tool that {tool.description}"),
                    Message("user", question)]
        deadline = asyncio.get_running_loop().time() + 180
        completion = await backend.generate(messages, constraint=Grammar(grammar), sampling=Sampling(max_tokens=120),
                                            deadline=deadline)
        assert completion.finish_reason == "stop", completion.text
        query = completion.text.strip().removesuffix(";")
        assert accepts(f"%llguidance {{}}\nstart: sql_arg\n{tool.grammar}", query), query
        assert names_outside_the_schema(query, tool.tables) == set(), query
        try:
            await tool.run(SqlArgs(query))
            ran += 1
        except ValueError as refused:
            assert not str(refused).startswith(PREVENTED), (query, str(refused))
    assert ran >= len(QUESTIONS) // 2


async def test_asked_to_echo_unknown_names_the_model_cannot(tool, backend):
    """Told to repeat `SELECT headcount FROM staff` (unconstrained, SmolLM2 does), it can only write a query over
    the schema: neither name appears outside a string literal."""
    messages = [Message("user", "Repeat exactly: SELECT headcount FROM staff")]
    deadline = asyncio.get_running_loop().time() + 180
    completion = await backend.generate(messages, constraint=Grammar(repair_grammar(tool)),
                                        sampling=Sampling(max_tokens=60), deadline=deadline)
    query = completion.text.strip().removesuffix(";")
    assert completion.finish_reason == "stop" and accepts(f"%llguidance {{}}\nstart: sql_arg\n{tool.grammar}",
                                                          query), query
    assert names_outside_the_schema(query, tool.tables) == set(), query


class Composer:
    """The answer is not under test here: the step's rows, as they came."""

    async def compose(self, question, dag, outputs, ctx, *args, **kwargs) -> Answer:
        return Answer(text=repr(outputs))


async def test_a_query_naming_a_missing_column_is_repaired_inside_its_step(tool, backend):
    """`SELECT headcount FROM employees` fails in Postgres; SmolLM2, shown the schema and the error and decoding
    under the grammar, writes a query that runs: the step finishes without a replan, each try recorded."""
    router = Router({"general": Expert(name="general", backend=backend)}, "general")
    engine = Engine(router, {"sql": tool}, default_verifiers({"sql": tool}), composer=Composer(),
                    policy=VerdictPolicy(max_replans=0))
    recorder = ev.Recorder()
    plan = Plan([ToolStep(1, "sql", {"query": "SELECT headcount FROM employees"})])
    await engine.run("How many employees are there?", RunOptions(deadline_s=300, plan=plan), sink=recorder)
    report = fold(recorder.events)
    calls = [e for e in recorder.events if isinstance(e, ev.ToolCalled)]
    repairs = [e for e in recorder.events if isinstance(e, ev.ModelCalled)]
    assert calls[0].error.startswith("UndefinedColumnError") and 2 <= len(calls) <= 3
    assert [r.purpose for r in repairs] == ["repair"] * (len(calls) - 1) and all(r.step_id == 1 for r in repairs)
    for call in calls[1:]:
        assert accepts(f"%llguidance {{}}\nstart: sql_arg\n{tool.grammar}", call.args["query"]), call.args
    assert report.status == "finished", [(c.args, c.error) for c in calls]
    assert calls[-1].error is None and report.steps[0].output == calls[-1].result
    assert not any(isinstance(e, ev.Replanned) for e in recorder.events)
