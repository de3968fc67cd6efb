"""The views of migration 0003 on the real Postgres, read after a known run: every number is the run's own."""

from __future__ import annotations

import math
import time
import uuid

import pytest

from tests.fixtures.known_run import QUESTION, known_run, record


@pytest.fixture
async def run(pg):
    """A known run recorded now, its model calls served by an expert no other test uses."""
    run_id, expert, t0 = uuid.uuid4(), f"expert-{uuid.uuid4().hex[:8]}", float(int(time.time()))
    await record(pg, known_run(run_id, t0, expert))
    return run_id, expert, t0


async def test_run_summary_has_one_row_per_run_with_its_counts_and_sums(pg, run):
    """Steps, failed steps, replans, calls, tokens and cost are the run's; the answer is its text."""
    row = await pg.fetchrow("SELECT * FROM run_summary WHERE run_id = $1", run[0])
    assert (row["status"], row["question"], row["answer"]) == ("finished", QUESTION, "Three spiders have 24 legs.")
    assert (row["steps"], row["failed_steps"], row["replans"], row["model_calls"], row["failed_model_calls"],
            row["tool_calls"]) == (3, 1, 1, 5, 0, 2)
    assert (row["input_tokens"], row["output_tokens"], row["cached_tokens"]) == (350, 48, 210)
    assert math.isclose(row["cost"], 350e-6) and float(row["latency_ms"]) == 2000.0 and row["deadline_s"] == 60.0
    assert row["error_type"] is None and row["error"] is None


async def test_step_timeline_gives_each_attempt_its_offsets_calls_and_verdicts(pg, run):
    """A step id run twice (before and after the replan) is two rows; calls and verdicts go to the attempt they
    were recorded during, and the worst verdict is named."""
    rows = await pg.fetch("SELECT * FROM step_timeline WHERE run_id = $1 ORDER BY start_ms", run[0])
    got = [(r["step_id"], r["attempt"], r["status"], float(r["start_ms"]), float(r["end_ms"]), float(r["duration_ms"]))
           for r in rows]
    assert got == [(1, 1, "finished", 500.0, 920.0, 420.0), (2, 1, "failed", 920.0, 922.0, 2.0),
                   (2, 2, "finished", 1500.0, 1502.0, 2.0)]
    legs, refused, times = rows
    assert (legs["experts"], legs["model_calls"], legs["input_tokens"], legs["output_tokens"],
            legs["tools"]) == (run[1], 2, 70, 3, None)
    assert (legs["verdicts"], legs["failed_verdicts"], legs["worst_outcome"]) == (4, 1, "retry")
    assert legs["verdict_summary"] == ("numeric_sanity retry, expert_answered pass, numeric_sanity "
                                       "pass, expert_answered pass")
    assert ((refused["tools"], refused["tool_calls"], refused["verdicts"], refused["worst_outcome"])
            == ("calculator", 1, 0, None))
    assert (refused["input"] == {"expression": "eight*3"}
            and refused["error"].startswith("tool_error: calculator refused"))
    assert ((times["experts"], times["tool_calls"], times["verdict_summary"], times["output"])
            == (None, 1, "tool_recomputed pass", 24))


async def test_expert_usage_keeps_its_columns_and_adds_runs_p95_speed_and_last_call(pg, run):
    """0002's columns come first, unchanged; the expert's step calls are counted once per run, with percentiles
    over their latencies and output tokens per second of generation (after the first token where it is known)."""
    columns = [r["attname"] for r in await pg.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'expert_usage'::regclass AND attnum > 0 ORDER BY attnum")]
    assert columns[:14] == ["expert", "backend", "provider", "request_model", "purpose", "calls", "failed_calls",
                            "rerouted_calls",
                            "input_tokens", "output_tokens", "cached_tokens", "cost", "p50_latency_ms", "p50_ttft_ms"]
    rows = {r["purpose"]: r for r in await pg.fetch("SELECT * FROM expert_usage WHERE expert = $1", run[1])}
    assert sorted(rows) == ["compose", "expert", "plan", "replan"]
    e = rows["expert"]
    assert (e["calls"], e["runs"], e["input_tokens"], e["output_tokens"], e["cached_tokens"]) == (2, 1, 70, 3, 30)
    assert (e["p50_latency_ms"], e["p95_latency_ms"], float(e["output_tokens_per_s"])) == (175.0, 197.5, 10.0)
    assert e["last_call_at"].timestamp() == pytest.approx(run[2] + 0.9) and e["p50_ttft_ms"] == 50.0


async def test_failed_verdicts_names_the_attempt_and_its_question_input_and_output(pg, run):
    """Only non-pass verdicts; each joined to the attempt it judged, so a step id run twice gives no duplicates."""
    rows = await pg.fetch("SELECT * FROM failed_verdicts WHERE run_id = $1", run[0])
    assert [(r["step_id"], r["target"], r["verifier"], r["outcome"], r["reason"]) for r in rows] == [
        (1, "general", "numeric_sanity", "retry", "asked for a number, got 'eight'")]
    assert (rows[0]["question"], rows[0]["output"]) == (QUESTION, "8") and "Reply with a number" in rows[0]["input"]


async def test_slowest_steps_still_orders_attempts_by_duration(pg, run):
    """The view from 0001 is unchanged: this run's slowest attempt is the expert step."""
    rows = await pg.fetch("SELECT step_id, duration_ms FROM slowest_steps WHERE run_id = $1", run[0])
    assert [r["step_id"] for r in rows][0] == 1 and [round(r["duration_ms"]) for r in rows] == [420, 2, 2]
