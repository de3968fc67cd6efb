"""Programs compile into plans: one step per computed line, references only to lines above, constants inlined,
`read` as a docs search read by an expert, and every broken program refused naming its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepwise.reasoning.errors import PlanInvalid
from stepwise.reasoning.plan import as_value, render, validate_plan
from stepwise.reasoning.program import compile_program, program_grammar
from stepwise.tools.calculator import Calculator, evaluate
from stepwise.tools.docs import DocSearch

DOCS = Path(__file__).resolve().parent.parent / "fixtures" / "docs"


@pytest.fixture(scope="module")
def tools():
    return {"calculator": Calculator(), "docs": DocSearch(DOCS)}


def test_arithmetic_lines_become_calculator_steps_referring_to_earlier_lines(tools):
    """Each computed line is a calculator step; an earlier name becomes `$N` and a dependency."""
    program = compile_program("total = 4 * 35\nleft = total - 12\nanswer = left + 3 * 20", tools, "general")
    steps = program.plan.steps
    assert [s.input["expression"] for s in steps] == ["4 * 35", "$1 - 12", "$2 + 3 * 20"]
    assert [s.depends_on for s in steps] == [[], [1], [2]]
    assert [s.name for s in steps] == ["total", "left", "answer"]
    assert program.answer == 3
    validate_plan(program.plan, tools, ["general"])


def test_constants_are_inlined_and_a_bare_name_answer_is_that_step(tools):
    """A name bound to a number is no step of its own; `answer = name` points at the step that computed it."""
    program = compile_program("price = 12\nqty = 3\ncost = price * qty\nanswer = cost", tools, "general")
    assert [s.input["expression"] for s in program.plan.steps] == ["(12) * (3)"]
    assert program.answer == 1


def test_the_plan_run_keeps_only_the_lines_the_answer_rests_on(tools):
    """A line nothing uses is dropped from the plan that runs; the lines the answer needs, however indirectly, stay
    with their ids and references."""
    program = compile_program("spare = 7 * 7\nbase = 4 * 35\nother = spare + 1\nleft = base - 12\n"
                              "answer = left + 3", tools, "general")
    needed = program.needed()
    assert [s.name for s in needed.steps] == ["base", "left", "answer"]
    assert [s.input["expression"] for s in needed.steps] == ["4 * 35", "$2 - 12", "$4 + 3"]
    assert needed.answer == program.plan.answer
    validate_plan(needed, tools, ["general"])


def test_a_literal_answer_is_still_a_step(tools):
    """An answer that is a number is computed by a step, so the answer rests on one."""
    program = compile_program("answer = 42", tools, "general")
    assert program.plan.steps[0].input == {"expression": "42"} and program.answer == 1


def test_calls_become_tool_and_expert_steps_and_fstrings_reference_earlier_results(tools):
    """`docs(...)` is a docs step, `ask(f"...{x}")` an expert step whose text refers to x's step."""
    program = compile_program('hits = docs("vacation days")\nanswer = ask(f"How many days does {hits} say?")', tools,
                              "general")
    docs, ask = program.plan.steps
    assert (docs.kind, docs.target, docs.input) == ("tool", "docs", {"query": "vacation days"})
    assert (ask.kind, ask.target, ask.input, ask.depends_on) == ("expert", "general", "How many days does ${1} say?",
                                                                 [1])


def test_read_is_a_docs_search_read_by_an_expert_that_may_say_the_documents_do_not_hold_it(tools):
    """`read(question)` searches the documents for the question and asks the expert to answer from those passages
    only."""
    program = compile_program('answer = read("How many vacation days are there?")', tools, "general")
    search, reader = program.plan.steps
    assert search.input == {"query": "How many vacation days are there?", "hops": 2}
    assert reader.kind == "expert" and "${1}" in reader.input and "not in the documents" in reader.input
    assert reader.depends_on == [1] and program.answer == 2


def test_a_question_asking_two_things_answers_with_both_names(tools):
    """`answer = a, b` points at both lines' steps: the plan names no single final step, the program both parts."""
    program = compile_program('days = read("How many vacation days are there?")\nstaff = 4 * 15\nanswer = days, staff',
                              tools, "general")
    assert program.parts == (2, 3) and program.answer is None and program.plan.answer == [2, 3]
    validate_plan(program.plan, tools, ["general"])
    assert _accepts(program_grammar(["read"]), 'a = 2 * 3\nb = 4\nanswer = a, b')


@pytest.mark.parametrize(("text", "problem"), [
    ("answer = a + 1", "'a' is used before it is set"),
    ("x = 2 * 3\nanswer = x, y", "lists names of earlier lines"),
    ("x = 2 * 3\nanswer = x, 4", "lists names of earlier lines"),
    ("x = x + 1\nanswer = x", "'x' is used before it is set"),
    ("total = 5", "never sets `answer`"),
    ("answer = 1\nx = 2", "`answer = …` is the last line"),
    ("print(5)\nanswer = 1", "each line assigns one name"),
    ("answer = 'five'", "text is not arithmetic"),
    ("answer = 3 +", "not a valid program line"),
    ("answer = sql(\"SELECT 1\")", "not offered"),
])
def test_a_broken_program_is_refused_naming_the_problem(tools, text, problem):
    """Forward references, self-reference, a missing answer, non-assignments and text arithmetic are refused."""
    with pytest.raises(PlanInvalid, match=problem):
        compile_program(text, {"calculator": tools["calculator"]} if "sql" in text else tools, "general")


