"""Eval rows on the real Postgres: the eval_summary view's accuracy, latency percentiles, tokens and cost; the
comparison view and per-item flips between two runs."""

from __future__ import annotations

import uuid

import pytest

from stepwise.app import db
from stepwise.evals import store


@pytest.fixture
async def pool(database_url: str):
    pool = await db.create_pool(database_url, max_size=2)
    yield pool
    await pool.close()


def row(item_id: str, correct: bool, latency_ms: float, **extra) -> dict:
    return {"item_id": item_id, "run_id": uuid.uuid4(), "question": f"q {item_id}", "expected": "4", "predicted": "4"
            if correct else "5",
            "correct": correct, "status": "finished", "latency_ms": latency_ms, "model_calls": 2, "input_tokens": 100,
            "output_tokens": 10, "cost": 0.5} | extra


async def test_summary_and_comparison_of_two_eval_runs(pool):
    """Accuracy is the share correct; p50/p95 interpolate the latencies; B − A per measure; flips name the items."""
    a = await store.create_run(pool, "toy", "direct", "m", 4, 1, {"seed": 1})
    for i, (ok, ms) in enumerate([(True, 100), (False, 200), (False, 300), (True, 400)]):
        await store.add_item(pool, a, row(f"i{i}", ok, ms))
    b = await store.create_run(pool, "toy", "orchestrated", "m", 4, 2, {})
    for i, (ok, ms) in enumerate([(True, 1000), (True, 2000), (True, 3000), (False, 4000)]):
        await store.add_item(pool, b, row(f"i{i}", ok, ms, error="deadline_exceeded: late" if not ok else None))

    first = await store.finish_run(pool, a, "finished")
    assert (first.items, first.accuracy, first.errors) == (4, 0.5, 0)
    assert first.p50_latency_ms == 250 and first.p95_latency_ms == pytest.approx(385)
    assert (first.avg_tokens, first.avg_model_calls, first.cost) == (110, 2, 2.0)
    second = await store.finish_run(pool, b, "finished")
    assert (second.accuracy, second.errors) == (0.75, 1)
    stored = await pool.fetchval("SELECT summary FROM eval_runs WHERE id = $1", b)
    assert stored["accuracy"] == 0.75 and stored["mode"] == "orchestrated"

    delta = await pool.fetchrow("SELECT * FROM eval_comparison WHERE run_a = $1 AND run_b = $2", a, b)
    assert delta["accuracy_delta"] == pytest.approx(0.25) and delta["p50_latency_delta_ms"] == 2250
    assert await store.flips(pool, a, b) == (["i1", "i2"], ["i3"])
    with pytest.raises(LookupError, match="no eval run 999999"):
        await store.summaries(pool, [a, 999999])
