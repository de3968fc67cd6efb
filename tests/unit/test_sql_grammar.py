"""The SQL grammar, checked by llguidance itself (the parser llama.cpp runs while a model decodes): the queries a
database question needs are in the language, queries naming what the schema lacks are not, and every query in it
fits on one line of a double-quoted program string."""

from __future__ import annotations

import json
import random
import re

import llguidance
import pytest

from stepwise.evals.datasets import DEV_DIR
from stepwise.tools.sql_grammar import nameable, sql_grammar

# The small company of issue 11, where the planner wrote `headcount` and `department_name`.
COMPANY = {
    "departments": ["id", "name", "region", "budget"],
    "employees": ["id", "name", "department_id", "salary", "hired_on", "email"],
    "projects": ["id", "title", "department_id", "budget", "deadline"],
    "assignments": ["employee_id", "project_id", "hours_allocated"],
}


class Bytes:
    """A tokenizer whose tokens are the 256 bytes (and an end token): matching it is matching the text itself."""

    eos_token_id, bos_token_id = 256, None
    tokens = [bytes([b]) for b in range(256)] + [b"<eos>"]

    def __call__(self, text: bytes) -> list[int]:
        return list(text)


TOKENIZER = llguidance.LLTokenizer(llguidance.TokenizerWrapper(Bytes()))


def matcher(lark: str) -> llguidance.LLMatcher:
    grammar = llguidance.grammar_from("lark", lark)
    assert llguidance.LLMatcher.validate_grammar(grammar) == ""
    return llguidance.LLMatcher(TOKENIZER, grammar, log_level=0)


def whole(rules: str, rule: str = "sql_arg") -> str:
    return f"%llguidance {{}}\nstart: {rule}\n{rules}"


def accepts(lark: str, text: str) -> bool:
    m = matcher(lark)
    return m.consume_tokens(list(text.encode())) and m.is_accepting()


@pytest.fixture(scope="module")
def company() -> str:
    return whole(sql_grammar(COMPANY))


@pytest.mark.parametrize("query", [
    "SELECT count(*) FROM employees",
    "SELECT * FROM departments",
    "SELECT DISTINCT region FROM departments ORDER BY region",
    "SELECT name, salary FROM employees WHERE salary > 50000 ORDER BY salary DESC LIMIT 5",
    "SELECT d.name, count(*) AS headcount FROM employees e JOIN departments d ON e.department_id = d.id "
    "GROUP BY d.name",
    "SELECT d.name, round(avg(e.salary), 2) FROM departments AS d LEFT JOIN employees AS e ON e.department_id = d.id "
    "GROUP BY d.name HAVING count(e.id) >= 2 ORDER BY count(e.id) DESC, d.name ASC",
    "SELECT sum(a.hours_allocated) FROM assignments a JOIN projects p ON a.project_id = p.id WHERE p.title = 'Apollo'",
    "SELECT employees.name FROM employees WHERE employees.email LIKE '%@example.com' AND NOT employees.salary < 1000",
    "SELECT title FROM projects WHERE budget BETWEEN 1000 AND 5000.50 OR deadline IS NULL",
    "SELECT name FROM departments WHERE region IN ('North', 'South') AND region NOT ILIKE 'e%'",
    "SELECT name FROM employees WHERE department_id IN (SELECT id FROM departments WHERE region = 'West')",
    "SELECT name FROM employees WHERE salary > (SELECT avg(salary) FROM employees)",
    "SELECT count(DISTINCT department_id), max(salary) - min(salary), sum(salary)::numeric / 12 FROM employees",
    "SELECT e1.name, e2.name FROM employees e1 JOIN employees e2 USING (department_id) WHERE e1.id < e2.id",
    "SELECT EXTRACT(YEAR FROM hired_on) AS y, count(*) FROM employees GROUP BY EXTRACT(YEAR FROM hired_on) ORDER BY 1",
    "SELECT sum(CASE WHEN salary >= 60000 THEN 1 ELSE 0 END) FROM employees WHERE name <> 'O''Brien'",
    "SELECT coalesce(sum(budget), 0) FROM projects WHERE lower(title) = 'apollo' AND deadline >= '2025-01-01'",
    "SELECT d.* FROM departments d WHERE -d.budget < -100",
    "SELECT m.name FROM employees e JOIN employees m ON m.id = e.department_id WHERE e.name = 'Hugo Wolff'",
    "SELECT b2.title FROM projects b2",
])
def test_the_queries_database_questions_need_are_accepted(company, query):
    """Selections, joins with per-table aliases or a role's letter (a self-join's `m`), aggregates, grouping,
    ordering, subqueries, literals."""
    assert accepts(company, query)


