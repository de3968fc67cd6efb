"""`stepwise optimize`'s command line: durations as people write them, and refusals before anything starts."""

from __future__ import annotations

import argparse
import re

import pytest

from stepwise.app.cli import main
from stepwise.evals.optimize_cli import duration_ms


@pytest.mark.parametrize(("text", "ms"), [("20s", 20_000), ("1.5m", 90_000), ("800ms", 800), ("12", 12_000),
                                          ("2 min", 120_000)])
def test_durations_read_as_people_write_them(text, ms):
    """Seconds by default; ms, s, m and min units."""
    assert duration_ms(text) == ms


def test_a_duration_without_a_number_is_refused():
    """`fast` is not a duration: argparse reports it as the option's error."""
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        duration_ms("fast")


@pytest.mark.parametrize(("argv", "message"), [
    (["optimize"], "name a dataset, or give --from-runs"),
    (["optimize", "gsm_symbolic", "--budget", "0"], "--budget and --concurrency must be at least 1"),
    (["optimize", "nowhere.jsonl"], "unknown dataset|cannot read"),
])
def test_refusals_say_what_to_do(argv, message, capsys, tmp_path, monkeypatch):
    """No dataset, a zero budget or a missing file end with status 2 and a message, before any model starts."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)


def test_a_dry_run_prints_the_split_and_the_space_without_running(capsys, tmp_path, monkeypatch):
    """--dry-run: the seeded parts, the objective, the default candidate and every switch's choices; no model."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "sums.jsonl"
    data.write_text("".join(f'{{"id": "s{i}", "question": "What is {i} and {i}?", "answer": {2 * i}, '
                            f'"answer_type": "number"}}\n' for i in range(10)))
    argv = ["optimize", str(data), "--dry-run", "--seed", "5", "--max-p50", "20s", "--holdout", "0.2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert re.search(r"train items \(8\): ", printed) and re.search(r"held-out items \(2\): ", printed)
    assert "max_p50_ms=20000.0" in printed and "samples=5" in printed and "  bank: hand | learned" in printed
    assert "  samples: 1 | 3 | 5\n" in printed  # not 7: the embedded model answers at most 6 samples in one call
    assert main(argv) == 0 and capsys.readouterr().out == printed  # the same seed, the same split
