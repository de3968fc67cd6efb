"""`stepwise prune`: old runs' trace rows deleted in one transaction."""

from __future__ import annotations

import argparse
import re
from datetime import timedelta

import asyncpg
import msgspec

from stepwise.app.inspection.common import connect
from stepwise.app.settings import Settings

TRACE_TABLES = ("events", "steps", "model_calls", "tool_calls", "verdicts")  # deleted before `runs`
_AGE = re.compile(r"^(\d+(?:\.\d+)?)([dhms])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_age(text: str) -> timedelta:
    """'30d', '12h', '45m' (or '90s') as a timedelta."""
    match = _AGE.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age like 30d, 12h or 45m")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def format_age(age: timedelta) -> str:
    """The largest unit that states `age` exactly: 30d, 36h, 90m, 45s."""
    seconds = age.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


class PruneResult(msgspec.Struct):
    runs: int
    deleted: dict[str, int]
    kept_referenced: dict[str, int]  # table → runs kept because a row of that table references them


async def prune_old(settings: Settings, age: timedelta, dry_run: bool) -> int:
    conn = await connect(settings)
    try:
        result = await prune(conn, age, dry_run)
    finally:
        await conn.close()
    verb = "would delete" if dry_run else "deleted"
    print(f"{verb} {result.runs} run(s) started more than {format_age(age)} ago")
    for table, count in result.deleted.items():
        print(f"  {table:<12} {count:>8}")
    for table, count in result.kept_referenced.items():
        print(f"kept {count} run(s) that {table} references")
    return 0


async def prune(conn: asyncpg.Connection, age: timedelta, dry_run: bool = False) -> PruneResult:
    """Delete every trace row of the runs started before now - `age`, in one transaction (rolled back on a dry run).
    A run still marked running is kept until its deadline has passed too. Nothing outside the trace tables is
    touched: a run that a table of yours references by a foreign key is kept (eval_items has no such key: eval rows
    outlive the traces they point at)."""
    references_ = await conn.fetch(
        "SELECT c.conrelid::regclass::text AS tbl, a.attname AS col FROM pg_constraint c"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
        " WHERE c.contype = 'f' AND c.confrelid = 'runs'::regclass AND cardinality(c.conkey) = 1"
    )
    references_ = [r for r in references_ if r["tbl"] not in TRACE_TABLES]
    tx = conn.transaction()
    await tx.start()
    try:
        old = [r["run_id"] for r in await conn.fetch(
            "SELECT run_id FROM runs WHERE started_at < now() - $1::interval"
            " AND (status <> 'running' OR started_at + coalesce(deadline_s, 0) * interval '1 "
            "second' < now() - $1::interval)"
            " FOR UPDATE", age)]
        kept: dict[str, int] = {}
        for ref in references_:
            held = {r["id"] for r in await conn.fetch(
                f'SELECT DISTINCT {_ident(ref["col"])} AS id FROM {ref["tbl"]} WHERE '
                f'{_ident(ref["col"])} = ANY($1::uuid[])', old)}
            if held:
                kept[ref["tbl"]] = len(held)
                old = [run_id for run_id in old if run_id not in held]
        deleted = {}
        for table in (*TRACE_TABLES, "runs"):
            status = await conn.execute(f"DELETE FROM {table} WHERE run_id = ANY($1::uuid[])", old)
            deleted[table] = int(status.split()[-1])
    except BaseException:
        await tx.rollback()
        raise
    await (tx.rollback() if dry_run else tx.commit())
    return PruneResult(runs=deleted["runs"], deleted=deleted, kept_referenced=kept)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
