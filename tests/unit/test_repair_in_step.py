"""In-step repair: a tool with a grammar (the sql tool's schema grammar) that refuses its argument gets it rewritten
by the model under that grammar inside the same step, up to two tries, each try a tool call of its own; only when
both fail does the step fail and the run replan, as for any tool error. Tools without a grammar replan at once."""

from __future__ import annotations

from typing import Any

from stepwise.reasoning import events as ev
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.repair import repair_grammar
from stepwise.reasoning.report import fold
from stepwise.reasoning.types import Answer, Grammar, Plan, ToolStep
from stepwise.tools import default_tools
from stepwise.tools.sql import SqlArgs
from stepwise.tools.sql_grammar import sql_grammar
from tests.doubles import Script, engine_with
from tests.unit.test_sql_grammar import accepts

SCHEMA = "  table employees(id integer, name text, salary numeric)"
HEADCOUNT = "SELECT headcount FROM employees"
COUNT = "SELECT count(*) FROM employees"


class Database:
    """An sql tool double: the schema's grammar and description, and a database that knows only COUNT."""

    name, args_type, result_type, deterministic = "sql", SqlArgs, dict[str, Any], False
    description = "runs one read-only PostgreSQL SELECT query on this database and returns its rows:\n" + SCHEMA
    grammar = sql_grammar({"employees": ["id", "name", "salary"]}, rule="sql_arg")

    def __init__(self) -> None:
        self.queries: list[str] = []

    async def run(self, args: SqlArgs) -> dict[str, Any]:
        self.queries.append(args.query)
        if args.query != COUNT:
            raise ValueError(f"UndefinedColumnError: no column in {args.query!r}")
        return {"columns": ["count"], "rows": [[3]], "truncated": False}


class Planner:
    """A planner double: the replan it would write, and the failures it was told about."""

    def __init__(self, replan: Plan) -> None:
        self.new_plan = replan
        self.told: list[str] = []

    async def replan(self, question, ctx, allowed, done, failed, reason, **kwargs) -> Plan:
        self.told.append(reason)
        return self.new_plan


class Composer:
    async def compose(self, question, dag, outputs, ctx, *args, **kwargs) -> Answer:
        return Answer(text=repr(outputs))


async def run(script: Script, plan: Plan, replan: Plan | None = None):
    database = Database()
    tools = default_tools() | {"sql": database}
    planner = Planner(replan or plan)
    engine = engine_with(script, tools, planner=lambda _: planner, composer=lambda _: Composer())
    recorder = ev.Recorder()
    await engine.run("How many employees?", RunOptions(deadline_s=10, plan=plan), sink=recorder)
    return fold(recorder.events), recorder.events, database, planner


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


async def test_a_failed_query_repaired_on_the_first_try_finishes_the_step():
    """The model sees the schema first, then the query and its error; its query, decoded under the tool's grammar
    (a final `;` allowed and dropped), runs in the same step and no replan happens."""
    script = Script(COUNT + ";")
    report, events, database, planner = await run(script, Plan([ToolStep(1, "sql", {"query": HEADCOUNT})]))
    assert report.status == "finished" and report.steps[0].output["rows"] == [[3]] and report.replans == 0
    assert database.queries == [HEADCOUNT, COUNT] and planner.told == []
    calls = [(c.args["query"], c.error is None) for c in of(events, ev.ToolCalled)]
    assert calls == [(HEADCOUNT, False), (COUNT, True)]
    (call,) = of(events, ev.ModelCalled)
    assert call.purpose == "repair" and call.step_id == 1
    (sent,) = script.calls
    assert sent["constraint"] == Grammar('%llguidance {}\nstart: sql_arg ";"?\n' + Database.grammar)
    system, user = sent["messages"]
    assert SCHEMA in system.content and HEADCOUNT in user.content and "UndefinedColumnError" in user.content
    assert sent["sampling"].max_tokens == 200 and sent["sampling"].temperature == 0


async def test_a_second_try_sees_both_failures_and_samples():
    """The first rewrite fails too; the second prompt lists both failed queries, is sampled, and its query runs."""
    script = Script("SELECT salary FROM employees", COUNT)
    report, events, database, _ = await run(script, Plan([ToolStep(1, "sql", {"query": HEADCOUNT})]))
    assert report.status == "finished" and report.replans == 0
    assert database.queries == [HEADCOUNT, "SELECT salary FROM employees", COUNT]
    assert len(of(events, ev.ToolCalled)) == 3
    assert [c.purpose for c in of(events, ev.ModelCalled)] == ["repair", "repair"]
    second = script.calls[1]
    assert (HEADCOUNT in second["messages"][-1].content
            and "SELECT salary FROM employees" in second["messages"][-1].content)
    assert second["sampling"].temperature > 0


async def test_after_two_failed_tries_the_step_fails_and_the_run_replans():
    """Two rewrites fail: the step's ToolError names the last query and its error, and the planner's new plan runs."""
    script = Script("SELECT salary FROM employees", "SELECT name FROM employees")
    replan = Plan([ToolStep(1, "calculator", {"expression": "1+2"})])
    report, events, database, planner = await run(script, Plan([ToolStep(1, "sql", {"query": HEADCOUNT})]), replan)
    assert len(database.queries) == 3 and len(of(events, ev.ModelCalled)) == 2
    (replanned,) = of(events, ev.Replanned)
    assert replanned.failed_step == 1 and planner.told == [replanned.reason]
    assert "SELECT name FROM employees" in replanned.reason and "UndefinedColumnError" in replanned.reason
    assert report.status == "finished" and report.steps[0].output == 3


async def test_a_tool_without_a_grammar_goes_straight_to_a_replan():
    """The calculator's refusal is not rewritten in the step: no model call before the planner is asked."""
    script = Script()
    replan = Plan([ToolStep(1, "calculator", {"expression": "2+2"})])
    report, events, _, planner = await run(script, Plan([ToolStep(1, "calculator", {"expression": "2+"})]), replan)
    assert of(events, ev.ModelCalled) == [] and len(planner.told) == 1
    assert report.status == "finished" and report.steps[0].output == 4


def test_the_repair_grammar_compiles_and_takes_a_final_semicolon():
    """llama.cpp decodes unconstrained when a grammar does not compile, so llguidance itself checks the repair
    grammar: the tool's queries, with or without the `;` models end SQL with, and nothing else."""
    grammar = repair_grammar(Database())
    assert accepts(grammar, COUNT) and accepts(grammar, COUNT + ";")
    assert not accepts(grammar, HEADCOUNT) and not accepts(grammar, COUNT + ";;")
