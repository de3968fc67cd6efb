"""The sql tool against hostile queries (issue 10 §2), on a real Postgres. A read-only transaction does not stop what
a role's privileges allow inside one SELECT; so, as the read-only role `stepwise sql-role` makes, every attack that
works for a superuser — a shell command, a server file written or read, a large object imported, the password
hashes, another session ended — is refused and leaves nothing behind. A superuser, or any role that reaches files,
programs or other sessions however it got there, is refused when the tool starts, by name, with the fix; the loudly
named opt-out gives those powers back, and the tests show that it does."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import msgspec
import pytest

from stepwise.app.cli import main as stepwise
from stepwise.app.sqlrole import RoleError, ensure_readonly_role, role_url
from stepwise.reasoning.report import RunReport
from stepwise.tools.sql import PrivilegedRole, SqlArgs, SqlTool
from tests.conftest import LiveServer, readonly_role, scratch_database, settings_for

PID = os.getpid()
SCRATCH_DB = f"stepwise_sqlsec_{PID}"
READER = f"stepwise_sqlsec_reader_{PID}"
APP_ROLE = f"stepwise_sqlsec_app_{PID}"  # an ordinary role of some other application, whose sessions must survive
OUT = Path(f"/tmp/stepwise_sqlsec_{PID}.out")  # where the server's postgres user could write, were it allowed
REPO = Path(__file__).resolve().parents[2]
SCHEMA = f"""
CREATE TABLE company (id int PRIMARY KEY, name text); INSERT INTO company VALUES (1, 'Acme');
CREATE SCHEMA private; CREATE TABLE private.secrets (s text); INSERT INTO private.secrets VALUES ('x');
DROP ROLE IF EXISTS {APP_ROLE}; CREATE ROLE {APP_ROLE} LOGIN;
"""

# The attacks, and the same class by other roads. {out}: a file nobody may create; {pid}: another session.
ATTACKS = {
    "shell command": "COPY (SELECT 1) TO PROGRAM 'id > {out}'",
    "shell command, reading": "COPY company FROM PROGRAM 'id > {out}'",
    "server file written": "COPY company TO '{out}'",
    "large object imported": "SELECT lo_import('/etc/passwd')",
    "large object exported": "SELECT lo_export(lo_from_bytea(0, 'x'), '{out}')",
    "server file read": "SELECT pg_read_file('/etc/passwd')",
    "server file read as bytes": "SELECT pg_read_binary_file('/etc/passwd')",
    "server file stat": "SELECT pg_stat_file('/etc/passwd')",
    "server directory listed": "SELECT pg_ls_dir('/')",
    "password hashes": "SELECT rolname, rolpassword FROM pg_authid",
    "password hashes, the view": "SELECT usename, passwd FROM pg_shadow",
    "another role's session ended": "SELECT pg_terminate_backend({pid})",
    "the admin's session ended": "SELECT pg_terminate_backend({admin_pid})",
    "becoming the admin": "SELECT set_config('role', '{admin}', false)",
    "becoming the admin, the session": "SELECT set_config('session_authorization', '{admin}', false)",
    "server configuration reloaded": "SELECT pg_reload_conf()",
    "another schema read": "SELECT * FROM private.secrets",
}


class Scratch(msgspec.Struct):
    admin_url: str
    reader_url: str
    admin: str


@pytest.fixture(scope="module")
async def scratch():
    """A scratch database with a public table and a private one, and the read-only role for its public schema."""
    async with scratch_database(SCRATCH_DB, roles=[READER, APP_ROLE]) as url:
        reader_url = await readonly_role(url, READER, SCHEMA)
        conn = await asyncpg.connect(url)
        yield Scratch(url, reader_url, await conn.fetchval("SELECT session_user"))
        await conn.close()


@pytest.fixture
def out():
    OUT.unlink(missing_ok=True)
    yield OUT
    OUT.unlink(missing_ok=True)  # root may remove what the postgres user wrote in /tmp


async def ask(tool: SqlTool, query: str):
    return await tool.run(msgspec.convert({"query": query}, SqlArgs))


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_as_the_read_only_role_every_attack_is_refused_and_leaves_nothing_behind(scratch, out, attack):
    """Each is refused for lack of privilege; no file appears, no large object is stored, both other sessions live."""
    admin = await asyncpg.connect(scratch.admin_url)
    other = await asyncpg.connect(role_url(scratch.admin_url, APP_ROLE))
    try:
        objects = await admin.fetchval("SELECT count(*) FROM pg_largeobject_metadata")
        query = ATTACKS[attack].format(out=out, pid=other.get_server_pid(), admin_pid=admin.get_server_pid(),
                                       admin=scratch.admin)
        tool = await SqlTool.connect(scratch.reader_url)
        with pytest.raises(ValueError, match="InsufficientPrivilegeError") as refused:
            await ask(tool, query)
        assert "root:" not in str(refused.value)
        assert not out.exists()
        assert await admin.fetchval("SELECT count(*) FROM pg_largeobject_metadata") == objects
        assert await other.fetchval("SELECT 1") == 1 and await admin.fetchval("SELECT 1") == 1
    finally:
        await other.close()
        await admin.close()


async def test_the_read_only_role_still_reads_its_schema_and_cannot_turn_a_transaction_writable(scratch):
    """Its own tables answer; switching the transaction to read-write from inside the query is refused."""
    tool = await SqlTool.connect(scratch.reader_url)
    assert tool.privileges == ()
    assert (await ask(tool, "SELECT name FROM company"))["rows"] == [["Acme"]]
    with pytest.raises(ValueError, match="read-write mode must be set before any query"):
        await ask(tool, "SELECT set_config('transaction_read_only', 'off', true)")


async def test_a_superuser_url_is_refused_at_start_naming_the_role_the_privilege_and_the_fix(scratch):
    """The refusal says which role, that it is a superuser, how to make a read-only one, and what the opt-out is."""
    with pytest.raises(PrivilegedRole) as refused:
        await SqlTool.connect(scratch.admin_url)
    message = str(refused.value)
    assert f"role {scratch.admin!r}" in message and "is a superuser" in message
    assert "stepwise sql-role" in message and "docs/sql-readonly-role.sql" in message
    assert "STEPWISE_SQL_ALLOW_PRIVILEGED_ROLE=1" in message


@pytest.mark.parametrize(
    ("setup", "named"),
    [
        ("CREATE ROLE {group} NOLOGIN; GRANT pg_execute_server_program TO {group}; GRANT {group} TO {role}",
         "member of pg_execute_server_program"),
        ("GRANT pg_read_server_files TO {role}", "member of pg_read_server_files"),
        ("GRANT pg_write_server_files TO {role}", "member of pg_write_server_files"),
        ("GRANT pg_signal_backend TO {role}", "member of pg_signal_backend"),
        ("GRANT pg_read_all_data TO {role}", "member of pg_read_all_data"),
        ("ALTER ROLE {role} NOINHERIT; GRANT pg_execute_server_program TO {role}",
         "member of pg_execute_server_program"),
        ("CREATE ROLE {group} NOLOGIN SUPERUSER; GRANT {group} TO {role}",
         f"is a superuser: may run programs, read and write server files and end any session (through role "
         f"stepwise_sqlsec_group_{PID})"),
        ("ALTER ROLE {role} CREATEROLE", "has CREATEROLE"),
        ("ALTER ROLE {role} BYPASSRLS", "has BYPASSRLS"),
        ("GRANT EXECUTE ON FUNCTION pg_read_file(text) TO {role}", "may execute pg_read_file()"),
    ],
    ids=["through a group", "read files", "write files", "signal", "read all data", "noinherit member",
         "superuser group", "createrole", "bypassrls", "execute pg_read_file"],
)
async def test_a_role_that_reaches_past_its_tables_is_refused_however_it_got_there(scratch, setup, named):
    """Direct or inherited membership of the predefined roles — even NOINHERIT, since one SELECT can SET ROLE with
    set_config — the attributes that lead there, or a granted file function: the tool will not start."""
    role, group = f"stepwise_sqlsec_priv_{PID}", f"stepwise_sqlsec_group_{PID}"
    admin = await asyncpg.connect(scratch.admin_url)
    try:
        await admin.execute(f"DROP ROLE IF EXISTS {role}; DROP ROLE IF EXISTS {group}; CREATE ROLE {role} LOGIN;"
                            f"GRANT SELECT ON company TO {role};" + setup.format(role=role, group=group))
        with pytest.raises(PrivilegedRole) as refused:
            await SqlTool.connect(role_url(scratch.admin_url, role))
        assert f"role {role!r}" in str(refused.value) and named in str(refused.value)
    finally:
        await admin.execute(f"DROP OWNED BY {role}; DROP ROLE IF EXISTS {role}; DROP ROLE IF EXISTS {group}")
        await admin.close()


async def test_the_opt_out_starts_the_tool_and_gives_a_superuser_every_attack_back(scratch, out):
    """STEPWISE_SQL_ALLOW_PRIVILEGED_ROLE is not a safer mode: the tool says what the role may do, and a shell command
    and a file read go through, exactly as the issue found."""
    tool = await SqlTool.connect(scratch.admin_url, allow_privileged_role=True)
    assert tool.privileges and "is a superuser" in tool.privileges[0]
    await ask(tool, f"COPY (SELECT 1) TO PROGRAM 'id > {out}; cat > /dev/null'")  # read the row: no broken pipe
    assert out.read_text().startswith("uid=")
    assert "root:" in (await ask(tool, "SELECT pg_read_file('/etc/passwd')"))["rows"][0][0]


async def test_making_the_role_again_takes_back_what_it_was_given(scratch):
    """A role made superuser and put in pg_execute_server_program is brought back to read-only by the same call."""
    admin = await asyncpg.connect(scratch.admin_url)
    try:
        await admin.execute(f"ALTER ROLE {READER} SUPERUSER CREATEROLE; GRANT pg_execute_server_program TO {READER};"
                            f"GRANT INSERT ON company TO {READER}")
        with pytest.raises(PrivilegedRole):
            await SqlTool.connect(scratch.reader_url)
        await ensure_readonly_role(admin, READER)
        assert (await SqlTool.connect(scratch.reader_url)).privileges == ()
        assert not await admin.fetchval("SELECT has_table_privilege($1, 'company', 'INSERT')", READER)
    finally:
        await ensure_readonly_role(admin, READER)
        await admin.close()


async def test_the_admin_itself_or_a_role_owning_tables_is_not_made_the_reader(scratch):
    """Demoting the admin would lock its user out, and an owner can always write what it owns: both are refused."""
    owner = f"stepwise_sqlsec_owner_{PID}"
    admin = await asyncpg.connect(scratch.admin_url)
    try:
        with pytest.raises(RoleError, match="is the role running this"):
            await ensure_readonly_role(admin, scratch.admin)
        await admin.execute(f"DROP ROLE IF EXISTS {owner}; CREATE ROLE {owner}; CREATE TABLE owned (x int); ALTER "
                            f"TABLE owned OWNER TO {owner}")
        with pytest.raises(RoleError, match="owns table owned"):
            await ensure_readonly_role(admin, owner)
        assert await admin.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = session_user")
    finally:
        await admin.execute(f"DROP TABLE IF EXISTS owned; DROP ROLE IF EXISTS {owner}")
        await admin.close()


def test_stepwise_sql_role_prints_a_url_the_tool_accepts(scratch, capsys):
    """`stepwise sql-role ROLE --url ADMIN_URL` makes the role and prints STEPWISE_SQL_URL=… for it."""
    role = f"stepwise_sqlsec_cli_{PID}"
    try:
        assert stepwise(["sql-role", role, "--url", scratch.admin_url]) == 0
        line = capsys.readouterr().out.strip()
        assert line == f"STEPWISE_SQL_URL={role_url(scratch.admin_url, role)}"
        assert run_sync(SqlTool.connect(line.partition("=")[2])).privileges == ()
        assert stepwise(["sql-role", scratch.admin, "--url", scratch.admin_url]) == 2  # the admin is not demoted
        assert "is the role running this" in capsys.readouterr().err
    finally:
        run_sync(drop_role(scratch.admin_url, role))


def test_the_plain_sql_file_makes_the_same_role(scratch):
    """docs/sql-readonly-role.sql run by psql (twice: it is idempotent) gives a role the tool accepts and that cannot
    run a shell command."""
    role = f'stepwise sqlsec "file" {PID}'  # a name that needs quoting
    try:
        for _ in range(2):
            subprocess.run(["psql", scratch.admin_url, "-q", "-v", f"role={role}", "-v", "schema=public",
                            "-f", str(REPO / "docs" / "sql-readonly-role.sql")], check=True, capture_output=True,
                           timeout=60)
        tool = run_sync(SqlTool.connect(role_url(scratch.admin_url, role)))
        assert tool.privileges == ()
        with pytest.raises(ValueError, match="pg_execute_server_program"):
            run_sync(ask(tool, f"COPY (SELECT 1) TO PROGRAM 'id > {OUT}'"))
    finally:
        run_sync(drop_role(scratch.admin_url, role))


def test_stepwise_serve_with_a_superuser_url_fails_to_start_with_the_refusal(database_url, scratch):
    """The real server process exits at startup, its output naming the role and the fix; nothing listens."""
    proc = subprocess.run([sys.executable, "-m", "stepwise.app.cli", "serve"],
                          env=serve_env(database_url, scratch.admin_url),
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode != 0
    assert f"the sql tool refuses to log in as role {scratch.admin!r}" in proc.stderr
    assert "stepwise sql-role" in proc.stderr


def test_stepwise_serve_with_the_opt_out_starts_and_warns_what_the_role_may_do(database_url, scratch):
    """With STEPWISE_SQL_ALLOW_PRIVILEGED_ROLE=1 the server goes on starting, after a warning naming the opt-out."""
    env = serve_env(database_url, scratch.admin_url) | {"STEPWISE_SQL_ALLOW_PRIVILEGED_ROLE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "stepwise.app.cli", "serve"], env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, cwd=REPO)
    try:
        warning = read_until(proc, "sql_tool_role_is_privileged", timeout=120)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert ('"level":"warning"' in warning and "STEPWISE_SQL_ALLOW_PRIVILEGED_ROLE" in warning
            and "is a superuser" in warning)


@pytest.fixture(scope="module")
def reader_server(database_url, scratch):
    """The real HTTP server with the sql tool logged in as the read-only role (SmolLM2 loaded, never asked)."""
    with LiveServer(settings_for(database_url, "smollm2", sql_url=scratch.reader_url, deadline_s=60.0)) as server:
        yield server


@pytest.mark.model
@pytest.mark.parametrize(
    ("attack", "refusal"),
    [
        ("COPY (SELECT 1) TO PROGRAM 'id > {out}'", "pg_execute_server_program"),
        ("COPY company TO '{out}'", "pg_write_server_files"),
        ("SELECT pg_read_file('/etc/passwd')", "permission denied for function pg_read_file"),
        # "superuser process" here; "process" for a non-superuser app role
        ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{trace_db}'", "to terminate"),
    ],
    ids=["shell", "file written", "file read", "trace connections ended"],
)
def test_over_http_an_imperative_plan_cannot_escape_through_the_sql_tool(reader_server, database_url, out, attack,
                                                                         refusal):
    """As the issue's attacker did: a caller's plan with one hostile sql step. The step fails naming the missing
    privilege, nothing is written, and the server's own trace connections live: the run is recorded."""
    query = attack.format(out=out, trace_db=database_url.rsplit("/", 1)[1])
    plan = {"steps": [{"id": 1, "kind": "tool", "target": "sql", "input": {"query": query}, "depends_on": []}]}
    reply = reader_server.client.post("/v1/reason", json={"question": "q", "plan": plan,
                                                          "budget": {"max_model_calls": 0}})
    report = msgspec.json.decode(reply.content, type=RunReport)
    error = report.steps[0].error
    assert report.steps[0].status == "failed" and "InsufficientPrivilegeError" in error and refusal in error
    assert not out.exists()
    recorded = reader_server.client.get(f"/v1/runs/{report.run_id}")  # written by the trace sink's connection
    assert recorded.status_code == 200 and recorded.json()["steps"][0]["error"] == report.steps[0].error


def serve_env(database_url: str, sql_url: str) -> dict[str, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return dict(os.environ) | {"DATABASE_URL": database_url, "STEPWISE_SQL_URL": sql_url, "STEPWISE_MODEL": "smollm2",
                               "STEPWISE_PORT": str(port), "STEPWISE_LOG_LEVEL": "info"}


def read_until(proc: subprocess.Popen, needle: str, timeout: float) -> str:
    """The first line of the process's stderr holding `needle`; fails if it exits or the time runs out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([proc.stderr], [], [], 1)[0]:
            line = proc.stderr.readline()
            if needle in line:
                return line
            if not line and proc.poll() is not None:
                break
    raise AssertionError(f"no {needle!r} line from the server (exit status {proc.poll()})")


def run_sync(coro):
    import asyncio

    return asyncio.run(coro)


async def drop_role(admin_url: str, role: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        if await admin.fetchval("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role):
            name = await admin.fetchval("SELECT quote_ident($1)", role)
            await admin.execute(f"DROP OWNED BY {name}; DROP ROLE {name}")
    finally:
        await admin.close()
