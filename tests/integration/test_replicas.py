"""Two `stepwise serve` processes on one Postgres, as behind a load balancer: a run started on one is read and
cancelled through the other (the cancellation reaches its owner through Postgres LISTEN/NOTIFY), each process has its
own /metrics, and replicas started at the same moment on a fresh database apply the migrations once. Real server
processes, the real Postgres, an SGLang-protocol expert (the test server's scripted model, no model file)."""

from __future__ import annotations

import asyncio
import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from stepwise.app import db
from stepwise.app.cancellation import CancelListener, request_cancel
from stepwise.app.migrate import LOCK, available
from tests.conftest import query_sync, scratch_database
from tests.processes import ANSWER, StepwiseProcess, experts_file, wait_until
from tests.sglang_server import SGLangTestServer


def plan_body(question: str) -> dict:
    return {"question": question, "plan": {"steps": [
        {"id": 1, "kind": "expert", "target": "general", "input": "Say la.", "depends_on": []}]}}


def run_asked(database_url: str, question: str) -> str | None:
    """The id of the run recorded for `question`, once its owner's trace sink has written it."""
    rows = query_sync(database_url, "SELECT run_id::text AS run_id FROM runs WHERE question = $1", question)
    return rows[0]["run_id"] if rows else None


def runs_metric(server: StepwiseProcess, status: str) -> float:
    """stepwise_runs_total for runs ended with `status`, summed over error types, as this process counts them."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("stepwise_runs_total{") and f'status="{status}"' in line)


@pytest.fixture
def endless_expert():
    """The scripted model at 1 s a token with 100 tokens to write: a run stays in its first model call until
    cancelled."""
    with SGLangTestServer(None, script="la " * 200, token_s=1.0, health_delay_s=0) as server:
        yield server


def test_a_run_started_on_one_replica_is_read_and_cancelled_through_the_other(database_url, tmp_path, endless_expert):
    """B reads A's run as running, B's DELETE by prefix is a 202 and A cancels it (the expert is told to abort), A's
    client gets the cancelled report (499), the trace says cancelled as read through B, a second DELETE through either
    is a 409, and only A's /metrics counts the run."""
    experts = experts_file(tmp_path, endless_expert.url, max_tokens=100)
    a = StepwiseProcess(database_url, experts, tmp_path / "a.log")
    try:
        b = StepwiseProcess(database_url, experts, tmp_path / "b.log")
        try:
            question = f"Say la ({uuid.uuid4()})."
            with ThreadPoolExecutor(1) as pool:
                reply = pool.submit(httpx.post, f"{a.url}/v1/reason", json=plan_body(question), timeout=120)
                run_id = wait_until(lambda: run_asked(database_url, question), 30, "A's run in the trace")
                wait_until(lambda: any(path == "/generate" for path, _ in endless_expert.requests), 30,
                           "the run calling the expert")
                read = httpx.get(f"{b.url}/v1/runs/{run_id}", timeout=10)
                assert read.status_code == 200 and (read.json()["run_id"], read.json()["status"]) == (run_id, "running")
                cancelled = httpx.delete(f"{b.url}/v1/runs/{run_id[:8]}", timeout=10)
                assert cancelled.status_code == 202 and cancelled.json() == {"run_id": run_id, "status": "cancelling"}
                answered = reply.result()
            assert answered.status_code == 499 and answered.json()["status"] == "cancelled"
            assert [r["run_id"] for r in a.log_events("run_cancel_requested_elsewhere")] == [run_id]
            wait_until(lambda: endless_expert.aborted, 10, "the expert told to abort")
            assert len(endless_expert.aborted) == 1
            # A wrote the run's end to its trace sink before answering; Postgres has it once the sink's batch is in
            wait_until(lambda: httpx.get(f"{b.url}/v1/runs/{run_id}", timeout=10).json()["status"] == "cancelled", 30,
                       "the cancelled run as read through B")
            assert query_sync(database_url, "SELECT status FROM runs WHERE run_id::text = $1",
                              run_id)[0]["status"] == "cancelled"
            for server in (b, a):
                again = httpx.delete(f"{server.url}/v1/runs/{run_id}", timeout=10)
                assert again.status_code == 409 and "has ended" in again.json()["detail"]
            assert (runs_metric(a, "cancelled"), runs_metric(b, "cancelled")) == (1.0, 0.0)
        finally:
            b.kill()
    finally:
        a.kill()


async def advisory_waiters(conn, key: int) -> int:
    """Sessions waiting for the advisory lock `key` on this database."""
    return await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                               "NOT granted AND objid = $1"
                               " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", key)


async def test_replicas_started_together_on_a_fresh_database_apply_the_migrations_once(tmp_path):
    """Both servers reach the migration lock before either migrates (the test holds it until then); when it is let go,
    one applies every migration, the other none, schema_migrations lists each once, and both serve."""
    async with scratch_database(f"stepwise_test_replicas_{os.getpid()}") as url:
        holder = await db.connect(url)
        try:
            await holder.execute("SELECT pg_advisory_lock($1)", LOCK)
            with SGLangTestServer(None, script=ANSWER, token_s=0, health_delay_s=0) as expert:
                experts = experts_file(tmp_path, expert.url)
                starting = [asyncio.create_task(asyncio.to_thread(StepwiseProcess, url, experts,
                                                                  tmp_path / f"{name}.log"))
                            for name in ("a", "b")]
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 60
                while await advisory_waiters(holder, LOCK) < 2:
                    assert loop.time() < deadline and not any(task.done()
                                                              for task in starting), "both replicas waiting to migrate"
                    await asyncio.sleep(0.05)
                await holder.execute("SELECT pg_advisory_unlock($1)", LOCK)
                replicas = await asyncio.gather(*starting)
                try:
                    applied = [[e["migration"] for e in server.log_events("migration_applied")] for server in replicas]
                    assert sorted(applied, key=len) == [[], [name for _, name, _ in available()]]
                    recorded = await holder.fetch("SELECT name FROM schema_migrations ORDER BY version")
                    assert [r["name"] for r in recorded] == [name for _, name, _ in available()]
                    for server in replicas:
                        assert httpx.get(f"{server.url}/health", timeout=10).json()["status"] == "ok"
                finally:
                    for server in replicas:
                        server.kill()
        finally:
            await holder.close()


async def test_the_cancel_listener_comes_back_after_its_session_is_killed(database_url):
    """A request reaches the listener; after Postgres ends the listener's session (pg_terminate_backend, as a restart
    does), it reconnects by itself and the next request reaches it too."""
    received: asyncio.Queue[uuid.UUID] = asyncio.Queue()
    listener = CancelListener(lambda: db.connect(database_url), lambda run_id: received.put_nowait(run_id) or True)
    await listener.start()
    conn = await db.connect(database_url)
    try:
        first, second = uuid.uuid4(), uuid.uuid4()
        assert await request_cancel(conn, first)  # no end recorded for it: asked
        assert await asyncio.wait_for(received.get(), 10) == first
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", listener.server_pid)
        async with asyncio.timeout(10):
            while not (listener.listening and listener.connections == 2):
                await asyncio.sleep(0.02)
        assert await request_cancel(conn, second)
        assert await asyncio.wait_for(received.get(), 10) == second
    finally:
        await conn.close()
        await listener.close()
