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


def stepwise(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"STEPWISE_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True, timeout=180)


def test_migrate_starts_an_embedded_postgres_and_the_next_run_reuses_it(data_dir):
    """The first `stepwise migrate` creates the cluster and applies everything; the second finds it up to date."""
    first = stepwise("migrate", data_dir=data_dir)
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout and "0001_trace.sql" in first.stdout
    assert (data_dir / "pgdata" / "PG_VERSION").is_file()
    second = stepwise("migrate", data_dir=data_dir)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "database is up to date"
