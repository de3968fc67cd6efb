"""The `stepwise` command: serve, migrate, fetch, ask, experts, sql-role; runs, trace, prune, replay (app/inspection/);
db (app/embedded.py)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import shlex
import sys

import asyncpg
import httpx
import msgspec

from stepwise.app import db, embedded
from stepwise.app import inspection as inspect_commands
from stepwise.app.config import ConfigError
from stepwise.app.logs import configure_logging
from stepwise.app.migrate import migrate
from stepwise.app.modelfiles import ModelFileError, fetch, use_fetched
from stepwise.app.registry import ExpertSpec, RegistryError, registry_for
from stepwise.app.rendering import Progress, tree
from stepwise.app.settings import Settings
from stepwise.app.sqlrole import RoleError, ensure_readonly_role, role_url
from stepwise.reasoning.report import RunReport
from stepwise.tools.sql import PrivilegedRole


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stepwise", description="Answer questions with planned, verified steps.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    commands.add_parser("migrate", help="apply database migrations")
    commands.add_parser("fetch",
                        help="download the model weights and eval data into the cache (once; they are not installed)")
    ask = commands.add_parser("ask", help="answer one question and print the answer and its steps")
    ask.add_argument("question")
    ask.add_argument("--json", action="store_true", help="print the run's report as JSON (the same as POST /v1/reason)")
    ask.add_argument("--deadline", type=float, help="seconds the whole run may take")
    experts = commands.add_parser("experts",
                                  help="list the experts (STEPWISE_EXPERTS or the embedded default), or launch SGLang "
                                       "workers")
    experts.add_argument("action", nargs="?", choices=["list", "launch"], default="list")
    experts.add_argument("--server",
                         help="a running stepwise server to ask for live health and load, e.g. http://127.0.0.1:8000")
    experts.add_argument("--dry-run", action="store_true",
                         help="launch: print the command lines instead of running them")
    experts.add_argument("--timeout", type=float, default=900.0,
                         help="launch: seconds to wait for each server's /health")
    sql_role = commands.add_parser("sql-role",
                                   help="create (or repair) the read-only role the sql tool connects as, and print its "
                                        "URL")
    sql_role.add_argument("role", help="a new role name, e.g. stepwise_reader")
    sql_role.add_argument("--url", required=True,
                          help="an admin (superuser) URL of the database the sql tool will query")
    sql_role.add_argument("--schema", default="public",
                          help="the schema whose tables the role may read (default public)")
    sql_role.add_argument("--password", action="store_true",
                          help="ask for a password to set (needed unless the server trusts the role)")
    inspect_commands.add_parsers(commands)
    embedded.add_parser(commands)
    from stepwise.evals import cli as evals_cli  # here, not at module level: app does not import evals
    from stepwise.evals import optimize_cli

    evals_cli.add_parser(commands)
    optimize_cli.add_parser(commands)
    args = parser.parse_args(argv)

    settings = Settings.from_env(**({"host": args.host, "port": args.port} if args.command == "serve" else {}))
    configure_logging(settings.log_level if args.command == "serve" else _quiet(settings))
    use_fetched(settings.cache_dir)  # the eval datasets' packages, fetched into the cache rather than installed
    try:
        if args.command == "fetch":
            return _fetch(settings)
        if args.command == "serve":
            return _serve(settings)
        if args.command == "migrate":
            return asyncio.run(_migrate(settings))
        if args.command == "experts":
            return _experts(settings, args)
        if args.command == "sql-role":
            return asyncio.run(_sql_role(args))
        if args.command == "db":
            return embedded.run(args, settings)
        if args.command in inspect_commands.COMMANDS:
            return inspect_commands.run(args, settings)
        if args.command == "eval":
            return evals_cli.run(args, settings)
        if args.command == "optimize":
            return optimize_cli.run(args, settings)
        return asyncio.run(_ask(settings, args.question, args.json, args.deadline))
    except (ConfigError, ModelFileError, RegistryError, RoleError, PrivilegedRole) as exc:
        print(f"stepwise: {exc}", file=sys.stderr)
        return 2


def _quiet(settings: Settings) -> str:
    return settings.log_level if settings.log_level != "info" else "warning"


def _serve(settings: Settings) -> int:
    import uvicorn

    from stepwise.app.routes import create_app
    from stepwise.app.serve import GracefulServer, describe_database, describe_model, ready_line

    def announce(url: str) -> None:
        print(ready_line(url, model=describe_model(settings), database=describe_database(settings)), file=sys.stderr,
              flush=True)

    app = create_app(settings)

    async def drain() -> None:
        if (runtime := getattr(app.state, "runtime", None)) is not None:
            await runtime.drain(settings.shutdown_grace_s)

    # timeout_graceful_shutdown bounds the wait for replies still being sent after the runs have ended (a client
    # reading slowly); past it uvicorn cancels them.
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                            timeout_graceful_shutdown=5)
    GracefulServer(config, announce, drain).run()
    return 0


def _fetch(settings: Settings) -> int:
    fetched = fetch(settings.cache_dir, say=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"fetched {len(fetched)} package(s) into {settings.cache_dir}" if fetched
          else f"up to date: {settings.cache_dir}")
    return 0


def _experts(settings: Settings, args: argparse.Namespace) -> int:
    from stepwise.app.experts import launch, launch_plan

    registry = registry_for(settings)
    if args.action == "launch":
        plan = launch_plan(registry)
        if not plan:
            print("no SGLang expert with a model_path to launch", file=sys.stderr)
            return 1
        if args.dry_run:
            for item in plan:
                print(f"# {item.expert}, healthy when {item.health_url} answers 200\n{shlex.join(item.argv)}")
            return 0
        processes = launch(plan, args.timeout)
        try:
            for process in processes:
                process.wait()
        except KeyboardInterrupt:
            for process in processes:
                process.terminate()
        return 0
    if args.server:
        reply = httpx.get(args.server.rstrip("/") + "/v1/experts", timeout=30)
        reply.raise_for_status()
        rows = reply.json()
    else:
        rows = [_offline_status(spec) for spec in registry.experts]
    print(f"{'expert':<14} {'backend':<14} {'healthy':<8} {'load':<7} {'skills':<24} where")
    for row in rows:
        in_flight = "-" if row["in_flight"] is None else row["in_flight"]
        load = f"{in_flight}/{row['max_concurrency']}"
        print(f"{row['name']:<14} {row['backend']:<14} {str(row['healthy']).lower():<8} {load:<7} "
              f"{','.join(row['skills']):<24} {row['url'] or row['model']}")
    for row in rows:  # what a server's own flags mean here, e.g. it reports no cached tokens (not a cold cache)
        for note in row.get("notes") or ():
            print(f"{row['name']}: {note}")
    return 0


def _offline_status(spec: ExpertSpec) -> dict:
    """Without a server: a remote expert's /health is probed; a local one exists only inside a running server."""
    healthy: bool | str = "embedded"
    if spec.url:
        try:
            path = "/v1/models" if spec.backend == "openai" else "/health"
            healthy = httpx.get(spec.url.rstrip("/") + path, timeout=5).status_code == 200
        except httpx.HTTPError:
            healthy = False
    from stepwise.app.experts import server_notes

    return {"name": spec.name, "backend": spec.backend, "healthy": healthy, "in_flight": None,
            "max_concurrency": spec.max_concurrency, "skills": spec.skills, "url": spec.url, "model": spec.model,
            "notes": server_notes(spec) if healthy is True else []}


