"""A workload from recorded runs (`stepwise optimize --from-runs 'SQL WHERE'`): the questions of the runs the
condition selects, so a deployment is tuned on its own traffic. A question counts once (its earliest run).

Accuracy needs an expected answer, and the only runs that carry one today are those an eval recorded
(eval_items.expected, joined by run_id): a question without one is left out and counted, so the caller can say how
much of the traffic could not be scored. The condition is the operator's own SQL over the `runs` table's columns
(question, status, started_at, latency_ms, …), run in a read-only transaction."""

from __future__ import annotations

from typing import Any

import asyncpg

from stepwise.evals.scoring import score_by_type
from stepwise.evals.types import AnswerType, Dataset, Item

_SELECTED = """
WITH chosen AS (SELECT run_id, question, started_at FROM runs WHERE ({where}))
SELECT DISTINCT ON (c.question) c.run_id, c.question, x.expected
FROM chosen c
LEFT JOIN LATERAL (SELECT e.expected FROM eval_items e WHERE e.run_id = c.run_id AND e.expected IS NOT NULL
                   ORDER BY e.finished_at DESC LIMIT 1) x ON true
ORDER BY c.question, (x.expected IS NULL), c.started_at
"""


class RunsWorkload(Dataset, frozen=True):
    """A Dataset whose items are recorded runs' questions; `unanswered` counts the questions left out for want of
    an expected answer."""

    unanswered: int = 0


def answer_type(expected: Any) -> AnswerType:
    """`number` for a number (or a string holding one), else `text` (the expected words appear in the answer)."""
    if isinstance(expected, bool):
        return "text"
    if isinstance(expected, int | float):
        return "number"
    try:
        float(str(expected))
        return "number"
    except ValueError:
        return "text"


def item_of(row: Any) -> Item:
    return Item(f"run-{row['run_id']}", row["question"], row["expected"], answer_type(row["expected"]),
                {"run_id": str(row["run_id"])})


async def workload(pool: asyncpg.Pool, where: str, name: str = "runs") -> RunsWorkload:
    """The questions of the runs `where` selects, each with the answer an eval recorded for it."""
    if ";" in where:
        raise ValueError("--from-runs takes one condition (a WHERE clause without `;`)")
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        try:
            rows = await conn.fetch(_SELECTED.format(where=where))
        except asyncpg.PostgresError as exc:
            raise ValueError(f"--from-runs {where!r}: {exc}") from exc
    items = sorted((item_of(r) for r in rows if r["expected"] is not None), key=lambda i: i.id)
    unanswered = sum(r["expected"] is None for r in rows)
    return RunsWorkload(name, lambda: iter(items), score_by_type, unanswered=unanswered)
