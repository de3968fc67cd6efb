"""`stepwise eval` end to end with the real SmolLM2 and Postgres: two gsm_symbolic items in each mode become
eval rows linked to real traces; then `eval report` writes markdown and PNG plots and `eval compare` prints deltas."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stepwise.app.cli import main
from tests.conftest import query_sync

pytestmark = pytest.mark.model




def test_eval_runs_each_mode_then_reports_and_compares(database_url: str, monkeypatch, capsys, tmp_path: Path):
    """Each mode writes an eval run with one row per item, each pointing at its trace; report and compare read them."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("STEPWISE_MODEL", "smollm2")
    monkeypatch.setenv("STEPWISE_DEADLINE_S", "120")
    runs = {}
    for mode in ("direct", "orchestrated", "sequential"):
        assert main(["eval", "gsm_symbolic", "--limit", "2", "--mode", mode, "--concurrency", "2"]) == 0
        out = capsys.readouterr().out
        runs[mode] = int(re.search(r"eval run (\d+): gsm_symbolic · " + mode, out).group(1))
        assert "accuracy" in out and "latency p50" in out

    for mode, eval_run_id in runs.items():
        (run,) = query_sync(database_url, "SELECT mode, status, item_limit, summary FROM eval_runs WHERE id = $1",
                            eval_run_id)
        assert (run["mode"], run["status"], run["item_limit"]) == (mode, "finished", 2) and run["summary"] is not None
        items = query_sync(database_url, """
            SELECT i.item_id, i.status, i.predicted, i.question, r.status AS trace_status, r.question AS trace_question,
                   i.model_calls, (SELECT count(*) FROM model_calls m WHERE m.run_id = i.run_id) AS traced_calls
            FROM eval_items i JOIN runs r USING (run_id) WHERE i.eval_run_id = $1 ORDER BY i.item_id""", eval_run_id)
        assert [i["item_id"] for i in items] == ["gsm_symbolic-42-0", "gsm_symbolic-42-1"]  # both linked to a trace
        for i in items:
            assert i["trace_status"] == i["status"] and i["trace_question"] == i["question"]
            assert i["model_calls"] == i["traced_calls"] >= 1
            assert (i["predicted"] is not None) == (i["status"] == "finished")
    direct_events = query_sync(database_url, """
        SELECT e.type FROM events e JOIN eval_items i USING (run_id)
        WHERE i.eval_run_id = $1 AND i.item_id = 'gsm_symbolic-42-0'
        ORDER BY e.id""", runs["direct"])
    assert [e["type"] for e in direct_events] == ["run_started", "model_called", "answer_ready", "run_finished"]

    out_dir = tmp_path / "report"
    assert main(["eval", "report", *map(str, runs.values()), "--out", str(out_dir)]) == 0
    for name in ("accuracy", "latency", "tokens", "cost"):
        assert (out_dir / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out_dir / "report.md").read_text()
    assert all(f"| {eval_run_id} | gsm_symbolic | {mode} |" in report for mode, eval_run_id in runs.items())

    capsys.readouterr()
    assert main(["eval", "compare", str(runs["direct"]), str(runs["orchestrated"])]) == 0
    compared = capsys.readouterr().out
    assert f"A = eval run {runs['direct']} (gsm_symbolic, direct" in compared
    assert re.search(r"accuracy .* [+-]\d+\.\d points", compared)
    assert re.search(r"latency p50 .* [+−]", compared) and "B − A" in compared


def test_a_sigterm_closes_the_eval_run_as_cancelled_with_its_items_kept(database_url: str, tmp_path: Path):
    """SIGTERM mid-eval: exit 143, the eval run closed as cancelled, the items done so far kept with their traces."""
    env = {**os.environ, "DATABASE_URL": database_url, "STEPWISE_MODEL": "smollm2", "STEPWISE_DEADLINE_S": "120"}
    (before,) = query_sync(database_url, "SELECT coalesce(max(id), 0) AS id FROM eval_runs")
    proc = subprocess.Popen([sys.executable, "-c", "from stepwise.app.cli import main; raise SystemExit(main())",
                             "eval", "gsm_symbolic", "--limit", "20", "--mode", "direct", "--concurrency", "1"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = time.monotonic()
        while not query_sync(database_url, "SELECT 1 FROM eval_items i JOIN eval_runs r ON r.id = i.eval_run_id"
                                           " WHERE r.id > $1", before["id"]):
            assert proc.poll() is None and time.monotonic() - started < 240, "no item was recorded"
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    (run,) = query_sync(database_url, "SELECT id, status, finished_at FROM eval_runs WHERE id > $1", before["id"])
    assert run["status"] == "cancelled" and run["finished_at"] is not None
    items = query_sync(database_url, "SELECT i.item_id, r.status FROM eval_items i JOIN runs r USING (run_id)"
                                     " WHERE i.eval_run_id = $1", run["id"])
    assert 1 <= len(items) < 20 and all(i["status"] == "finished" for i in items)
