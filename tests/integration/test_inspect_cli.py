"""`stepwise runs`, `trace` and `prune`, called in-process against the real test database (no model loaded)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from stepwise.app import db
from stepwise.app.cli import main
from tests.conftest import query_sync
from tests.fixtures.known_run import QUESTION, known_run, record

TABLES = ("events", "steps", "model_calls", "tool_calls", "verdicts", "runs")


def recorded(database_url: str, t0: float) -> uuid.UUID:
    run_id = uuid.uuid4()

    async def write() -> None:
        conn = await db.connect(database_url)
        try:
            await record(conn, known_run(run_id, t0))
        finally:
            await conn.close()

    asyncio.run(write())
    return run_id




def counts(database_url: str, run_id: uuid.UUID) -> dict[str, int]:
    return {t: query_sync(database_url, f"SELECT count(*) AS n FROM {t} WHERE run_id = $1", run_id)[0]["n"]
            for t in TABLES}


@pytest.fixture
def cli(database_url, monkeypatch, capsys):
    """Runs `stepwise ARGS…` against the test database; returns (exit status, stdout, stderr)."""
    monkeypatch.setenv("DATABASE_URL", database_url)

    def run(*argv: str) -> tuple[int, str, str]:
        status = main(list(argv))
        out = capsys.readouterr()
        return status, out.out, out.err

    return run


def test_runs_lists_recent_runs_newest_first_with_their_numbers(cli, database_url):
    """One line per run: short id, status, latency, steps (with failed ones after '!'), tokens and the question."""
    # Started in the future, so that runs other tests recorded in this session's database are older than both.
    first, second = recorded(database_url, time.time() + 3600), recorded(database_url, time.time() + 3660)
    status, out, _ = cli("runs", "--limit", "2")
    lines = out.splitlines()
    assert status == 0 and len(lines) == 3 and lines[0].startswith("run ")
    assert lines[1].startswith(str(second)[:8]) and lines[2].startswith(str(first)[:8])
    assert lines[1].split()[3:10] == ["finished", "2.0", "s", "3!1", "350/48", "0.00035",
                                      "How"] and lines[1].endswith(QUESTION)


def test_trace_draws_each_plan_as_a_tree_with_timings_calls_and_verdicts(cli, database_url):
    """A run id prefix is enough; steps hang under what they waited for; the replan starts a second tree in which
    the kept step is marked and the rerun step shows its new input and result."""
    run_id = recorded(database_url, float(int(time.time())))
    status, out, _ = cli("trace", str(run_id)[:8])
    lines = out.splitlines()
    assert (status == 0 and lines[0] == "Three spiders have 24 legs."
            and lines[1].startswith(f"run {run_id} finished in 2.0s · 5 model call(s)"))
    assert lines[2] == f"question: {QUESTION}"
    assert lines[3].startswith("plan     at 0.0 ms for 500.0 ms · general · 100 in (80 cached) / 20 out")
    assert lines[4] == "steps, plan 1:"
    assert lines[5].startswith("└─ [1] general: How many legs does a spider have? Reply with a number. → 8 · "
                               "at 500.0 ms for 420.0 ms · "
                               "general, 2 call(s), 70 in / 3 out ✗numeric_sanity(retry: asked "
                               "for a number, got 'eight')")
    assert lines[6].startswith("   └─ [2] calculator: eight*3 → FAILED tool_error: calculator refused")
    assert (lines[7].startswith("replanned (1) after step 2 failed:")
            and lines[8].startswith("replan   at 930.0 ms for 500.0 ms"))
    assert lines[9:12] == [
        "steps of the repaired plan 2:",
        "└─ [1] general: How many legs does a spider have? Reply with a number.  (kept from the plan before)",
        "   └─ [2] calculator: 8*3 → 24 · at 1500.0 ms for 2.0 ms ✓tool_recomputed",
    ]
    assert lines[12].startswith("compose  at 1600.0 ms for 400.0 ms") and len(lines) == 13


def test_trace_of_an_unknown_run_says_so_and_exits_1(cli):
    """An id nobody recorded and a malformed one are both reported on stderr."""
    assert cli("trace", str(uuid.uuid4()))[0] == 1
    status, _, err = cli("trace", "not-an-id")
    assert status == 1 and "is not a run id" in err


def test_prune_deletes_exactly_the_old_runs_rows_in_every_table_and_keeps_the_new(cli, database_url):
    """A dry run counts without deleting; the real one removes every trace row of the 40-day-old run, prints how
    many per table, and leaves the run of today whole."""
    old, new = recorded(database_url, time.time() - 40 * 86400), recorded(database_url, time.time())
    before_old, before_new = counts(database_url, old), counts(database_url, new)
    assert all(before_old.values())
    status, out, _ = cli("prune", "--older-than", "30d", "--dry-run")
    assert status == 0 and out.startswith("would delete 1 run(s) started more than 30d ago")
    assert counts(database_url, old) == before_old
    status, out, _ = cli("prune", "--older-than", "30d")
    printed = {line.split()[0]: int(line.split()[1]) for line in out.splitlines()[1:]}
    assert status == 0 and out.startswith("deleted 1 run(s)") and printed == before_old
    assert counts(database_url, old) == dict.fromkeys(TABLES, 0) and counts(database_url, new) == before_new


def test_prune_keeps_a_run_another_table_references_by_foreign_key(cli, database_url):
    """A row outside the trace (as an eval item might be) that references an old run keeps that run and its rows."""
    old = recorded(database_url, time.time() - 3 * 3600)
    query_sync(database_url, "CREATE TABLE held_runs (run_id uuid REFERENCES runs (run_id))")
    try:
        query_sync(database_url, "INSERT INTO held_runs VALUES ($1)", old)
        status, out, _ = cli("prune", "--older-than", "2h")
        assert status == 0 and "kept 1 run(s) that held_runs references" in out
        assert counts(database_url, old)["steps"] == 3
    finally:
        query_sync(database_url, "DROP TABLE held_runs")


def test_prune_refuses_an_age_without_a_unit(cli):
    """'30' alone is ambiguous: argparse reports it and exits 2."""
    with pytest.raises(SystemExit) as stop:
        cli("prune", "--older-than", "30")
    assert stop.value.code == 2
