"""The trace writer process (app.trace_process) with trace lag measured, for bench/server_app.py: each committed
batch appends, for every run ending in it, (now - its RunFinished's `at`) in ms to the file BENCH_LAG_FILE names."""

from __future__ import annotations

import os
import time

import stepwise.app.trace as trace_module
from stepwise.app import trace_process
from stepwise.reasoning import events as ev

_write_batch = trace_module.write_batch


async def _timed_write_batch(conn, batch, **options) -> None:
    await _write_batch(conn, batch, **options)
    now = time.time()
    lags = [(now - e.at) * 1000 for e in batch if isinstance(e, ev.RunFinished | ev.RunFailed)]
    if lags:
        with open(os.environ["BENCH_LAG_FILE"], "a") as out:
            out.write("".join(f"{lag:.3f}\n" for lag in lags))


if __name__ == "__main__":
    trace_module.write_batch = _timed_write_batch
    trace_process.main()