async def _migrate(settings: Settings) -> int:
    url = await asyncio.to_thread(db.database_url, settings.database_url, settings.data_dir)
    conn = await db.connect(url)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    print(f"applied {len(applied)} migration(s): {', '.join(applied)}" if applied else "database is up to date")
    return 0


async def _sql_role(args: argparse.Namespace) -> int:
    password = getpass.getpass(f"password for {args.role}: ") if args.password else None
    try:
        conn = await asyncpg.connect(args.url, timeout=10)
        try:
            await ensure_readonly_role(conn, args.role, schema=args.schema, password=password)
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError) as exc:
        raise RoleError(f"could not set up role {args.role}: {exc}") from exc
    print(f"role {args.role} may read the tables of schema {args.schema} and nothing else; use", file=sys.stderr)
    print(f"STEPWISE_SQL_URL={shlex.quote(role_url(args.url, args.role, password=password))}")
    return 0


async def _ask(settings: Settings, question: str, as_json: bool, deadline: float | None) -> int:
    from stepwise.app.runtime import Runtime  # loads the model library only for commands that need it

    print("starting: database, model…", file=sys.stderr)
    runtime = await Runtime.start(settings)
    try:
        report = await runtime.ask(question, deadline, Progress())
    finally:
        await runtime.close()
    return show(report, as_json)


def show(report: RunReport, as_json: bool, out=None, err=None) -> int:
    """Print `ask`'s result: the tree, or the report as JSON on stdout and — the run having failed — why on stderr
    (stdout is then for programs; the person at the terminal still learns it). Returns the exit status."""
    out, err = out or sys.stdout, err or sys.stderr
    if as_json:
        out.write(msgspec.json.encode(report).decode() + "\n")
        if report.error is not None:
            print(f"the run failed ({report.error.type}): {report.error.message}", file=err)
    else:
        print(tree(report), file=out)
    return 0 if report.status == "finished" else 1


if __name__ == "__main__":
    raise SystemExit(main())
