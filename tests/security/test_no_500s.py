"""Issue 10 §4, no 500s: hostile or careless bodies get a 4xx naming the problem, and a database outage is a 503
saying what is down. Against the real server (SmolLM2 composes) and the real Postgres, reached through a relay the
outage tests can cut, so the shared Postgres is never stopped."""

from __future__ import annotations

import json
import time
import uuid

import asyncpg
import pytest

from tests.conftest import ADMIN_URL, LiveServer, settings_for
from tests.security.postgres_proxy import PostgresProxy

pytestmark = pytest.mark.model

ROUTES = {"reason": "/v1/reason", "chat": "/v1/chat/completions"}


def calc(sid, expression: str, *deps) -> dict:
    return {"id": sid, "kind": "tool", "target": "calculator", "input": {"expression": expression},
            "depends_on": list(deps)}


@pytest.fixture(scope="module")
def proxy(database_url):
    with PostgresProxy(database_url) as relay:
        yield relay


@pytest.fixture(scope="module")
def server(proxy):
    with LiveServer(settings_for(proxy.url, "smollm2", deadline_s=120.0)) as live:
        yield live


def post(server: LiveServer, route: str, body: bytes | str, content_type: str | None = "application/json"):
    headers = {"content-type": content_type} if content_type else {}
    return server.client.post(ROUTES[route], content=body, headers=headers)


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("depth", [990, 1500, 5000])
@pytest.mark.parametrize(("route", "template"), [
    ("reason",
     '{"question": "q", "plan": {"steps": [{"id": 1, "kind": "tool", "target": "calculator", '
     '"input": %s, "depends_on": []}]}}'),
    ("reason", '{"question": "q", "budget": %s}'),
    ("reason", "[%s]"),
    ("chat", '{"model": "stepwise", "messages": [{"role": "user", "content": "hi"}], '
             '"tools": [{"type": "function", "function": {"name": "f", "parameters": %s}}]}'),
])
def test_json_nested_deeper_than_the_limit_is_a_400_saying_so(server, depth, route, template):
    """990–5000 levels (a 500 before: RecursionError while decoding) are refused before decoding, wherever they sit."""
    reply = post(server, route, template % nested(depth))
    assert (reply.status_code == 400
            and reply.json()["detail"] == "body: JSON nested more than 64 levels deep is not accepted")


@pytest.mark.parametrize(("route", "body", "field"), [
    ("reason", {"question": "q", "deadline_s": "10"}, "deadline_s"),
    ("reason", {"question": "q", "plan": {"steps": [calc("1", "1+1")]}}, "plan.steps[0].id"),
    ("reason", {"question": "q", "plan": {"steps": [calc(1, "1+1"), calc(2, "2", "1")]}},
     "plan.steps[1].depends_on[0]"),
    ("reason", {"question": "q", "budget": {"max_steps": "3"}}, "budget.max_steps"),
    ("reason", {"question": "q", "stream": "true"}, "stream"),
    ("chat", {"model": "stepwise", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "5"}, "max_tokens"),
])
def test_a_number_or_flag_sent_as_a_string_is_a_400_naming_the_field(server, route, body, field):
    """Decoding is strict: "10" is not a number and "true" not a flag; the reply names the field by its path."""
    reply = post(server, route, json.dumps(body))
    assert reply.status_code == 400
    assert reply.json()["detail"].startswith(f"{field}: Expected `")
    assert {"key": field, "source": "body"}.items() <= reply.json()["extra"][0].items()


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_json_body_sent_as_something_else_is_a_415_saying_the_content_type(server, route, content_type):
    """The body is JSON only when the client says so; anything else (or nothing) is a 415 naming what was sent."""
    body = json.dumps({"question": "1+1?"} if route == "reason"
                      else {"model": "stepwise", "messages": [{"role": "user", "content": "hi"}]})
    reply = post(server, route, body, content_type)
    assert reply.status_code == 415
    assert reply.json()["detail"] == (f"Content-Type: {content_type or 'none'} is not JSON; send "
                                      f"the body as application/json")


def test_json_with_a_charset_or_a_json_suffix_is_json(server):
    """application/json with parameters, and application/*+json, are decoded (this body then fails on its field)."""
    for content_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
        reply = post(server, "reason", json.dumps({"question": 5}), content_type)
        assert reply.status_code == 400 and reply.json()["detail"].startswith("question: Expected `str`")