def test_a_dollar_amount_in_a_program_is_never_a_step_reference(tools):
    """Money written as $57 stays money: names, not `$N`, are how a program refers to results."""
    program = compile_program('answer = ask("Is $57 a lot for a book?")', tools, "general")
    assert program.plan.steps[0].depends_on == [] and validate_plan(program.plan, tools, ["general"])


def test_the_grammar_offers_exactly_the_calls_given():
    """The grammar lists each call once and ends with the answer line."""
    grammar = program_grammar(["docs", "read", "ask"])
    assert '"docs(\\"" STR' in grammar and '"read(f\\"" STR' in grammar and "sql(" not in grammar
    assert 'last: "answer = " rhs' in grammar


def test_a_one_cell_table_is_its_value_and_a_one_column_table_a_list():
    """Query results used by later steps: one cell is a number (numeric text too), one column a list."""
    assert as_value({"columns": ["count"], "rows": [[60]], "truncated": False}) == 60
    assert as_value({"columns": ["avg"], "rows": [["42.50"]], "truncated": False}) == 42.5
    assert as_value({"columns": ["n"], "rows": [[1], [2]], "truncated": False}) == [1, 2]
    assert render({"columns": ["n"], "rows": [[3]], "truncated": False}) == "3"
    table = {"columns": ["a", "b"], "rows": [[1, 2]], "truncated": False}
    assert as_value(table) == table


def test_a_cell_is_a_number_only_when_written_as_one():
    """A name such as "Nan" or "Infinity", or a code such as "1_000", stays text, as the vote reads it too."""
    column = {"columns": ["name"], "rows": [["Nan"], ["Infinity"], ["1_000"], [" -3 "]], "truncated": False}
    assert as_value(column) == ["Nan", "Infinity", "1_000", -3]


def test_a_column_cut_off_at_the_row_limit_stays_a_table():
    """Rows past the limit were not fetched: summing or counting those shown would be a wrong number, so the result
    stays a table, which arithmetic refuses, rather than a list that looks whole."""
    cut = {"columns": ["id"], "rows": [[1], [2]], "truncated": True}
    assert as_value(cut) == cut
    with pytest.raises(ValueError, match="not allowed"):
        evaluate(f"len({render(cut)})")


def _accepts(lark: str, text: str) -> bool:
    import llguidance

    from tests.unit.test_sql_grammar import TOKENIZER

    grammar = llguidance.grammar_from("lark", lark)
    assert llguidance.LLMatcher.validate_grammar(grammar) == ""
    matcher = llguidance.LLMatcher(TOKENIZER, grammar, log_level=0)
    return matcher.consume_tokens(list(text.encode())) and matcher.is_accepting()


class _Sql:
    """The sql tool as the grammar sees it: its rules over a schema holding the tables the worked examples use."""

    def __init__(self) -> None:
        from stepwise.tools.sql_grammar import sql_grammar

        self.grammar = sql_grammar({
            "orders": ["id", "customer_id", "placed_on", "amount"], "customers": ["id", "name"],
            "staff": ["id", "name", "team", "salary", "manager_id"], "products": ["id", "name", "category"],
            "students": ["id", "name"], "courses": ["id", "title"], "enrollments": ["student_id", "course_id"],
            "players": ["id", "name"], "teams": ["id", "name"], "memberships": ["player_id", "team_id", "is_captain"],
        }, "sql_arg")


def test_every_worked_example_is_a_program_the_grammar_allows():
    """The planner is shown only examples it could have written itself (checked by llguidance, as llama.cpp runs it)."""
    from stepwise.reasoning.examples import ExampleBank

    grammar = program_grammar(["sql", "docs", "read", "python", "ask"], {"sql": _Sql()})
    for example in ExampleBank.default().examples:
        assert _accepts(grammar, example.program), example.program


@pytest.mark.parametrize("text", [
    'answer = read(f"In what year was {builder} founded?")',
    'x = docs("vacation days")\nanswer = ask(f"How many days? {x}")',
    "answer = gcd(84, 126) * 2",
])
def test_calls_are_not_swallowed_by_arithmetic(text):
    """A call's name also spells arithmetic; the grammar still lets the model open its string (an f-string too)."""
    assert _accepts(program_grammar(["docs", "read", "ask"]), text)


def test_the_grammar_refuses_what_compiles_to_nothing():
    """Text outside a call's string, or no answer line, is not a program the grammar allows."""
    grammar = program_grammar(["read", "ask"])
    assert not _accepts(grammar, 'answer = "five"')
    assert not _accepts(grammar, "answer = 12*12 is the answer, which is 144.")
    assert not _accepts(grammar, "total = 5\n")



def test_a_part_of_a_several_part_answer_may_be_a_name_bound_to_a_number(tools):
    """`a = 1024` then `answer = a, b`: the constant gets a step of its own, so both parts rest on steps."""
    program = compile_program("a = 1024\nb = 10 ** 3\nanswer = a, b", tools, "general")
    assert program.parts == (2, 1) and program.plan.steps[1].input == {"expression": "1024"}
