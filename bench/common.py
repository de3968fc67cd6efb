"""What every benchmark shares: the machine it ran on, a scratch Postgres database, medians, markdown tables."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence

import asyncpg

from stepwise.app.migrate import migrate_url

ADMIN_URL = os.environ.get("STEPWISE_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def machine() -> str:
    """CPU model, cores, memory, Python and the date, for the line above each table."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    mem = ""
    with contextlib.suppress(OSError):
        for line in open("/proc/meminfo"):  # noqa: SIM115 — read to its end, closed when collected
            if line.startswith("MemTotal:"):
                mem = f", {int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
    load = os.getloadavg()[0]
    return (f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {load:.1f} at the start"
            f"{' (machine busy with other work)' if load > 1.5 else ''}")


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


@contextlib.asynccontextmanager
async def scratch_database(prefix: str = "stepwise_bench", *, migrated: bool = True) -> AsyncIterator[str]:
    """A database created for this benchmark and dropped after it, whatever happens; migrated by this code unless not
    `migrated` (for other code to migrate: bench.server's `--before`)."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        if migrated:
            await migrate_url(url)
        yield url
    finally:
        admin = await asyncpg.connect(ADMIN_URL)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()
