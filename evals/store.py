"""Eval rows in Postgres (migrations/0004_evals.sql, 0005_eval_kinds.sql): eval_runs, eval_items, and the
eval_summary and eval_kind_summary views."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec


class KindScore(msgspec.Struct):
    """One kind of question in one eval run, as the eval_kind_summary view counts it."""

    kind: str
    items: int
    correct: int
    accuracy: float


class Summary(msgspec.Struct):
    """One eval run's numbers, as the eval_summary view computes them, with accuracy per kind of question for
    datasets whose items have kinds (the dev set)."""

    eval_run_id: int
    dataset: str
    mode: str
    model: str
    status: str
    items: int
    accuracy: float | None
    errors: int
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    avg_tokens: float | None
    avg_output_tokens: float | None
    avg_model_calls: float | None
    cost: float
    invalid_plans: int = 0
    unparseable_outputs: int = 0
    kinds: list[KindScore] = []


_SUMMARY = ("""SELECT eval_run_id, dataset, mode, model, status, items, accuracy::float8 AS accuracy, errors,
    p50_latency_ms, p95_latency_ms, avg_tokens::float8 AS avg_tokens, avg_output_tokens::float8 AS avg_output_tokens,
    avg_model_calls::float8 AS avg_model_calls, cost, invalid_plans, unparseable_outputs"""
            " FROM eval_summary WHERE eval_run_id = ANY($1::bigint[])")

_KINDS = """SELECT eval_run_id, kind, items, correct, accuracy::float8 AS accuracy FROM eval_kind_summary
    WHERE eval_run_id = ANY($1::bigint[]) ORDER BY eval_run_id, kind"""


async def create_run(pool: asyncpg.Pool, dataset: str, mode: str, model: str, limit: int | None, concurrency: int,
                     config: dict[str, Any]) -> int:
    return await pool.fetchval(
        "INSERT INTO eval_runs (dataset, mode, model, item_limit, concurrency, config)"
        " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        dataset, mode, model, limit, concurrency, config,
    )


async def add_item(pool: asyncpg.Pool, eval_run_id: int, row: dict[str, Any]) -> None:
    columns = ["eval_run_id", *row]
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    await pool.execute(f"INSERT INTO eval_items ({', '.join(columns)}) VALUES ({placeholders})", eval_run_id,
                       *row.values())


async def finish_run(pool: asyncpg.Pool, eval_run_id: int, status: str) -> Summary:
    await pool.execute("UPDATE eval_runs SET status = $2, finished_at = now() WHERE id = $1", eval_run_id, status)
    summary = (await summaries(pool, [eval_run_id]))[0]
    await pool.execute("UPDATE eval_runs SET summary = $2 WHERE id = $1", eval_run_id, msgspec.to_builtins(summary))
    return summary


async def summaries(pool: asyncpg.Pool, ids: list[int]) -> list[Summary]:
    """The summaries of these eval runs, in the order asked; LookupError names an id that does not exist."""
    rows = {row["eval_run_id"]: Summary(**dict(row)) for row in await pool.fetch(_SUMMARY, ids)}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise LookupError(f"no eval run {', '.join(map(str, missing))}")
    for row in await pool.fetch(_KINDS, ids):
        rows[row["eval_run_id"]].kinds.append(KindScore(row["kind"], row["items"], row["correct"], row["accuracy"]))
    return [rows[i] for i in ids]


async def failures(pool: asyncpg.Pool, eval_run_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """Items scored wrong, with why: the scorer's note or the run's error, and the trace's run id."""
    rows = await pool.fetch(
        "SELECT item_id, run_id, expected, predicted, score_note, error, latency_ms FROM eval_items"
        " WHERE eval_run_id = $1 AND NOT correct ORDER BY length(item_id), item_id LIMIT $2", eval_run_id, limit,
    )
    return [dict(row) for row in rows]


async def flips(pool: asyncpg.Pool, a: int, b: int) -> tuple[list[str], list[str]]:
    """Items both runs saw: those B gets right that A got wrong, and those B gets wrong that A got right."""
    rows = await pool.fetch(
        "SELECT x.item_id, x.correct AS a, y.correct AS b FROM eval_items x JOIN eval_items y USING (item_id)"
        " WHERE x.eval_run_id = $1 AND y.eval_run_id = $2 AND x.correct <> y.correct"
        " ORDER BY length(x.item_id), x.item_id", a, b,
    )
    return [r["item_id"] for r in rows if r["b"]], [r["item_id"] for r in rows if r["a"]]
