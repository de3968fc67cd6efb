"""`stepwise optimize` end to end with the real SmolLM2 and Postgres: two candidates on a few gsm_symbolic items,
the chosen one and the default run on the held-out item, and the configuration it writes is one the server reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stepwise.app.cli import main
from stepwise.app.config import load_config
from stepwise.evals.optimize import CONFIG_FILE, PLOT_FILE, REPORT_FILE
from tests.conftest import query_sync

pytestmark = pytest.mark.model


def test_a_two_candidate_optimization_runs_on_the_real_model(database_url: str, monkeypatch, capsys, tmp_path: Path):
    """Both candidates become finished eval runs of the train items, the held-out runs are recorded, the files load."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("STEPWISE_MODEL", "smollm2")
    out = tmp_path / "out"
    assert main(["optimize", "gsm_symbolic", "--limit", "4", "--budget", "2", "--seed", "3", "--holdout", "0.25",
                 "--train-limit", "2", "--holdout-limit", "1", "--concurrency", "2", "--deadline", "120",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    optimize_run_id = int(re.search(r"optimize run (\d+): chosen candidate \d of 2", printed).group(1))
    held = [int(n) for n in re.findall(r"held out, \w+: accuracy [\d.]+% .* eval run (\d+)", printed)]
    assert held, printed

    (run,) = query_sync(database_url, "SELECT status, budget FROM optimize_runs WHERE id = $1", optimize_run_id)
    assert (run["status"], run["budget"]) == ("finished", 2)
    candidates = query_sync(database_url, "SELECT eval_run_ids FROM optimize_candidates WHERE optimize_run_id = $1",
                            optimize_run_id)
    assert len(candidates) == 2
    for eval_run_id in [i for c in candidates for i in c["eval_run_ids"]] + held:
        (evaluated,) = query_sync(database_url, "SELECT status, (SELECT count(*) FROM eval_items i WHERE "
                                  "i.eval_run_id = e.id AND i.run_id IS NOT NULL) AS traced FROM eval_runs e "
                                  "WHERE id = $1", eval_run_id)
        assert evaluated["status"] == "finished" and evaluated["traced"] >= 1

    assert (out / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / REPORT_FILE).read_text().startswith(f"# stepwise optimize run {optimize_run_id}: gsm_symbolic")
    load_config(out / CONFIG_FILE)  # what the server reads through STEPWISE_CONFIG: a wrong key would raise
