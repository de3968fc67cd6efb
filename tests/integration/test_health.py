"""GET /health and the trace-reading routes while Postgres restarts: `down` and 503s saying so, never a 500. The real
app over the test database, with a runtime that has no model (no route here calls one)."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from tests.conftest import engineless_app

# What the next query on a pooled session raises when Postgres ended that session mid-restart (asyncpg 0.32's protocol
# state machine; seen 7 times in 2,087 /health probes during six restarts of a private cluster).
MID_RESTART = asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress")


@pytest.fixture
async def client(database_url):
    async with engineless_app(database_url) as test_client:
        yield test_client


async def test_health_is_ok_with_the_trace_counters(client):
    """With Postgres answering and nothing queued, /health is 200 `ok` and shows the sink's counters, emitted
    included."""
    reply = await client.get("/health")
    assert reply.status_code == 200 and reply.json()["status"] == "ok"
    assert set(reply.json()["trace"]) == {"emitted", "written", "dead_lettered", "dropped", "retries", "lag_s"}


async def test_a_pooled_session_broken_by_a_restart_is_a_503_down_not_a_500(client, monkeypatch):
    """The InternalClientError a session ended mid-restart raises makes /health a 503 `down` naming it, and a route
    reading the trace a 503 saying the database is unreachable (both were 500s)."""

    async def broken(self, *args, **kwargs):
        raise MID_RESTART

    monkeypatch.setattr(asyncpg.Connection, "fetchval", broken)
    health = await client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "down"
    assert health.json()["problems"][0] == f"database: unreachable (InternalClientError: {MID_RESTART})"
    trace = await client.get(f"/v1/runs/{uuid.uuid4()}")
    assert (trace.status_code == 503
            and trace.json()["detail"].startswith("the database is unreachable (InternalClientError"))
