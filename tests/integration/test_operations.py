"""Operations: Prometheus /metrics, the OpenAPI document at /schema, API keys, and the request size limit."""

from __future__ import annotations

import re

import pytest

from tests.conftest import LiveServer, settings_for

pytestmark = pytest.mark.model

PLAN = {"steps": [
    {"id": 1, "kind": "tool", "target": "calculator", "input": {"expression": "6*7"}, "depends_on": []},
    {"id": 2, "kind": "tool", "target": "calculator", "input": {"expression": "$1+1"}, "depends_on": [1]},
]}


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text format (0 when it is absent)."""
    for line in metrics.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or "")) == labels:
            return float(match.group(2))
    return 0.0


def test_metrics_count_requests_runs_steps_tokens_and_verdicts(smollm2_server):
    """One run more moves the request, run, latency, step, token, tool and verdict counters by what it did."""
    before = smollm2_server.client.get("/metrics").text
    report = smollm2_server.client.post("/v1/reason", json={"question": "What is 6*7+1?", "plan": PLAN}).json()
    after = smollm2_server.client.get("/metrics").text
    assert report["status"] == "finished"

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("stepwise_http_requests_total", method="POST", route="/v1/reason", status="200") == 1
    assert delta("stepwise_runs_total", status="finished", error_type="") == 1
    assert delta("stepwise_run_latency_seconds_count", status="finished") == 1
    assert delta("stepwise_steps_total", kind="tool", status="finished") == 2
    assert delta("stepwise_tool_calls_total", tool="calculator", result="ok") == 2
    assert delta("stepwise_model_calls_total", expert="general", purpose="compose") == 1
    assert delta("stepwise_tokens_total", expert="general", direction="output") == report["usage"]["output_tokens"]
    assert delta("stepwise_verdicts_total", verifier="tool_recomputed", outcome="pass") == 2
    assert sample(after, "stepwise_runs_in_progress") == 0
    assert "stepwise_trace_events_dropped_total 0.0" in after and "stepwise_backend_errors_total" in after


def test_the_openapi_document_describes_every_route_and_the_request_bodies(smollm2_server):
    """/schema/openapi.json lists each API route with its method, and the request schemas carry their fields."""
    doc = smollm2_server.client.get("/schema/openapi.json").json()
    routes = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert routes >= {("/v1/reason", "post"), ("/v1/runs/{run_id}", "get"), ("/v1/runs/{run_id}", "delete"),
                      ("/v1/experts", "get"), ("/health", "get"), ("/v1/chat/completions", "post"),
                      ("/v1/models", "get")}
    schemas = doc["components"]["schemas"]
    assert {"question", "plan", "budget", "tools", "stream",
            "deadline_s"} <= set(schemas["ReasonRequest"]["properties"])
    assert {"model", "messages", "tools", "tool_choice", "stream"} <= set(schemas["ChatRequest"]["properties"])


@pytest.fixture(scope="module")
def keyed_server(database_url):
    with LiveServer(settings_for(database_url, "smollm2", api_keys=("key-one", "key-two"),
                                 max_body_bytes=4096)) as server:
        yield server


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "nope"}])
def test_without_a_valid_key_the_api_answers_401(keyed_server, headers):
    """With STEPWISE_API_KEYS set, a request with no key or a wrong one is refused before anything runs."""
    reply = keyed_server.client.get("/v1/experts", headers=headers)
    assert reply.status_code == 401 and reply.headers["www-authenticate"].startswith("Bearer")
    assert "key" in reply.json()["detail"]


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer key-two"}, {"X-API-Key": "key-one"}])
def test_a_valid_key_in_either_header_is_let_in_and_health_needs_none(keyed_server, headers):
    """Either configured key works, as a bearer token (OpenAI's clients) or X-API-Key; /health stays open for probes."""
    assert keyed_server.client.get("/v1/models", headers=headers).status_code == 200
    assert keyed_server.client.get("/health").status_code == 200


def test_a_body_over_the_limit_is_a_413(keyed_server):
    """STEPWISE_MAX_BODY_BYTES bounds the request body; past it the reply is 413 and nothing runs."""
    reply = keyed_server.client.post("/v1/reason", json={"question": "x" * 5000}, headers={"X-API-Key": "key-one"})
    assert reply.status_code == 413


def test_the_trace_page_takes_the_key_in_its_query_string(keyed_server):
    """A browser cannot send headers when it opens a page: /runs/{id}?key=KEY is let in, other routes are not."""
    run_id = "00000000-0000-0000-0000-000000000000"
    assert keyed_server.client.get(f"/runs/{run_id}").status_code == 401
    assert keyed_server.client.get(f"/runs/{run_id}?key=key-one").status_code == 404  # let in; no such run
    assert keyed_server.client.get(f"/v1/runs/{run_id}?key=key-one").status_code == 401
