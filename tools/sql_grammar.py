"""A grammar of read-only SELECT queries over one database's schema, so a model decoding under it can only name
tables the database has and columns some table has. The rules are in llguidance's Lark dialect and are meant to be
embedded in a bigger grammar (a plan's `rows = sql("…")` line, or a repair's lone query): `sql_grammar` returns rules
only — no `%llguidance` header, no `start:` — all named after the requested rule, so they cannot clash with the
enclosing grammar's.

What a context-free grammar can check, it checks exactly: table names, `table.column` pairs, and each table's own
aliases in FROM/JOIN. What it cannot — which alias a query bound to which table — it approximates: an alias is a
prefix of its table's name (1–3 letters, optionally a digit: `e`, `emp`, `s2`), and `alias.column` may name a
column of any table with that prefix; a bare column may be any table's. A self-join names its second copy by its
role (`employees e JOIN employees m ON m.id = e.manager_id`), so a single letter no table begins with (optionally
with a digit) is an alias of any table, its columns any table's: without it, a model writing `SELECT m` for a
manager's name was held to `manager_id`, and `SELECT s` to `salary`.

The queries are one line with no double quote, backslash, `;` or brace, so they sit inside a double-quoted program
string as they are. Keywords are upper case and identifiers lower case, which also keeps the lexer unambiguous:
with no `%ignore`, every space is an explicit literal."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

__all__ = ["RESERVED", "nameable", "sql_grammar"]

# Postgres 15's reserved keywords (pg_get_keywords() catcode R and T): none of them can name a column or an alias
# without double quotes, which these queries cannot contain.
RESERVED = frozenset(
    "all analyse analyze and any array as asc asymmetric authorization binary both case cast check collate collation "
    "column concurrently constraint create cross current_catalog current_date current_role current_schema current_time "
    "current_timestamp current_user default deferrable desc distinct do else end except false fetch for foreign freeze "
    "from full grant group having ilike in initially inner intersect into is isnull join "
    "lateral leading left like limit "
    "localtime localtimestamp natural not notnull null offset on only or order outer overlaps "
    "placing primary references "
    "returning right select session_user similar some symmetric table tablesample then to trailing true union unique "
    "user using variadic verbose when where window with".split()
)
_PLAIN = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def nameable(identifier: str) -> bool:
    """Whether a query can name this table or column without double quotes."""
    return _PLAIN.fullmatch(identifier) is not None and identifier not in RESERVED


def sql_grammar(tables: Mapping[str, Sequence[str]], rule: str = "sql_arg", *, value: str | None = None) -> str:
    """Lark rules whose rule `rule` derives a SELECT over `tables` (table name → column names). Tables and columns a
    query could only name in double quotes are left out. `value`, if given, names a rule of the enclosing grammar
    that may stand wherever a literal may (an f-string's `{name}`). ValueError if no table can be named."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", rule):
        raise ValueError(f"rule names are lower case identifiers, not {rule!r}")
    schema = {t: sorted({c for c in cols if nameable(c)}) for t, cols in sorted(tables.items()) if nameable(t)}
    schema = {t: cols for t, cols in schema.items() if cols}
    if not schema:
        raise ValueError("no table with a column a query can name without double quotes")
    r, R = rule, rule.upper()
    columns = sorted({c for cols in schema.values() for c in cols})

    # Qualifiers: every alias form of every table (a prefix and maybe a digit), and full table names; each may be
    # followed by the columns of every table it could stand for.
    roles = "".join(sorted(set("abcdefghijklmnopqrstuvwxyz") - {t[0] for t in schema}))
    role = f"[{roles}][1-9]?" if roles else None  # an alias by role: any table's
    qualified: dict[str, set[str]] = {role: set(columns)} if role else {}
    for table, cols in schema.items():
        for prefix in _prefixes(table):
            qualified.setdefault(_alias_pattern([prefix]), set()).update(cols)
        if len(table) > 3:  # a short name is already its own prefix
            qualified.setdefault(table, set()).update(cols)
    by_columns: dict[frozenset[str], list[str]] = {}
    for qualifier, cols in qualified.items():
        by_columns.setdefault(frozenset(cols), []).append(qualifier)
    qcol = " | ".join(f"/(?:{'|'.join(sorted(qs))})\\.(?:{'|'.join(sorted(cols))})/" for cols,
                      qs in sorted(by_columns.items(), key=lambda kv: sorted(kv[1])))
    qstar = f"/(?:{'|'.join(sorted(qualified))})\\.\\*/"

    froms = []
    lines = []
    for i, table in enumerate(schema):
        froms.append(f"{r}_t{i}")
        lines.append(f'{r}_t{i}: "{table}" (" AS " {R}_A{i} | " " {R}_A{i})?')
        lines.append(f"{R}_A{i}: /{_alias_pattern(_prefixes(table))}{'|' + role if role else ''}/")
    literal = f"{R}_NUM | {R}_STR" + (f" | {value}" if value else "")
    return "\n".join([
        f"{r}: {r}_select",
        f'{r}_select: "SELECT " "DISTINCT "? {r}_items " FROM " {r}_from {r}_join* (" WHERE " {r}_cond)? '
        f'(" GROUP BY " {r}_expr (", " {r}_expr)*)? (" HAVING " {r}_cond)? '
        f'(" ORDER BY " {r}_order (", " {r}_order)*)? (" LIMIT " {R}_INT)?',
        f'{r}_items: "*" | {r}_item (", " {r}_item)*',
        f'{r}_item: {r}_expr (" AS " {R}_LABEL)? | {R}_QSTAR',
        f"{r}_from: " + " | ".join(froms),
        f'{r}_join: (" JOIN " | " LEFT JOIN " | " INNER JOIN ") {r}_from (" ON " {r}_cond | " USING (" '
        f'{R}_COL (", " {R}_COL)* ")")',
        f'{r}_order: {r}_expr (" ASC" | " DESC")?',
        f'{r}_cond: {r}_conj (" OR " {r}_conj)*',
        f'{r}_conj: {r}_neg (" AND " {r}_neg)*',
        f'{r}_neg: "NOT " {r}_neg | "(" {r}_cond ")" | {r}_pred',
        f"{r}_pred: {r}_expr {R}_CMP {r}_expr"
        f' | {r}_expr (" LIKE " | " ILIKE " | " NOT LIKE " | " NOT ILIKE ") ({R}_STR{" | " + value if value else ""})'
        f' | {r}_expr (" IN (" | " NOT IN (") ({r}_literal (", " {r}_literal)* | {r}_select) ")"'
        f' | {r}_expr (" BETWEEN " | " NOT BETWEEN ") {r}_expr " AND " {r}_expr'
        f' | {r}_expr (" IS NULL" | " IS NOT NULL")',
        f'{r}_literal: {literal} | "-" {R}_NUM',
        f"{r}_expr: {r}_term ({R}_ADD {r}_term)*",
        f"{r}_term: {r}_factor ({R}_MUL {r}_factor)*",
        f'{r}_factor: {r}_atom ("::" {R}_TYPE)?',
        f'{r}_atom: {literal} | "NULL" | "TRUE" | "FALSE" | {R}_COL | {R}_QCOL | "-" {r}_atom | "(" {r}_expr ")"'
        f' | "(" {r}_select ")"'
        f' | {R}_COUNT "*)" | {R}_COUNT "DISTINCT "? {r}_expr ")" | {R}_AGG "DISTINCT "? {r}_expr ")"'
        f' | {R}_ROUND {r}_expr (", " {R}_INT)? ")" | {R}_FN {r}_expr ")" | {R}_COALESCE {r}_expr (", " {r}_expr)+ ")"'
        f' | "EXTRACT(" ("YEAR" | "MONTH" | "DAY") " FROM " {r}_expr ")"'
        f' | "CASE" (" WHEN " {r}_cond " THEN " {r}_expr)+ (" ELSE " {r}_expr)? " END"',
        *lines,
        f"{R}_COL: " + " | ".join(f'"{c}"' for c in columns),
        f"{R}_QCOL: {qcol}",
        f"{R}_QSTAR: {qstar}",
        f"{R}_LABEL: /[a-z_][a-z0-9_]{{0,30}}/",
        f"{R}_NUM: /[0-9]{{1,12}}(?:\\.[0-9]{{1,6}})?/",
        f"{R}_INT: /[0-9]{{1,6}}/",
        # '' is a quote inside a string; the rest keeps the query a one-line, double-quote-free program string
        f"{R}_STR: /'(?:[^'\"\\\\\\n\\r;{{}}]|''){{0,80}}'/",
        f"{R}_CMP: / (?:=|<>|!=|<|<=|>|>=) /",
        f"{R}_ADD: / [+-] /",
        f"{R}_MUL: / [*\\/%] /",
        f'{R}_TYPE: "numeric" | "float" | "integer" | "int" | "text" | "date"',
        f"{R}_COUNT: /(?:count|COUNT)\\(/",
        f"{R}_AGG: /(?:sum|avg|min|max|SUM|AVG|MIN|MAX)\\(/",
        f"{R}_ROUND: /(?:round|ROUND)\\(/",
        f"{R}_FN: /(?:abs|lower|upper|length|ABS|LOWER|UPPER|LENGTH)\\(/",
        f"{R}_COALESCE: /(?:coalesce|COALESCE)\\(/",
    ])


def _prefixes(table: str) -> list[str]:
    return [table[:n] for n in range(1, min(3, len(table)) + 1)]


def _alias_pattern(prefixes: Sequence[str]) -> str:
    """A regex of the aliases made from these prefixes: each alone (unless a reserved word) or with a digit."""
    alone = [p for p in prefixes if p not in RESERVED]
    forms = [f"(?:{'|'.join(alone)})[1-9]?"] if alone else []
    if len(alone) < len(prefixes):
        forms.append(f"(?:{'|'.join(p for p in prefixes if p in RESERVED)})[1-9]")
    return "|".join(forms)