@pytest.mark.parametrize("query", [
    "SELECT headcount FROM employees",  # no table has that column (issue 11's failure)
    "SELECT department_name FROM departments",
    "SELECT * FROM staff",  # no such table
    "SELECT employees.budget FROM employees",  # a column of another table, qualified by this one
    "SELECT em.name FROM employees ex",  # an alias that is no prefix of its table, nor a single letter
    "SELECT e.name FROM employees d",  # an alias of another table
    "SELECT a.name FROM employees a",  # a single letter another table begins with is that table's alias
    "SELECT p.salary FROM projects p",  # no table starting with p has a salary
    "SELECT name FROM employees AS as",  # a reserved word as an alias
    "select name from employees",  # keywords are upper case
    'SELECT name FROM employees WHERE name = "Ann"',  # a double quote would end the program's string
    "SELECT name FROM employees; DROP TABLE employees",
    "SELECT name FROM employees WHERE name = 'a\nb'",
    "DELETE FROM employees",
    "WITH x AS (SELECT 1) SELECT * FROM x",
])
def test_queries_outside_the_schema_or_the_subset_are_rejected(company, query):
    """Unknown columns and tables, mismatched qualifiers, and anything that is not one plain SELECT line."""
    assert not accepts(company, query)


def dev_schema() -> dict[str, list[str]]:
    """The dev set's tables and columns, read from its CREATE TABLE statements."""
    text = (DEV_DIR / "company.sql").read_text()
    return {table: re.findall(r"^\s+([a-z_]+)\s", body, re.M)
            for table, body in re.findall(r"CREATE TABLE (\w+) \((.*?)\n\);", text, re.S)}


def test_the_dev_sets_reference_queries_are_accepted_except_ctes():
    """Over the dev set's own database, each reference query that uses no WITH is in the language."""
    grammar = whole(sql_grammar(dev_schema()))
    queries = [json.loads(line)["meta"].get("check_sql") for line in (DEV_DIR / "items.jsonl").read_text().splitlines()]
    plain = [q for q in queries if q and not q.startswith("WITH")]
    assert len(plain) >= 10
    assert [q for q in plain if not accepts(grammar, q)] == []


def test_names_a_query_could_only_double_quote_are_left_out():
    """A reserved word or a capitalised name is not offered; an empty schema is an error, not an empty grammar."""
    grammar = whole(sql_grammar({"order": ["id"], "people": ["id", "Name", "user", "age"]}))
    assert accepts(grammar, "SELECT age FROM people")
    assert not accepts(grammar, "SELECT id FROM order") and not accepts(grammar, "SELECT user FROM people")
    assert not nameable("Name") and not nameable("user") and nameable("hours_allocated")
    with pytest.raises(ValueError, match="no table"):
        sql_grammar({"Mixed Case": ["x"]})


def test_the_rules_embed_in_a_bigger_grammar_under_their_own_names():
    """Two instances under different rule names live in one grammar beside the enclosing rules, no name clashing."""
    lark = "\n".join([
        "%llguidance {}",
        'start: line{0,3} "answer = " NAME',
        'line: NAME " = sql(\\"" (sql_arg | tool_arg) "\\")\\n"',
        "NAME: /[a-z]+/",
        sql_grammar(COMPANY),
        sql_grammar({"t": ["a"]}, rule="tool_arg"),
    ])
    assert accepts(lark, 'n = sql("SELECT count(*) FROM employees")\nm = sql("SELECT a FROM t")\nanswer = n')
    assert not accepts(lark, 'n = sql("SELECT a FROM employees")\nanswer = n')
    names = re.findall(r"^(\w+):", sql_grammar({"t": ["a"]}, rule="tool_arg"), re.M)
    assert names[0] == "tool_arg" and all(n.lower().startswith("tool_arg_") for n in names[1:])


def test_an_enclosing_value_rule_may_stand_where_a_literal_may():
    """With `value`, an f-string's `{name}` is a literal of the query (a plan line using an earlier result)."""
    lark = "\n".join(["%llguidance {}", 'start: "f\\"" sql_arg "\\""', 'ref: "{" /[a-z]+/ "}"',
                      sql_grammar(COMPANY, value="ref")])
    assert accepts(lark, 'f"SELECT name FROM employees WHERE department_id = {dept} AND name LIKE {pattern}"')
    assert not accepts(lark, 'f"SELECT name FROM {table}"')  # a value, never a name


def test_no_derivation_holds_a_double_quote_newline_semicolon_or_brace():
    """Random walks through the language (a byte at a time, among those the grammar allows) stay one safe line."""
    rng = random.Random(7)
    grammar = whole(sql_grammar(COMPANY))
    finished = 0
    for _ in range(40):
        m, text = matcher(grammar), b""
        while len(text) < 400:
            bias = m.compute_logit_bias()
            allowed = [b for b in range(257) if bias[b]]
            if 256 in allowed and (rng.random() < 0.3 or len(allowed) == 1):
                finished += 1
                break
            byte = rng.choice([b for b in allowed if b != 256])
            assert m.consume_token(byte)
            text += bytes([byte])
        assert not set(text) & set(b'"\n\r;{}\\'), text
    assert finished >= 10
