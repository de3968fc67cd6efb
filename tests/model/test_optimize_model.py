"""`stepwise optimize` end to end with the real SmolLM2 and Postgres: a two-candidate search on three train items,
the chosen configuration and the default on the held-out item, every candidate an eval run of real traced runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.cli import main
from app.config import load_config
from tests.conftest import query_sync

pytestmark = pytest.mark.model

# Invented word problems (no dataset text).
ITEMS = [("trays", "A baker fills 3 trays with 4 rolls each. How many rolls is that?", 12),
         ("kites", "Mira has 9 kites and gives 2 away. How many kites does she keep?", 7),
         ("fence", "A fence has 5 posts on each of its 4 sides, no post shared. How many posts?", 20),
         ("stamps", "Tomas buys 6 stamps at 3 crowns each. How many crowns does he pay?", 18)]


def test_a_two_candidate_optimization_on_smollm2(database_url: str, monkeypatch, capsys, tmp_path: Path):
    """Two candidates (the default first) each run the three train items as an eval run; the chosen one and the
    default run the held-out item; the config, report and frontier PNG are written and the rows link them."""
    data = tmp_path / "chores.jsonl"
    data.write_text("".join(f'{{"id": "{i}", "question": "{q}", "answer": {a}, "answer_type": "number"}}\n'
                            for i, q, a in ITEMS))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("STEPWISE_MODEL", "smollm2")
    out = tmp_path / "tuned"
    assert main(["optimize", str(data), "--objective", "accuracy", "--max-p50", "120s", "--budget", "2", "--seed", "1",
                 "--holdout", "0.25", "--concurrency", "2", "--deadline", "120", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    optimize_run_id = int(re.search(r"optimize run (\d+): chosen candidate (\d) of 2", printed).group(1))

    (run,) = query_sync(database_url, "SELECT * FROM optimize_runs WHERE id = $1", optimize_run_id)
    assert run["status"] == "finished" and len(run["train_items"]) == 3 and len(run["heldout_items"]) == 1
    candidates = query_sync(database_url, "SELECT number, eval_run_ids, items FROM optimize_candidate_scores"
                                          " WHERE optimize_run_id = $1 ORDER BY number", optimize_run_id)
    assert [c["number"] for c in candidates] == [0, 1] and all(c["items"] == 3 for c in candidates)
    for c in candidates:
        traced = query_sync(database_url, "SELECT count(*) AS n FROM eval_items i JOIN runs r USING (run_id)"
                                          " WHERE i.eval_run_id = ANY($1::bigint[])", c["eval_run_ids"])
        assert traced[0]["n"] == 3  # every item a real, traced run
    held = query_sync(database_url, "SELECT item_id FROM eval_items WHERE eval_run_id = $1", run["heldout_eval_run_id"])
    assert [h["item_id"] for h in held] == run["heldout_items"]
    assert run["default_heldout_eval_run_id"] is not None

    config = load_config(out / "stepwise.toml")
    assert config.planner.kind in ("program", "json") and config.experts.max_tokens
    assert "## Held-out items" in (out / "report.md").read_text()
    assert (out / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
