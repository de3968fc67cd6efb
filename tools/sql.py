"""Read-only SQL against a configured Postgres. Writes are impossible by construction: every query runs in a READ
ONLY transaction (Postgres refuses INSERT, UPDATE, DELETE and DDL there, in functions too), as one prepared
statement (no second statement can ride along), with a statement timeout and limits on what comes back (rows, columns,
each value's length, the whole result's; `SqlTool`'s parameters). The tool's description —
what the planner sees before it writes a query — lists the tables, their columns and types, the values of text
columns that have only a few, and a few sample rows. Its `grammar` (tools/sql_grammar.py) is the language of queries
that name only what the schema has: plans decode queries under it, and the engine rewrites a failed query under it
within the step (reasoning/repair.py) before a failure goes back to the planner.

A read-only transaction does not stop what the role's privileges allow inside a read: as a superuser, one SELECT can
run a shell command (`COPY … TO PROGRAM`), read or write server files, or end other sessions. So the tool checks the
role it logs in as before it is offered, and refuses one that can reach past the tables (`role_privileges`)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Annotated, Any

import asyncpg
import msgspec
from asyncpg.prepared_stmt import PreparedStatement

from stepwise.reasoning.types import Unfixable
from stepwise.tools.sql_grammar import sql_grammar


class PrivilegedRole(Exception):
    """The role in the sql tool's URL may reach past the database's tables (programs, files, other sessions)."""


class SqlArgs(msgspec.Struct, forbid_unknown_fields=True):
    query: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class SqlTool:
    name = "sql"
    args_type = SqlArgs
    result_type = dict[str, Any]
    deterministic = False  # rows without ORDER BY may come back in another order
    side_effect_free = True  # a read-only transaction: the planner may run sampled programs' queries to vote

    def __init__(self, url: str, schema_text: str, *, row_limit: int = 50, timeout_ms: int = 2000,
                 value_limit: int = 2000, column_limit: int = 100, result_limit: int = 100_000,
                 privileges: tuple[str, ...] = (), tables: Mapping[str, Sequence[str]] | None = None,
                 listed: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
                 names: Collection[str] = (), words: Collection[str] = (), flags: Collection[str] = (),
                 split_names: Mapping[str, tuple[str, str]] | None = None) -> None:
        self.url = url
        self.privileges = privileges
        """What the role may do beyond reading (see role_privileges): empty unless the caller allowed a privileged
        role."""
        self.row_limit = row_limit
        self.timeout_ms = timeout_ms
        self.value_limit = value_limit
        """Characters of a value's text form that come back; a longer value is cut inside Postgres (`bounded_query`),
        so one `SELECT repeat('x', 500000000)` cannot make the server hold it."""
        self.column_limit = column_limit
        """Columns a query may return: with the row and value limits, at most rows × columns × value_limit
        characters (about 10 million at the defaults) are fetched at once."""
        self.result_limit = result_limit
        """Characters of values a result keeps: the rows after the one that passes it are dropped (`truncated`)."""
        self.description = ("runs one read-only PostgreSQL SELECT query on this database and returns its rows:\n"
                            + schema_text)
        self.tables = {table: list(columns) for table, columns in (tables or {}).items()}
        """Each table of the public schema with its columns: what a query may name."""
        self.listed = {table: {name: list(values) for name, values in columns.items()}
                       for table, columns in (listed or {}).items()}
        """Per table, the text columns whose every value the description lists, and those values: a filter on one
        with a text it never holds is refused (`unlisted`)."""
        self.names = frozenset(names)
        """The texts of several words the database holds (`held_names`), in lower case: a question naming one ("Who
        is Dana Kell's manager?") is about the database, though its words are not the schema's."""
        self.words = frozenset(words)
        """The capitalised single words the database holds (`held_words`), in lower case."""
        self.flags = frozenset(flags)
        """The names of boolean columns: a query comparing one with 1 or 0 compares it with true or false
        (`in_postgres_types`)."""
        self.split_names = dict(split_names or {})
        """Per table keeping a person's name in two columns, those columns (`split_name`): a query naming the whole
        name in one of them, or in a name column the table lacks, compares the two joined (`whole_named`)."""
        self.grammar = _grammar(self.tables, f"{self.name}_arg")
        """Lark rules whose rule `sql_arg` derives the queries that fit the schema; None if no table can be named."""

    @classmethod
    async def connect(cls, url: str, *, sample_rows: int = 2, allow_privileged_role: bool = False,
                      **options: Any) -> SqlTool:
        """A tool for the database at `url`, its description built from the database's own catalogue. Raises
        PrivilegedRole if the URL's role may do more than read, unless `allow_privileged_role`."""
        conn = await asyncpg.connect(url, timeout=10)
        try:
            privileges = await role_privileges(conn)
            if privileges and not allow_privileged_role:
                raise PrivilegedRole(refusal(await conn.fetchval("SELECT session_user"), privileges))
            await conn.execute("SET statement_timeout = 5000")  # describing a large table must not hang the start
            columns = await columns_of(conn)
            listed = await listed_values(conn, columns)
            schema_text = await describe(conn, sample_rows, columns, listed)
            names = await held_names(conn, columns)
            words = await held_words(conn, columns)
            tables = {table: [name for name, _ in cols] for table, cols in columns.items()}
            flags = {name for cols in columns.values() for name, kind in cols if kind == "boolean"}
            split_names = {table: split for table, cols in columns.items() if (split := split_name(cols))}
        finally:
            await conn.close()
        return cls(url, schema_text, privileges=tuple(privileges), tables=tables, listed=listed, names=names,
                   words=words, flags=flags, split_names=split_names, **options)

    async def run(self, args: SqlArgs) -> dict[str, Any]:
        return await self._run(args.query, rewrites=2)

    async def _run(self, query: str, *, rewrites: int) -> dict[str, Any]:
        """The query's rows; with `rewrites` left, a filter on the wrong column moved, `= (SELECT …)` finding
        several rows widened to IN, a comparison Postgres has no operator for written in its types
        (`in_postgres_types`), a column no table read has renamed to the one that holds its words
        (`renamed_column`), a person's whole name compared with both its columns (`whole_named`), a filter on
        another table's column written through the key they share (`filtered_through_key`), or an undefined alias
        to the one defined with its digit (`realiased`), and run again
        (at most that many runs more: a query of many such filters is not run once per filter)."""
        args = SqlArgs(query)
        if same := self_compared(args.query):
            raise ValueError(f"the condition {same} compares a column with itself and holds on every row where it "
                             "has a value: compare it with a value (one an earlier step found goes into the query's "
                             "text)")
        if crossed := crossed_key(args.query, self.tables):
            raise ValueError(crossed)
        try:
            columns, rows = await self._fetch(args.query)
        except asyncpg.CardinalityViolationError as exc:
            # `department_id = (SELECT id … WHERE city = 'Ghent')` where two departments are in Ghent: the question
            # meant any of them. A query comparing with no such subquery is the model's to rewrite.
            if not rewrites or (widened := _in_subqueries(args.query)) == args.query:
                raise ValueError(f"{type(exc).__name__}: {exc}; compare with IN (SELECT …) where a subquery may "
                                 "find several rows") from None
            return await self._run(widened, rewrites=rewrites - 1)
        except asyncpg.UndefinedColumnError as exc:
            # `e.name` where employees has `full_name` alone: the one column of the tables read whose name holds the
            # missing one's words is what the query meant (the general expert answered a run whose samples all
            # queried `name`).
            rewritten = (renamed_column(args.query, str(exc), self.tables)
                         or whole_named(args.query, self.tables, self.split_names, error=str(exc))
                         or filtered_through_key(args.query, str(exc), self.tables))
            return await self._instead(rewritten, rewrites, f"{type(exc).__name__}: {exc}{self._hint(exc)}")
        except asyncpg.UndefinedTableError as exc:
            # `s2.name` over `employees e2`: the bank's self-join examples name their copy s2, and the model copies
            # the alias but not the join (five samples of five, and every repair, in a probe3 run).
            rewritten = realiased(args.query, str(exc), self.tables)
            return await self._instead(rewritten, rewrites, f"{type(exc).__name__}: {exc}")
        except asyncpg.UndefinedFunctionError as exc:
            # `is_lead = 1` or `start_date LIKE '2022%'`, as SQLite and MySQL take them: Postgres has no `boolean =
            # integer` or `date ~~ text`. The query's meaning is not in doubt, so it is rewritten here rather than
            # sent back to the model (which failed a run on the second).
            rewritten = in_postgres_types(args.query, self.flags)
            return await self._instead(None if rewritten == args.query else rewritten, rewrites,
                                       f"{type(exc).__name__}: {exc}")
        shown, kept = [], 0
        for row in rows[: self.row_limit]:
            values = [_jsonable(v) for v in _uncut(row, len(columns), self.value_limit)]
            kept += sum(len(v) if isinstance(v, str) else 8 for v in values)
            if kept > self.result_limit and shown:
                break
            shown.append(values)
        if shown in ([], [[0]], [[None]]) and (found := await self._found_nothing(args.query, rewrites)):
            return found
        return {"columns": columns, "rows": shown, "truncated": len(rows) > len(shown)}

    async def _found_nothing(self, query: str, rewrites: int) -> dict[str, Any] | None:
        """For a query that found nothing (no rows, 0 or NULL): with rewrites left, the rows of the query with a whole
        name compared with both its columns (`whole_named`) or a filter moved to the column holding its text
        (`moved_filter`), if they run; a ValueError if a filter's text is one its column never holds; else None
        (nothing is what there is)."""
        if rewrites and (joined := whole_named(query, self.tables, self.split_names)) is not None:
            # `first_name = 'Mei Zhou'`: a whole name compared with one of its two columns finds nobody. Only once
            # the query found nothing, as a first name may have two words of its own ("Ana Lucia").
            with contextlib.suppress(ValueError):
                return await self._run(joined, rewrites=rewrites - 1)
        if problem := unlisted(query, self.listed, self.tables):
            if rewrites and (moved := moved_filter(query, self.listed, self.tables)) is not None:
                # Rewritten here, not by the model: told that 'Ghent' is a value of departments.city, the small
                # repair model added `AND city = 'Ghent'` to `name = 'Ghent'`, twice, and the run failed. Should the
                # rewrite fail too, the reason the query as written found nothing is the one to give.
                with contextlib.suppress(ValueError):
                    return await self._run(moved, rewrites=rewrites - 1)
            raise ValueError(f"the query found nothing: {problem}")
        return None

    async def _instead(self, rewritten: str | None, rewrites: int, reason: str) -> dict[str, Any]:
        """The rewritten query's rows, if there is one and rewrites are left; else, or should it fail too, the
        written query's own `reason`, which is what the model wrote and can mend."""
        if rewritten is not None and rewrites:
            with contextlib.suppress(ValueError):
                return await self._run(rewritten, rewrites=rewrites - 1)
        raise ValueError(reason)

    async def _fetch(self, query: str) -> tuple[list[str], list[Any]]:
        """The query's column names and its first rows (one more than shown tells whether there was more)."""
        try:
            conn = await asyncpg.connect(self.url, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise ValueError(f"the database is unreachable: {exc}") from exc
        try:
            async with conn.transaction(readonly=True):
                await conn.execute(f"SET LOCAL statement_timeout = {int(self.timeout_ms)}")
                await conn.execute("SET LOCAL datestyle = 'ISO'")  # a date matched as text is 2022-03-14
                statement = await conn.prepare(query)
                columns = [a.name for a in statement.get_attributes()]
                if len(columns) > self.column_limit:
                    raise ValueError(f"the query returns {len(columns)} columns; at most "
                                     f"{self.column_limit} can be read")
                if columns:  # a statement without rows (a write, DDL) runs as it is, for Postgres' own refusal
                    statement = await self._bounded(conn, query, len(columns))
                cursor = await statement.cursor()
                return columns, await cursor.fetch(self.row_limit + 1)
        except (asyncpg.CardinalityViolationError, asyncpg.UndefinedColumnError, asyncpg.UndefinedTableError,
                asyncpg.UndefinedFunctionError):  # `_run` may rewrite the query and run it again
            raise
        except asyncpg.PostgresError as exc:
            # SQLSTATE 42 (syntax, unknown names) and 22 (data) are the query's fault, which a rewrite may fix; a
            # missing privilege (42501) or the server's own trouble (timeouts, resources, shutdown) is not.
            state = str(getattr(exc, "sqlstate", "") or "")
            fixable = state[:2] in ("42", "22") and state != "42501"
            raise (ValueError if fixable else Unfixable)(f"{type(exc).__name__}: {exc}{self._hint(exc)}") from None
        finally:
            await conn.close()

    async def _bounded(self, conn: asyncpg.Connection, query: str,
                       width: int) -> PreparedStatement:
        try:
            return await conn.prepare(bounded_query(query, width, self.value_limit))
        except asyncpg.PostgresError as exc:
            raise ValueError(f"only a query's rows can be read (SELECT, WITH … SELECT, VALUES, TABLE): {exc}") from None

    def _hint(self, exc: asyncpg.PostgresError) -> str:
        """For a column the query's table lacks, which tables have it: a rewrite then knows what to join
        (`column "kind" does not exist; kind is a column of bikes`)."""
        found = re.search(r'column "?(?:\w+\.)?(\w+)"? does not exist', str(exc))
        if not isinstance(exc, asyncpg.UndefinedColumnError) or not found:
            return ""
        column = found.group(1)
        having = [table for table, columns in self.tables.items() if column in columns]
        return f"; {column} is a column of {', '.join(having)}" if having else f"; no table has a column {column}"


def bounded_query(query: str, width: int, limit: int) -> str:
    """`query`, of `width` columns, with each value longer than `limit` characters (as text) replaced inside Postgres
    by its first `limit` characters and its length: per column, the value or NULL, the head, the length (`_uncut`
    reads the three back). Columns are renamed by position, so duplicate or unnamed ones are fine; OFFSET 0 keeps
    the text forms a subquery of their own, each made once a row."""
    names = ", ".join(f"c{i}" for i in range(width))
    texts = ", ".join(f"q.c{i}::text AS t{i}" for i in range(width))
    picks = ", ".join(f"CASE WHEN length(t.t{i}) > {limit} THEN NULL ELSE q.c{i} END, "
                      f"CASE WHEN length(t.t{i}) > {limit} THEN left(t.t{i}, {limit}) END, "
                      f"CASE WHEN length(t.t{i}) > {limit} THEN length(t.t{i}) END" for i in range(width))
    body = query.rstrip()
    while body.endswith(";"):  # a statement's end, which a subquery may not have
        body = body[:-1].rstrip()
    # the line break before the parenthesis ends a trailing -- comment
    return f"SELECT {picks} FROM (\n{body}\n) AS q({names}) CROSS JOIN LATERAL (SELECT {texts} OFFSET 0) AS t"


def _uncut(row: Sequence[Any], width: int, limit: int) -> list[Any]:
    """A row of `bounded_query` as the query's own: each value, or a cut one's head and how long it was."""
    return [row[3 * i] if row[3 * i + 2] is None
            else f"{row[3 * i + 1]}… (cut at {limit} of {row[3 * i + 2]} characters)"
            for i in range(width)]


# Predefined roles whose members reach past the tables a query may read, and what each allows.
PRIVILEGED_ROLES = {
    "pg_execute_server_program": "runs shell commands on the database server (COPY … TO PROGRAM)",
    "pg_read_server_files": "reads any file the database server can (COPY … FROM, pg_read_file)",
    "pg_write_server_files": "writes files on the database server (COPY … TO a file)",
    "pg_signal_backend": "ends other sessions (pg_terminate_backend), the server's own trace connections included",
    "pg_read_all_data": "reads every table of every schema, not only the ones granted",
    "pg_write_all_data": "writes every table",
    "pg_read_all_settings": "reads every server setting (file paths, configuration)",
    "pg_read_all_stats": "sees the queries other sessions are running",
}
# Role attributes, held by the role or by any role it may SET ROLE to (even inside one SELECT, with set_config).
PRIVILEGED_ATTRIBUTES = {
    "rolsuper": "is a superuser: may run programs, read and write server files and end any session",
    "rolcreaterole": "has CREATEROLE: may grant itself pg_execute_server_program and the like",
    "rolbypassrls": "has BYPASSRLS: reads rows row-level security hides",
    "rolreplication": "has REPLICATION: may stream every table's data",
}
# Functions that reach the server's files or state, executable only when granted (not to PUBLIC by default).
PRIVILEGED_FUNCTIONS = ("pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "lo_import", "lo_export",
                        "pg_reload_conf", "pg_rotate_logfile", "pg_promote", "pg_file_write", "pg_file_rename",
                        "pg_file_unlink")


async def role_privileges(conn: asyncpg.Connection) -> list[str]:
    """What the role `conn` logged in as may do beyond reading the tables it was granted, one phrase per privilege,
    counting roles it is a member of directly or through others; empty for a role fit for the sql tool."""
    row = await conn.fetchrow("SELECT rolname, rolsuper FROM pg_roles WHERE rolname = session_user")
    if row is None:  # not reached: the role logged in as is in pg_roles
        raise Unfixable("the role this connection logged in as is not in pg_roles")
    me, superuser = row
    if superuser:
        return [PRIVILEGED_ATTRIBUTES["rolsuper"]]  # a superuser is a member of every role: the rest says nothing more
    found = []
    for row in await conn.fetch(
        "SELECT rolname, rolsuper, rolcreaterole, rolbypassrls, rolreplication FROM pg_roles "
        "WHERE pg_has_role(session_user, oid, 'MEMBER') AND (rolsuper OR rolcreaterole OR "
        "rolbypassrls OR rolreplication) "
        "ORDER BY rolname"
    ):
        via = "" if row["rolname"] == me else f" (through role {row['rolname']})"
        found += [f"{phrase}{via}" for attribute, phrase in PRIVILEGED_ATTRIBUTES.items() if row[attribute]]
    for row in await conn.fetch(
        "SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[]) AND pg_has_role(session_user, oid, "
        "'MEMBER') ORDER BY rolname",
        list(PRIVILEGED_ROLES),
    ):
        found.append(f"is a member of {row['rolname']}: {PRIVILEGED_ROLES[row['rolname']]}")
    for row in await conn.fetch(
        "SELECT DISTINCT proname FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace AND "
        "proname = ANY($1::text[]) "
        "AND has_function_privilege(session_user, oid, 'EXECUTE') ORDER BY proname",
        list(PRIVILEGED_FUNCTIONS),
    ):
        found.append(f"may execute {row['proname']}(), which reaches the server's files or state")
    return found


def refusal(role: str, privileges: list[str]) -> str:
    """The error a privileged role gets: which role, what it may do, and how to make one that only reads."""
    return (
        f"the sql tool refuses to log in as role {role!r}, which {'; '.join(privileges)}. A read-only transaction does "
        "not stop that. Make a role that can only read: `stepwise sql-role stepwise_reader --url <an admin URL of this "
        "database>` (or run docs/sql-readonly-role.sql), then set STEPWISE_SQL_URL to the URL "
        "it prints. For a throwaway "
        "local database only, STEPWISE_SQL_ALLOW_PRIVILEGED_ROLE=1 skips this check."
    )


async def columns_of(conn: asyncpg.Connection) -> dict[str, list[tuple[str, str]]]:
    """Each table of the public schema with its columns and their types, in order."""
    tables: dict[str, list[tuple[str, str]]] = {}
    for row in await conn.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
    ):
        tables.setdefault(row["table_name"], []).append((row["column_name"], row["data_type"]))
    return tables


async def describe(conn: asyncpg.Connection, sample_rows: int = 2,
                   columns: dict[str, list[tuple[str, str]]] | None = None,
                   listed: dict[str, dict[str, list[str]]] | None = None) -> str:
    """Tables of the public schema with columns, types and a few rows, compact (every token costs time). A text
    column with at most VALUES_SHOWN distinct values lists them: a model filtering on one must spell it exactly."""
    columns = columns if columns is not None else await columns_of(conn)
    listed = listed if listed is not None else await listed_values(conn, columns)
    lines = []
    for table, cols in columns.items():
        values = listed.get(table, {})
        shown = [f"{name} {kind}" + (f" ({', '.join(values[name])})" if name in values else "") for name, kind in cols]
        lines.append(f"  table {table}({', '.join(shown)})")
        samples = await conn.fetch(f'SELECT * FROM "{table}" LIMIT {int(sample_rows)}')
        for sample in samples:
            lines.append("    e.g. " + msgspec.json.encode({k: _jsonable(v) for k, v in sample.items()}).decode())
    return "\n".join(lines)


VALUES_SHOWN = 8
_TEXT = ("text", "character varying", "character")


async def listed_values(conn: asyncpg.Connection,
                        columns: dict[str, list[tuple[str, str]]]) -> dict[str, dict[str, list[str]]]:
    """Per table, each text column with few distinct values that read unambiguously in a list, and its values."""
    listed: dict[str, dict[str, list[str]]] = {}
    for table, cols in columns.items():
        for name, kind in cols:
            if kind in _TEXT and (values := await _values(conn, table, name)):
                listed.setdefault(table, {})[name] = values
    return listed


NAMES_READ = 5000  # distinct values kept per text column: a larger table's names are not all known ahead
NAMES_SCANNED = 100_000  # rows read per column for them, so a large table costs a bounded scan, not a full one
# Two to four words: a name ("Hugo Wolff"), not a single word (listed values) nor a sentence. program_planner's
# name_phrases reads runs of two to four capitalised words out of a question to match against these.
_NAME_TEXT = r"^[^[:space:]]+( [^[:space:]]+){1,3}$"
# One capitalised word of a name, as a question's names are read (program_planner._names), not a code ("ASH").
_WORD_TEXT = r"^[A-Z][a-z]{2,39}$"


async def held_names(conn: asyncpg.Connection, columns: dict[str, list[tuple[str, str]]]) -> set[str]:
    """The short texts of two to four words the text columns hold, in lower case (people's, places' and things'
    names: "hugo wolff"), and a person's name a table keeps in two columns (`split_name`) joined, at most NAMES_READ
    a column from its first NAMES_SCANNED rows; a column too slow to read in the start's statement timeout gives
    none."""
    names: set[str] = set()
    for table, cols in columns.items():
        texts = [f"{_quoted(name)}::text" for name, kind in cols if kind in _TEXT]  # character(n) without padding
        if (split := split_name(cols)) is not None:
            texts.append(f"{_quoted(split[0])}::text || ' ' || {_quoted(split[1])}::text")
        for text in texts:
            try:
                rows = await conn.fetch(f"SELECT DISTINCT v FROM (SELECT {text} AS v FROM {_quoted(table)} "
                                        f"LIMIT {NAMES_SCANNED}) s WHERE octet_length(v) <= 240 AND v ~ $1 "
                                        f"LIMIT {NAMES_READ}", _NAME_TEXT)
            except asyncpg.QueryCanceledError:
                continue
            names.update(row["v"].lower() for row in rows)
    return names


async def held_words(conn: asyncpg.Connection, columns: dict[str, list[tuple[str, str]]]) -> frozenset[str]:
    """The capitalised single words the text columns hold ("Bramble", a pet's name; "Whitfield", a surname), in
    lower case, bounded as `held_names` is: a name of one word a question may find a row by."""
    words: set[str] = set()
    for table, cols in columns.items():
        for name, kind in cols:
            if kind not in _TEXT:
                continue
            try:
                rows = await conn.fetch(f"SELECT DISTINCT v FROM (SELECT {_quoted(name)}::text AS v FROM "
                                        f"{_quoted(table)} LIMIT {NAMES_SCANNED}) s WHERE v ~ $1 LIMIT {NAMES_READ}",
                                        _WORD_TEXT)
            except asyncpg.QueryCanceledError:
                continue
            words.update(row["v"].lower() for row in rows)
    return frozenset(words)


_FIRST_NAME = re.compile(r"(?:first|given|fore)_?names?", re.IGNORECASE)
_LAST_NAME = re.compile(r"(?:last|family|sur)_?names?", re.IGNORECASE)


def split_name(cols: list[tuple[str, str]]) -> tuple[str, str] | None:
    """A table's first-name and last-name text columns (`first_name`, `last_name`; `given_name`, `surname`), if it
    has one of each: a person's name it holds in two parts."""
    text = [name for name, kind in cols if kind in _TEXT]
    first = [name for name in text if _FIRST_NAME.fullmatch(name)]
    last = [name for name in text if _LAST_NAME.fullmatch(name)]
    return (first[0], last[0]) if len(first) == 1 and len(last) == 1 else None


# `column = 'text'`, the column maybe qualified: a filter whose text a listed column may not hold.
_EQUALS_TEXT = re.compile(r"(?<![\w.])(?:(\w+)\.)?(\w+)\s*=\s*'((?:[^']|'')*)'")
# `FROM t`, `JOIN t AS x`, `JOIN t x`: the tables a query reads, by name and alias.
_FROM = re.compile(r"\b(?:from|join)\s+(\w+)(?:\s+(?:as\s+)?(?!(?:on|where|join|inner|left|right|full|cross|group|"
                   r"order|limit|having|union|using|natural)\b)(\w+))?", re.IGNORECASE)


# `branch_id = branch_id`, `b.id = b.id`: one name (a letter first: `1 = 1` is an idiom) on both sides of `=`.
# A whole condition `x = x` (`branch_id = branch_id`, `b.id = B.ID`): one name (a letter first, not a literal:
# `1 = 1` and `true = true` are idioms) on both sides, bounded by a clause's keyword, a bracket or the end, so that
# `x = x + 1` or `price = price::int` (real tests) are not one.
_SELF_EQUAL = re.compile(
    r"(?:^|\(|\b(?:where|and|or|on|when|having|not)\b)\s*(?!(?:true|false|null)\b)(([a-z_]\w*(?:\.\w+)?)\s*=\s*\2)"
    r"\s*(?=$|[);]|\b(?:and|or|then|else|end|group|order|limit|offset|having|window|join|inner|left|right|full|cross|"
    r"union|intersect|except)\b)", re.IGNORECASE)


def self_compared(query: str) -> str | None:
    """A condition comparing a column with itself (`branch_id = branch_id`), or None. It holds on every row with a
    value, so the query counts or sums everything: the small planner writes it when it means a value an earlier line
    of its program found, naming that line's variable inside the query's text."""
    found = _SELF_EQUAL.search(re.sub(r"'(?:[^']|'')*'", "''", query))  # single-quoted text: the grammar's only quoting
    return found.group(1) if found else None


# `department_id = (SELECT id FROM employees …)`: a key compared with the ids a subquery finds in some table.
_KEY_SUBQUERY = re.compile(r"'(?:[^']|'')*'|(?<![\w.])(?:\w+\.)?(\w+)_id\s*(?:=|\bin)\s*\(\s*select\s+(?:\w+\.)?id\s+"
                           r"from\s+(?:\w+\.)?(\w+)([^()]*?)(?:\bwhere\b|\))", re.IGNORECASE)


def crossed_key(query: str, tables: Collection[str]) -> str | None:
    """Why a query compares a key with the ids of another table than the one it is named after
    (`department_id = (SELECT id FROM employees …)`, where a table departments exists), or None. Ids of two tables
    are both numbers, so the query runs and finds nothing or the wrong rows: a count of 0 that two samples agreed on
    outvoted the right query (a person's projects counted as projects of the department whose id was hers). Not
    where the subquery joins, or reads a table whose name holds the key's (`active_employees`); the catalogue's
    foreign keys are not read, so a key named after one table holding another's ids would be refused."""
    for found in _KEY_SUBQUERY.finditer(query):
        if found.group(0).startswith("'"):
            continue
        stem, table = found.group(1).lower(), found.group(2).lower()
        if stem in table or re.search(r"\bjoin\b", found.group(3), re.IGNORECASE):
            continue  # `active_employees` may hold employees' ids; a join's id may be any of its tables'
        named = {stem, f"{stem}s", f"{stem}es", f"{stem[:-1]}ies" if stem.endswith("y") else stem}
        owners = sorted(t for t in tables if t.lower() in named)
        if owners and table not in {t.lower() for t in owners}:
            return (f"{found.group(1)}_id holds ids of {owners[0]}, not of {found.group(2)}: find the {stem} in "
                    f"{owners[0]}, or join through a table holding both ids")
    return None


def moved_filter(query: str, listed: Mapping[str, Mapping[str, Sequence[str]]],
                 tables: Mapping[str, Sequence[str]]) -> str | None:
    """For a query that found nothing: the query with its first filter comparing a column to a text the column does
    not hold, where exactly one other column of the same table lists that text (`name = 'Ghent'` where
    departments.city holds 'Ghent'), comparing that column instead (its value as listed); None if no filter is
    such. Each rewrite moves a filter to a column that holds its text, so rewriting again ends."""
    read = _read_tables(query, tables)
    for found in _EQUALS_TEXT.finditer(query):
        qualifier, column, quoted = found.groups()
        text = quoted.replace("''", "'")
        having = _having(qualifier, column, read, tables)
        # Only a listed column is known not to hold the text (an unlisted one may, the emptiness being another
        # filter's), and only in one table is "the same table" a fact.
        if len(having) != 1 or text in listed.get(having[0], {}).get(column, [text]):
            continue
        holders = {(name, v) for name, values in listed[having[0]].items() for v in values
                   if v.lower() == text.lower() and name != column}
        if len(holders) == 1:
            ((name, value),) = holders
            shown = name if re.fullmatch(r"[a-z_][a-z0-9_]*", name) else _quoted(name)
            moved = f"{qualifier + '.' if qualifier else ''}{shown} = '{value.replace(chr(39), chr(39) * 2)}'"
            return query[:found.start()] + moved + query[found.end():]
    return None


# Quoted text first, so that a `= (select` inside it is passed over whole.
_SCALAR_SUBQUERY = re.compile(r"'(?:[^']|'')*'|(?<![<>!])=\s*\(\s*(?=select\b)", re.IGNORECASE)


def _in_subqueries(query: str) -> str:
    """The query with each `= (SELECT …)` outside quoted text written `IN (SELECT …)`: the same rows where the
    subquery finds one, those matching any where it finds several."""
    return _SCALAR_SUBQUERY.sub(lambda m: m.group(0) if m.group(0).startswith("'") else "IN (", query)


# Quoted text first, passed over whole; then a column (maybe qualified) compared with a lone 1 or 0.
_FLAG_NUMBER = re.compile(r"'(?:[^']|'')*'|(?<![\w.])((?:\w+\.)?(\w+))\s*(=|<>|!=)\s*([01])(?![\w.])")
# Quoted text first; then a column (maybe qualified, not already cast) matched with LIKE or ILIKE.
_LIKE = re.compile(r"'(?:[^']|'')*'|(?<![\w.:])((?:\w+\.)?\w+)(\s+(?:not\s+)?i?like\b)", re.IGNORECASE)


def in_postgres_types(query: str, flags: Collection[str]) -> str:
    """The query, written for SQLite's or MySQL's looser types, in Postgres' (outside quoted text): a boolean column
    compared with 1 or 0 compared with true or false (`a.is_lead = 1` → `a.is_lead = true`, `is_lead <> 1` →
    `is_lead = false`), and a column matched with LIKE matched as text (`start_date LIKE '2022%'` →
    `start_date::text LIKE '2022%'`, a no-op for a text column). Neither has a Postgres operator as written."""
    def flag(found: re.Match[str]) -> str:
        if found.group(0).startswith("'") or found.group(2).lower() not in flags:
            return found.group(0)
        truth = (found.group(4) == "1") == (found.group(3) == "=")
        return f"{found.group(1)} = {'true' if truth else 'false'}"

    def like(found: re.Match[str]) -> str:
        if found.group(0).startswith("'") or found.group(1).lower() == "not":
            return found.group(0)
        return f"{found.group(1)}::text{found.group(2)}"
    return _LIKE.sub(like, _FLAG_NUMBER.sub(flag, query))


_MISSING_COLUMN = re.compile(r'column "?(?:(\w+)\.)?(\w+)"? does not exist')
# Words a query also uses as type names or in keywords (`DATE '2022-01-01'`, `::date`, `EXTRACT(YEAR FROM …)`).
_NOT_RENAMED = frozenset({"date", "time", "timestamp", "interval", "year", "month", "day", "text", "numeric"})


def renamed_column(query: str, error: str, tables: Mapping[str, Sequence[str]]) -> str | None:
    """For a query Postgres refused for a column that does not exist (`error`): the query with that column (as
    qualified, or everywhere unqualified outside quoted text) renamed to the one column of its table (the one its
    qualifier names, or the one table the query reads) whose name holds its words and more (`name` → `full_name`);
    None if there is not exactly one such column, or either is a key (`manager` is not `manager_id`)."""
    found = _MISSING_COLUMN.search(error)
    if found is None:
        return None
    qualifier, column = found.groups()
    read = {alias.lower(): table for alias, table in _read_tables(query, tables).items()}
    # Unqualified, the column may be any table's; only where one table is read is it that table's.
    of = [read[qualifier]] if qualifier in read else [] if qualifier else sorted(set(read.values()))
    words = set(column.lower().split("_"))
    if len(of) != 1 or column.lower() in _NOT_RENAMED or "id" in words:
        return None
    # A key (`manager` → `manager_id`) is another thing than what it refers to: its id would answer for a name.
    held = {name for name in tables[of[0]] if words < (more := set(name.lower().split("_"))) and "id" not in more}
    if len(held) != 1:
        return None
    (name,) = held
    target = f"{qualifier}.{name}" if qualifier else name
    return _outside_quotes(_named_column(qualifier, column), query, lambda _: target, flags=re.IGNORECASE)


# A missing column a person's whole name would be in: `name`, `full_name`, `fullname`; also `<table>_name`
# (`staff_name`, `employee_name`), but not another thing's name (`team_name`).
_NAME_COLUMN = re.compile(r"(?:full_?|(\w+)_)?name", re.IGNORECASE)


def whole_named(query: str, tables: Mapping[str, Sequence[str]], split_names: Mapping[str, tuple[str, str]], *,
                error: str | None = None) -> str | None:
    """For a table keeping a person's name in two columns (`split_names`), the query comparing the two joined
    (`first_name || ' ' || last_name`) where it named the whole name in one: with Postgres' `error` for a column
    that does not exist, that column, if its name is a name column's (`name`, `full_name`) and its table (as
    qualified, or the one table read) splits names, everywhere outside quoted text; without, each comparison of
    the first or last name column with a text of several words (`first_name = 'Mei Zhou'`). None if nothing
    changes."""
    read = {alias.lower(): table for alias, table in _read_tables(query, tables).items()}
    if error is not None:
        found = _MISSING_COLUMN.search(error)
        named = None if found is None else _NAME_COLUMN.fullmatch(found.group(2))
        if found is None or named is None:
            return None
        qualifier, column = found.groups()
        of = [read[qualifier]] if qualifier in read else [] if qualifier else sorted(set(read.values()))
        prefix = (named.group(1) or "").lower()
        if len(of) != 1 or of[0] not in split_names or prefix and prefix not in (of[0].lower(), _singular(of[0])):
            return None
        joined = _joined(qualifier, split_names[of[0]])
        return _outside_quotes(_named_column(qualifier, column), query, lambda _: joined, flags=re.IGNORECASE)

    def whole(match: re.Match[str]) -> str:
        qualifier, column, text = match.groups()
        of = [read[qualifier.lower()]] if qualifier and qualifier.lower() in read else [] if qualifier else sorted(
            {t for t in read.values() if t in split_names and column in split_names[t]})
        if len(of) != 1 or column not in split_names.get(of[0], ()) or len(text.split()) < 2:
            return match.group(0)
        return f"{_joined(qualifier, split_names[of[0]])} = '{text}'"

    rewritten = _outside_quotes(_EQUALS_TEXT.pattern, query, whole)
    return None if rewritten == query else rewritten


# A comparison of a column with a text, a number or a flag: `client = 'Verdant Bank'`, `budget > 10000`.
_COMPARED = r"\s*(?:=|<>|!=|<=|>=|<|>|\bi?like\b)\s*(?:'(?:[^']|'')*'|-?\d+(?:\.\d+)?\b|\btrue\b|\bfalse\b)"


def filtered_through_key(query: str, error: str, tables: Mapping[str, Sequence[str]]) -> str | None:
    """For a query Postgres refused for a column its one table lacks (`error`), where exactly one other table has
    that column and the two share a key (`allocations.project_id` and `projects.project_id`, or `projects.id`):
    each comparison of that column (`client = 'Verdant Bank'`) as the rows whose key is among that table's rows
    compared so (`project_id IN (SELECT project_id FROM projects WHERE client = 'Verdant Bank')`), outside quoted
    text. None if there is not exactly one such table and key, or the column is used otherwise than compared (then
    the query still fails, with its own reason). Three samples of five filtered a probe's allocations on a project's
    client so, without the join."""
    found = _MISSING_COLUMN.search(error)
    if found is None:
        return None
    qualifier, column = found.groups()
    read = {alias.lower(): table for alias, table in _read_tables(query, tables).items()}
    if len(set(read.values())) != 1 or (qualifier and qualifier not in read):
        return None
    (table,) = set(read.values())
    having = [other for other, columns in tables.items() if other != table and column in columns]
    keys = [] if len(having) != 1 else _shared_keys(table, having[0], tables)
    if len(keys) != 1:
        return None
    (own, theirs), other = keys[0], having[0]
    prefix = rf"{re.escape(qualifier)}\." if qualifier else r"(?:\w+\.)?"
    compared = rf"(?<![\w.]){prefix}{re.escape(column)}(?!\w)({_COMPARED})"
    through = f"{qualifier}.{own}" if qualifier else own
    pieces = re.split(rf"('(?:[^']|'')*'|{compared})", query, flags=re.IGNORECASE)
    # re.split gives text, the match, the comparison's group, text, …: each match kept, or written through the key
    rewritten, rest = [], []
    for i in range(0, len(pieces), 3):
        rewritten.append(pieces[i])
        rest.append(pieces[i])
        if i + 1 < len(pieces):
            match, comparison = pieces[i + 1], pieces[i + 2]
            rewritten.append(match if comparison is None else
                             f"{through} IN (SELECT {theirs} FROM {other} WHERE {column}{comparison})")
            rest.append(match if comparison is None else "")
    if rewritten == [query] or re.search(rf"(?<![\w.]){prefix}{re.escape(column)}(?!\w)",
                                         re.sub(r"'(?:[^']|'')*'", "''", "".join(rest)), re.IGNORECASE):
        return None
    return "".join(rewritten)


def _shared_keys(table: str, other: str, tables: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """The keys by which `table`'s rows refer to `other`'s: a column `<other, singular>_id` of `table` matched with
    `other`'s column of that name or its `id`."""
    key = f"{_singular(other)}_id"
    if key not in tables[table]:
        return []
    if key in tables[other]:
        return [(key, key)]
    return [(key, "id")] if "id" in tables[other] else []


def _singular(table: str) -> str:
    """A table's name for one of its rows: `projects` → `project`, `categories` → `category`, `staff` → `staff`."""
    table = table.lower()
    return table[:-3] + "y" if table.endswith("ies") else table[:-1] if table.endswith("s") else table


def _joined(qualifier: str | None, split: tuple[str, str]) -> str:
    prefix = f"{qualifier}." if qualifier else ""
    return f"({prefix}{split[0]} || ' ' || {prefix}{split[1]})"


_MISSING_ALIAS = re.compile(r'missing FROM-clause entry for table "([a-z_]+)(\d)"')


def realiased(query: str, error: str, tables: Mapping[str, Sequence[str]]) -> str | None:
    """For a query Postgres refused for an alias it never defined, with a digit (`s2`): the query with that alias,
    outside quoted text, written as the one alias it defines with the same digit (`e2`); None if there is not
    exactly one such alias."""
    found = _MISSING_ALIAS.search(error)
    if found is None:
        return None
    missing, digit = found.group(1) + found.group(2), found.group(2)
    defined = {alias.lower() for alias, table in _read_tables(query, tables).items()
               if alias != table and alias.endswith(digit)} - {missing}
    if len(defined) != 1:
        return None
    (alias,) = defined
    return _outside_quotes(rf"(?<![\w.]){missing}\.", query, lambda _: f"{alias}.", flags=re.IGNORECASE)


def _outside_quotes(pattern: str, query: str, replace: Callable[[re.Match[str]], str], *, flags: int = 0) -> str:
    """`query` with each match of `pattern` outside single-quoted text (the grammar's only quoting, passed over
    whole) replaced by what `replace` makes of it; the pattern's groups keep their numbers."""
    return re.sub(rf"'(?:[^']|'')*'|{pattern}",
                  lambda m: m.group(0) if m.group(0).startswith("'") else replace(m), query, flags=flags)


def _named_column(qualifier: str | None, column: str) -> str:
    """A column as a query names it: `q.column` with its qualifier, else the bare name (not a qualified one's, nor a
    function's)."""
    return (rf"(?<![\w.]){re.escape(qualifier)}\.{re.escape(column)}(?!\w)" if qualifier
            else rf"(?<![\w.]){re.escape(column)}(?![\w.(])")


def _read_tables(query: str, tables: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """The tables a query reads, by name and by alias."""
    read = {}
    for table, alias in _FROM.findall(query):
        if table in tables:
            read[table] = table
            if alias:
                read[alias] = table
    return read


def _having(qualifier: str, column: str, read: Mapping[str, str], tables: Mapping[str, Sequence[str]]) -> list[str]:
    """The tables a filter's column may be of: the one its qualifier names, else every table read that has it."""
    if qualifier:
        return [read[qualifier]] if qualifier in read and column in tables[read[qualifier]] else []
    return sorted({t for t in read.values() if column in tables[t]})


def unlisted(query: str, listed: Mapping[str, Mapping[str, Sequence[str]]],
             tables: Mapping[str, Sequence[str]]) -> str | None:
    """For a query that found nothing (no rows, 0, NULL): a filter comparing a column to a text it does not hold, or
    None. Either every table the query reads that has the column (the one its qualifier names, if any) lists all its
    values and the text is none of them, or the column's values are not listed and the text, in any case, is a listed
    value of another column (`model = 'Electric'` where `kind` holds 'electric'). Such a filter matches nothing, and
    the query answers 0 instead of failing; the reason names the values and the column holding the text, so a rewrite
    can fix the filter."""
    read = _read_tables(query, tables)
    for qualifier, column, quoted in _EQUALS_TEXT.findall(query):
        text = quoted.replace("''", "'")
        having = _having(qualifier, column, read, tables)
        if not having or any(column in listed.get(t, {}) and text in listed[t][column] for t in having):
            continue
        holders = [(t, name, v) for t, columns in listed.items() if t in read.values()
                   for name, values in columns.items() for v in values
                   if v.lower() == text.lower() and (t, name) not in {(h, column) for h in having}]
        hint = "; " + ", ".join(f"'{v}' is a value of {t}.{name}" for t, name, v in holders) if holders else ""
        if all(column in listed.get(t, {}) for t in having):
            known = sorted({v for t in having for v in listed[t][column]})
            return f"{column} has no value '{text}' (its values: {', '.join(known)}){hint}"
        if holders:
            return f"no row has {column} '{text}'{hint}"
    return None


async def _values(conn: asyncpg.Connection, table: str, column: str) -> list[str]:
    """The column's distinct values if there are few and they read unambiguously in a list, else none."""
    try:
        values = await conn.fetch(f"SELECT DISTINCT {_quoted(column)} AS v FROM {_quoted(table)} WHERE "
                                  f"{_quoted(column)} IS NOT NULL "
                                  f"ORDER BY 1 LIMIT {VALUES_SHOWN + 1}")
    except asyncpg.QueryCanceledError:
        return []  # too large to scan at start: the sample rows still show some values
    texts = [row["v"] for row in values]
    if not texts or len(texts) > VALUES_SHOWN or any(len(t) > 40 or any(c in t for c in ",()\n") for t in texts):
        return []
    return texts


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _grammar(tables: Mapping[str, Sequence[str]], rule: str) -> str | None:
    try:
        return sql_grammar(tables, rule)
    except ValueError:  # no table a query can name
        return None


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)  # dates, decimals, uuids: as Postgres would print them
