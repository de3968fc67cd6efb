"""`stepwise runs`: recent runs from the `run_summary` view."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from stepwise.app.inspection.common import connect
from stepwise.app.settings import Settings


async def list_runs(settings: Settings, limit: int) -> int:
    conn = await connect(settings)
    try:
        rows = await conn.fetch("SELECT * FROM run_summary ORDER BY started_at DESC LIMIT $1", limit)
    finally:
        await conn.close()
    print(format_runs(rows))
    return 0


def format_runs(rows: list[Any]) -> str:
    lines = [f"{'run':<8}  {'started (UTC)':<19}  {'status':<9} {'latency':>8} {'steps':>5} "
             f"{'tokens in/out':>13} {'cost':>8}  question"]
    for r in rows:
        latency = f"{float(r['latency_ms']) / 1000:.1f} s" if r["latency_ms"] is not None else "-"
        steps = f"{r['steps']}" + (f"!{r['failed_steps']}" if r["failed_steps"] else "")
        question = r["question"] if len(r["question"]) <= 60 else r["question"][:59] + "…"
        lines.append(
            f"{str(r['run_id'])[:8]:<8}  {r['started_at'].astimezone(UTC):%Y-%m-%d %H:%M:%S}  "
            f"{r['status']:<9} {latency:>8} "
            f"{steps:>5} {str(r['input_tokens']) + '/' + str(r['output_tokens']):>13} {r['cost']:>8.4g}  {question}"
        )
    return "\n".join(lines)
