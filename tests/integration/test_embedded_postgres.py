"""Without DATABASE_URL, stepwise starts an embedded Postgres (pgserver) in its data directory and reuses it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def data_dir():
    path = Path(tempfile.mkdtemp(prefix="stepwise-data-"))
    path.chmod(0o755)  # as root, pgserver runs Postgres as its own user, which must reach the data directory
    yield path
    import pgserver

    pgserver.get_server(path / "pgdata", cleanup_mode="delete").cleanup()
    shutil.rmtree(path, ignore_errors=True)


def stepwise(*args: str, data_dir: Path, **extra_env: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k != "DATABASE_URL"} | {"STEPWISE_DATA_DIR": str(data_dir)} | extra_env
    return subprocess.run([sys.executable, "-m", "stepwise.app.cli", *args], env=env, capture_output=True, text=True,
                          timeout=180)


def test_migrate_starts_an_embedded_postgres_and_the_next_run_reuses_it(data_dir):
    """The first `stepwise migrate` creates the cluster and applies everything; the second finds it up to date."""
    first = stepwise("migrate", data_dir=data_dir)
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout and "0001_trace.sql" in first.stdout
    assert (data_dir / "pgdata" / "PG_VERSION").is_file()
    second = stepwise("migrate", data_dir=data_dir)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "database is up to date"


def test_db_status_and_stop_manage_the_embedded_postgres(data_dir, tmp_path):
    """`db status` says whether the embedded Postgres runs and how much disk pgdata and the model cache use; `db stop`
    stops it (status then says so); stopping a stopped server is no error."""
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / "m.gguf").write_bytes(b"\0" * 3_000_000)
    env = {"STEPWISE_CACHE_DIR": str(cache)}
    assert stepwise("migrate", data_dir=data_dir).returncode == 0
    running = stepwise("db", "status", data_dir=data_dir, **env)
    assert running.returncode == 0, running.stderr
    assert f"embedded Postgres in {data_dir / 'pgdata'}: running (pid " in running.stdout
    assert "pgdata uses" in running.stdout and "model cache" in running.stdout and "3.0 MB" in running.stdout
    stopped = stepwise("db", "stop", data_dir=data_dir, **env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
    after = stepwise("db", "status", data_dir=data_dir, **env)
    assert after.returncode == 0 and ": not running" in after.stdout
    again = stepwise("db", "stop", data_dir=data_dir, **env)
    assert again.returncode == 0 and "not running" in again.stdout


def test_db_status_before_the_first_run_says_nothing_was_created(data_dir):
    """No pgdata yet: status says so and creates nothing."""
    status = stepwise("db", "status", data_dir=data_dir)
    assert status.returncode == 0 and "not created yet" in status.stdout
    assert not (data_dir / "pgdata").exists()


def test_db_commands_leave_a_configured_database_alone(data_dir):
    """With DATABASE_URL set there is no embedded server: status names the configured one, stop refuses (exit 1)."""
    env = {"DATABASE_URL": "postgresql://ada:s3cret@db.example:6543/traces"}
    status = stepwise("db", "status", data_dir=data_dir, **env)
    assert status.returncode == 0 and "db.example:6543/traces" in status.stdout and "s3cret" not in status.stdout
    stop = stepwise("db", "stop", data_dir=data_dir, **env)
    assert stop.returncode == 1 and "DATABASE_URL" in stop.stderr
