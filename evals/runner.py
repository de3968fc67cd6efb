"""Runs a dataset through one runtime in one mode: items concurrently up to a limit, each a traced run, each
scored and written as an eval_items row linked to its trace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgspec

from stepwise.evals import store
from stepwise.evals.modes import Mode, predicted, run_item
from stepwise.evals.types import Dataset, Item, Score


def model_name(runtime: Any) -> str:
    """The default expert's model: what `direct` calls, and what plans and composes when no other is named."""
    router = runtime.engine.router
    return getattr(router.experts[router.default].backend, "model", router.default)


async def run_eval(runtime: Any, dataset: Dataset, mode: Mode, *, concurrency: int = 1, limit: int | None = None,
                   deadline_s: float | None = None, config: dict[str, Any] | None = None,
                   on_item: Callable[[Item, dict[str, Any]], None] | None = None) -> store.Summary:
    """Run every item of `dataset`; returns the eval run's summary once all rows are written. Items that fail
    (a failed run, an error) are rows too, scored wrong, with the error."""
    items = list(dataset.items())
    item_deadline_s: float = deadline_s or runtime.settings.deadline_s  # its own name: never None, unlike the option
    eval_run_id = await store.create_run(runtime.pool, dataset.name, mode, model_name(runtime), limit, concurrency,
                                         (config or {}) | {"deadline_s": item_deadline_s, "items": len(items)})
    gate = asyncio.Semaphore(concurrency)

    async def one(item: Item) -> None:
        async with gate:
            started = time.perf_counter()
            row: dict[str, Any] = {"item_id": item.id, "question": item.question, "expected": item.answer,
                                   "kind": item.meta.get("kind"), "split": item.meta.get("split")}
            try:
                report = await run_item(runtime, item, mode, item_deadline_s)
            except NotImplementedError:
                raise
            except Exception as exc:  # one item's crash is that item's row, not the end of the eval
                row |= {"correct": False, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                        "latency_ms": (time.perf_counter() - started) * 1000}
            else:
                answer = predicted(item, report)
                try:
                    verdict = dataset.score(item, answer) if report.status == "finished" else None
                except Exception as exc:  # an answer the scorer cannot read is that item's miss, not the eval's end
                    verdict = Score(False, f"the scorer failed: {type(exc).__name__}: {exc}")
                u = report.usage
                row |= {
                    "run_id": report.run_id, "predicted": msgspec.to_builtins(answer), "status": report.status,
                    "correct": bool(verdict and verdict.correct), "score_note": verdict.note if verdict else None,
                    "error": (f"{report.error.type}: {report.error.detail or report.error.message}"
                              if report.error else None),
                    "latency_ms": report.latency_ms, "model_calls": u.model_calls, "input_tokens": u.input_tokens,
                    "output_tokens": u.output_tokens, "cost": u.cost, "steps": len(report.steps),
                }
            await store.add_item(runtime.pool, eval_run_id, row)
            if on_item is not None:
                on_item(item, row)

    status = "failed"
    try:
        async with asyncio.TaskGroup() as group:
            for item in items:
                group.create_task(one(item), name=f"eval:{item.id}")
        status = "finished"
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None  # a mode an item cannot run in (NotImplementedError), or the store failing
    except asyncio.CancelledError:
        status = "cancelled"
        raise
    finally:
        await runtime.sink.flush(timeout=10.0)  # the traces the rows point to are written before the run is closed
        summary = await asyncio.shield(store.finish_run(runtime.pool, eval_run_id, status))
    return summary
