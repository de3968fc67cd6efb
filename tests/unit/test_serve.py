"""`stepwise serve`'s ready line: where it listens, where the docs and trace pages are, the model, the database."""

from __future__ import annotations

import logging
from pathlib import Path

from stepwise.app.logs import configure_logging
from stepwise.app.serve import describe_database, describe_model, ready_line
from stepwise.app.settings import Settings


def settings(**env: str) -> Settings:
    return Settings.from_env({"HOME": "/home/ada", **env})


def test_the_ready_line_names_the_url_docs_trace_pages_model_and_database():
    """One line: the URL, /schema, /runs/<run id>, the model and the database."""
    line = ready_line("http://127.0.0.1:8000", model="qwen", database="postgres 127.0.0.1:5432/stepwise")
    assert "\n" not in line
    assert ("http://127.0.0.1:8000 " in line and "http://127.0.0.1:8000/schema" in line
            and "http://127.0.0.1:8000/runs/<run id>" in line)
    assert "model qwen" in line and "database postgres 127.0.0.1:5432/stepwise" in line


def test_a_configured_database_is_shown_as_host_port_and_name_without_its_password():
    """DATABASE_URL is shown as host:port/dbname (and the user); the password never."""
    shown = describe_database(settings(DATABASE_URL="postgresql://ada:s3cret@db.example:6543/traces"))
    assert shown == "postgres db.example:6543/traces (user ada)" and "s3cret" not in shown
    shown = describe_database(settings(DATABASE_URL="postgresql://db.example/traces"))
    assert shown == "postgres db.example:5432/traces"


def test_the_embedded_database_is_called_embedded_with_its_folder():
    """Without DATABASE_URL it is pgserver's Postgres in the data folder, said so (its socket URL would mislead)."""
    shown = describe_database(settings(STEPWISE_DATA_DIR="/srv/stepwise"))
    assert shown.startswith("embedded") and str(Path("/srv/stepwise/pgdata")) in shown


def test_pgservers_info_lines_are_quiet_at_the_default_level_and_shown_at_debug():
    """pgserver's INFO lines (one says port=5432, whatever port it uses) appear only with STEPWISE_LOG_LEVEL=debug."""
    try:
        configure_logging("info")
        assert not logging.getLogger("pgserver").isEnabledFor(logging.INFO)
        assert logging.getLogger("pgserver").isEnabledFor(logging.WARNING)
        configure_logging("debug")
        assert logging.getLogger("pgserver").isEnabledFor(logging.INFO)
    finally:
        configure_logging("info")


def test_the_model_is_named_or_the_experts_file_that_names_them():
    """STEPWISE_MODEL is shown as is; with STEPWISE_EXPERTS the line points at that file."""
    assert describe_model(settings(STEPWISE_MODEL="smollm2")) == "smollm2"
    shown = describe_model(settings(STEPWISE_EXPERTS="/etc/stepwise/experts.toml"))
    assert shown == "experts from /etc/stepwise/experts.toml"
