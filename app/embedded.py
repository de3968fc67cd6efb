"""`stepwise db status` and `stepwise db stop`: the embedded Postgres (pgserver) that `ask`, `serve` and the other
commands start in `STEPWISE_DATA_DIR/pgdata` and leave running for the next command; and the disk it and the model
cache use. Neither command starts a server: they read pgdata's postmaster.pid."""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

from stepwise.app.serve import describe_database
from stepwise.app.settings import Settings


def add_parser(commands: argparse._SubParsersAction) -> None:
    db = commands.add_parser("db", help="the embedded Postgres: status (and disk used by it and the model cache), stop")
    db.add_argument("action", choices=["status", "stop"])


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "status":
        print(status(settings))
        return 0
    if settings.database_url:
        print(f"stepwise: DATABASE_URL is set ({describe_database(settings)}); stepwise does not start or stop that "
              "server: `db stop` stops only the embedded one", file=sys.stderr)
        return 1
    print(stop(settings.data_dir / "pgdata"))
    return 0


def status(settings: Settings) -> str:
    """Whether the embedded Postgres runs, then the disk its pgdata and the model cache use."""
    pgdata = settings.data_dir / "pgdata"
    if settings.database_url:
        first = (f"the database is DATABASE_URL's: {describe_database(settings)}; not embedded, so stepwise does not "
                 "start or stop it")
    elif not (pgdata / "PG_VERSION").exists():
        first = f"embedded Postgres in {pgdata}: not created yet (the first command that needs it creates it)"
    elif (info := _postmaster(pgdata)) is not None and info.is_running():
        where = f"socket {info.socket_dir}" if info.socket_dir else f"{info.hostname}:{info.port}"
        first = (f"embedded Postgres in {pgdata}: running (pid {info.pid}, {where}, since "
                 f"{info.start_time:%Y-%m-%d %H:%M}); `stepwise db stop` stops it")
    else:
        first = f"embedded Postgres in {pgdata}: not running (the next command that needs it starts it)"
    lines = [first]
    if pgdata.exists():
        lines.append(f"pgdata uses {human_size(disk_used(pgdata))}")
    lines.append(f"the model cache {settings.cache_dir} uses {human_size(disk_used(settings.cache_dir))}")
    return "\n".join(lines)


def stop(pgdata: Path) -> str:
    """Stop the embedded server (fast shutdown: sessions are ended, committed data is kept)."""
    info = _postmaster(pgdata)
    if info is None or not info.is_running():
        return f"embedded Postgres in {pgdata}: not running"
    from pgserver import _commands  # its pg_ctl is made at import time by this factory, which a checker can read

    pg_ctl = _commands.create_command_function("pg_ctl")

    try:
        # As root, pgserver runs Postgres as its own user `pgserver`, and pg_ctl refuses to run as root.
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user="pgserver" if os.geteuid() == 0 else None, timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        if info.process is not None:
            info.process.terminate()
            info.process.wait(30)
    return f"embedded Postgres in {pgdata}: stopped (pid {info.pid})"


def disk_used(path: Path) -> int:
    """Bytes in the files under `path` (0 if it does not exist); symbolic links are not followed."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a file Postgres removed while we walked
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def human_size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _postmaster(pgdata: Path):
    """pgdata's postmaster.pid read by pgserver (None without one); `.is_running()` says whether its process lives."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on headless machines
        from pgserver.utils import PostmasterInfo

        return PostmasterInfo.read_from_pgdata(pgdata)
