"""docs/sql.md's queries run as written: every ```sql block, against the test database after a real run."""

from __future__ import annotations

import re

import msgspec
import pytest

from stepwise.reasoning.report import RunReport

pytestmark = pytest.mark.model

QUESTION = "What is (17*23)+(45*12)?"


def sql_blocks(text: str) -> list[str]:
    return re.findall(r"^```sql\n(.*?)^```", text, re.S | re.M)


@pytest.fixture(scope="module")
def recorded(smollm2_server) -> RunReport:
    """A real run (SmolLM2 composes; the calculator plan is the caller's), flushed to Postgres."""
    plan = {"steps": [
        {"id": 1, "kind": "tool", "target": "calculator", "input": {"expression": "17*23"}, "depends_on": []},
        {"id": 2, "kind": "tool", "target": "calculator", "input": {"expression": "45*12"}, "depends_on": []},
        {"id": 3, "kind": "tool", "target": "calculator", "input": {"expression": "$1+$2"}, "depends_on": [1, 2]},
    ]}
    reply = smollm2_server.client.post("/v1/reason", json={"question": QUESTION, "plan": plan})
    report = msgspec.json.decode(reply.content, type=RunReport)
    assert smollm2_server.client.get(f"/v1/runs/{report.run_id}").status_code == 200  # flushes the trace
    return report


async def test_every_sql_block_of_docs_sql_md_runs_on_a_recorded_run(recorded, repo_root, pg):
    """Each query executes without error; the first (run_summary, all runs) lists the run just recorded."""
    blocks = sql_blocks((repo_root / "docs" / "sql.md").read_text())
    assert len(blocks) >= 10
    results = []
    for block in blocks:
        try:
            results.append(await pg.fetch(block))
        except Exception as exc:  # name the failing block: the doc is what needs fixing
            raise AssertionError(f"docs/sql.md query failed: {exc}\n{block}") from exc
    assert str(recorded.run_id)[:8] in [row["run"] for row in results[0]]
    assert any(row["steps"] == 3 and row["question"] == QUESTION for row in results[0])
