"""The calculator's 500s (issue 10 §4), through the real server: a number too large for a float, a result of
thousands of digits, a factorial or binomial whose cost grows with its argument — each is a 422 whose failed step
names what was too large, never a 500 or a stalled server, and the server answers the next request."""

from __future__ import annotations

import math
import time

import pytest

pytestmark = pytest.mark.model

NO_REPAIR = {"max_model_calls": 0}  # a refused step ends the run instead of asking the planner for a new plan


def calculate(server, expression: str):
    plan = {"steps": [{"id": 1, "kind": "tool", "target": "calculator", "input": {"expression": expression},
                       "depends_on": []}]}
    return server.client.post("/v1/reason", json={"question": expression, "plan": plan, "budget": NO_REPAIR})


@pytest.mark.parametrize(
    ("expression", "named"),
    [
        ("10**400", "10**400 is too large"),  # an int past a float: once an OverflowError in a verifier
        ("2**1023*2", "* 2 is too large"),
        ("9**9**9", "9**387420489 is too large"),
        ("10**5000", "10**5000 is too large"),  # past Python's 4,300-digit int-to-text limit
        ("2**20000+1", "2**20000 is too large"),
        ("1e308*10", "* 10 is too large"),  # a float overflowing to infinity
        ("10**300/1e-300", "is too large"),
        ("factorial(100000)", "factorial(100000) is too large"),
        ("100000!", "factorial(100000) is too large"),
        ("comb(10**9, 5*10**8)", "comb(1000000000, 500000000) is too large"),
        ("perm(10**6, 10**5)", "perm(1000000, 100000) is too large"),
        ("lcm(2**300, 3**190, 5**130, 7**106)", "lcm(2.03704e+90, "),
    ],
)
def test_a_result_too_large_is_a_422_naming_it_and_the_server_answers_on(smollm2_server, expression, named):
    """The run fails at the step with the calculator's reason; /health and the run's trace answer afterwards."""
    started = time.monotonic()
    reply = calculate(smollm2_server, expression)
    assert reply.status_code == 422, reply.text
    step = reply.json()["steps"][0]
    assert step["status"] == "failed" and named in step["error"]
    assert time.monotonic() - started < 10
    assert smollm2_server.client.get("/health").status_code == 200
    assert smollm2_server.client.get(f"/v1/runs/{reply.json()['run_id']}").status_code == 200


def test_the_largest_numbers_allowed_pass_every_verifier(smollm2_server):
    """Numbers up to a float's range come back whole — 2**1023 as its 308 digits, 170! exactly — with every verdict
    a pass (the run then stops at its budget of no model calls instead of composing an answer)."""
    for expression, value in [("2**1023", 2**1023), ("170!", math.factorial(170))]:
        reply = calculate(smollm2_server, expression)
        assert reply.status_code == 422 and reply.json()["error"]["type"] == "budget_exceeded", reply.text
        step = reply.json()["steps"][0]
        assert step["status"] == "finished" and step["output"] == value
        assert [v["outcome"] for v in step["verdicts"]] == ["pass", "pass", "pass"]
