"""The cascade on a real model: an expert step goes first to the cheaper expert, and to its own expert only when the
cheaper one's answer was not kept, which the trace says (SmolLM2 behind both names: a test of the mechanics)."""

from __future__ import annotations

import msgspec
import pytest

from stepwise.reasoning.report import RunReport
from tests.conftest import LiveServer, settings_for

pytestmark = [pytest.mark.model]

EXPERTS = """default = "general"
[[experts]]
name = "general"
backend = "local"
model = "smollm2"
[[experts]]
name = "fast"
backend = "local"
model = "smollm2"
price_in = 0.01
"""


@pytest.fixture(scope="module")
def cascading_server(database_url, tmp_path_factory):
    experts = tmp_path_factory.mktemp("cascade") / "experts.toml"
    experts.write_text(EXPERTS)
    with LiveServer(settings_for(database_url, "smollm2", experts_file=experts, cascade_expert="fast")) as server:
        yield server


async def test_an_expert_step_is_asked_of_the_cheaper_expert_first(cascading_server, pg):
    """A step planned for `general` is first a `fast` model call; `general` answers it only after a step_escalated
    event, and the run finishes either way."""
    body = {"question": "What is the capital of France?", "plan": {"steps": [
        {"id": 1, "kind": "expert", "target": "general", "input": "What is the capital of France?", "depends_on": []}]}}
    reply = cascading_server.client.post("/v1/reason", json=body)
    report = msgspec.json.decode(reply.content, type=RunReport)
    assert reply.status_code == 200, report.error
    assert cascading_server.client.get(f"/v1/runs/{report.run_id}").status_code == 200  # reading flushes the trace
    calls = await pg.fetch("SELECT expert FROM model_calls WHERE run_id = $1 AND step_id = 1 AND purpose = 'expert' "
                           "ORDER BY at", report.run_id)
    escalated = await pg.fetchval("SELECT count(*) FROM events WHERE run_id = $1 AND type = 'step_escalated'",
                                  report.run_id)
    experts = [c["expert"] for c in calls]
    assert experts[0] == "fast"
    assert ("general" in experts) == (escalated == 1)