@pytest.mark.parametrize(("step_id", "bound"), [(2**31, "<= 2147483647"), (2**70, "<= 2147483647"), (0, ">= 1"),
                                                (-1, ">= 1")])
def test_a_step_id_the_trace_cannot_store_is_a_400_never_a_float(server, step_id, bound):
    """Step ids live in integer columns: past 2**31-1 (or below 1) the plan is refused, naming the field; 2**70 is
    never read, or echoed, as a float."""
    reply = post(server, "reason", json.dumps({"question": "q", "plan": {"steps": [calc(step_id, "1+1")]}}))
    assert reply.status_code == 400 and reply.json()["detail"] == f"plan.steps[0].id: Expected `int` {bound}"
    assert "e+" not in reply.text


def test_the_largest_step_id_runs_and_comes_back_as_the_same_integer(server):
    """2**31-1 is a valid id: it runs, and the plan, the step and the answer's `uses` carry it as that integer."""
    top = 2**31 - 1
    reply = server.client.post("/v1/reason", json={"question": "What is 6*7?", "plan": {"steps": [calc(top, "6*7")]}})
    report = reply.json()
    assert (report["plan"]["steps"][0]["id"] == top and report["steps"][0]["id"] == top
            and report["steps"][0]["output"] == 42)
    if reply.status_code == 200:  # SmolLM2 composed an answer: it may only cite the plan's step
        assert report["answer"]["uses"] == [top] and f"[{top}]" in reply.text
    assert server.client.get(f"/v1/runs/{report['run_id']}").json() == report


def wait_until_healthy(server: LiveServer, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        reply = server.client.get("/health")
        if reply.status_code == 200 and reply.json()["status"] == "ok" or time.monotonic() > deadline:
            return reply.json()
        time.sleep(0.2)


def test_health_is_a_503_saying_the_database_is_down_during_an_outage(server, proxy):
    """With Postgres unreachable (every connection cut, new ones refused), /health is a 503 whose body says the
    database is down, and a route that reads the trace is a 503 saying so too, not a bare 500. Once the database is
    back, so is health."""
    assert wait_until_healthy(server)["status"] == "ok"
    proxy.cut()
    try:
        reply = server.client.get("/health")
        body = reply.json()
        assert reply.status_code == 503 and body["status"] == "down" and body["database"] == "down"
        assert body["problems"][0].startswith("database: unreachable (")
        trace = server.client.get(f"/v1/runs/{uuid.uuid4()}")
        assert trace.status_code == 503 and trace.json()["detail"].startswith("the database is unreachable (")
    finally:
        proxy.restore()
    assert wait_until_healthy(server)["status"] == "ok"


async def test_health_is_degraded_while_the_trace_sink_cannot_write_and_nothing_is_lost(server, proxy):
    """The database answers /health (its pooled session lives on) but the trace sink's connection is gone and a new
    one is refused: a run's events wait, /health is 200 "degraded" saying the sink is retrying; once Postgres takes
    connections again the run's trace lands whole."""
    assert wait_until_healthy(server)["status"] == "ok"
    proxy.refuse_new()
    try:
        admin = await asyncpg.connect(ADMIN_URL)
        try:  # only this server's trace sink session (its application_name, through this relay)
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                                "application_name = 'stepwise' "
                                "AND client_port = ANY($1::int[])", list(proxy.client_ports()))
        finally:
            await admin.close()
        # A run that needs no model (its budget refuses the composer): its events are what the sink must write.
        run = server.client.post("/v1/reason", json={"question": "6*7?", "plan": {"steps": [calc(1, "6*7")]},
                                                      "budget": {"max_model_calls": 0}})
        assert run.status_code == 422
        time.sleep(0.5)
        reply = server.client.get("/health")
        body = reply.json()
        assert reply.status_code == 200 and body["status"] == "degraded" and body["database"] == "ok"
        assert any(p.startswith("trace sink: Postgres unreachable, retrying for") for p in body["problems"])
    finally:
        proxy.restore()
    assert wait_until_healthy(server)["status"] == "ok"
    assert server.client.get(f"/v1/runs/{run.json()['run_id']}").json() == run.json()
