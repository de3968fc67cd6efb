"""Routing with two real experts: Qwen (general: plans, composes, answers facts) and SmolLM2 (fast: greetings).
A question whose plan uses both is answered, and model_calls shows each expert with its tokens and cost."""

from __future__ import annotations

import msgspec
import pytest

from stepwise.reasoning.report import RunReport
from tests.conftest import LiveServer, settings_for

pytestmark = [pytest.mark.model, pytest.mark.slow]


@pytest.fixture(scope="module")
def two_expert_server(database_url, repo_root):
    # The JSON planner targets experts by name; the program planner's ask() goes to the default expert.
    settings = settings_for(database_url, "qwen", experts_file=repo_root / "tests" / "fixtures" / "two_experts.toml",
                            planner="json")
    with LiveServer(settings) as server:
        yield server


async def test_a_plan_using_both_experts_is_answered_and_costed_per_expert(two_expert_server, pg):
    """Each expert serves its own step; SELECT expert, sum(cost) FROM model_calls lists both, priced from the
    registry."""
    question = "Ask the fast expert to greet Anna, and ask the general expert for the capital of France."
    reply = two_expert_server.client.post("/v1/reason", json={"question": question})
    report = msgspec.json.decode(reply.content, type=RunReport)
    assert reply.status_code == 200, report.error
    assert {s.target for s in report.steps} == {"fast", "general"}
    assert "Paris" in report.answer.text
    assert two_expert_server.client.get(f"/v1/runs/{report.run_id}").status_code == 200  # reading flushes the trace
    rows = await pg.fetch(
        "SELECT expert, count(*) AS calls, sum(input_tokens) AS input_tokens, sum(output_tokens) AS "
        "output_tokens, sum(cost) AS cost "
        "FROM model_calls WHERE run_id = $1 GROUP BY expert ORDER BY expert", report.run_id,
    )
    by_expert = {r["expert"]: r for r in rows}
    assert set(by_expert) == {"fast", "general"}
    fast, general = by_expert["fast"], by_expert["general"]
    assert fast["calls"] == 1 and general["calls"] == 3  # plan, the capital, compose
    assert fast["cost"] == pytest.approx((fast["input_tokens"] * 0.01 + fast["output_tokens"] * 0.02) / 1e6)
    assert general["cost"] == pytest.approx((general["input_tokens"] * 0.10 + general["output_tokens"] * 0.40) / 1e6)
    run_cost = await pg.fetchval("SELECT cost FROM runs WHERE run_id = $1", report.run_id)
    assert run_cost == pytest.approx(fast["cost"] + general["cost"]) and run_cost == pytest.approx(report.usage.cost)
