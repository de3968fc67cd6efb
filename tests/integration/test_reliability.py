"""The deterministic parts of `python -m bench.reliability`, one run at a time: whatever goes wrong (the expert
failing in each way, clients leaving streams, Postgres restarted or down), every run ends in a terminal state
recorded in Postgres, and every event the server emitted is a row. The real server process on a Postgres cluster of
the module's own (so it can be stopped), with the SGLang test server's scripted model in its own process."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import httpx
import pytest

from stepwise.app.migrate import migrate_url
from stepwise.app.openai_api import RUN_HEADER
from tests.processes import PostgresCluster, SGLangProcess, StepwiseProcess, experts_file, wait_until

PLAN = {"steps": [{"id": 1, "kind": "expert", "target": "general", "input": "Say done.", "depends_on": []}]}
REASON = {"question": "Say done.", "plan": PLAN, "deadline_s": 5}
CHAT = {"model": "general", "messages": [{"role": "user", "content": "Say done."}], "stream": True}


@pytest.fixture(scope="module")
def cluster():
    cluster = PostgresCluster()
    asyncio.run(migrate_url(cluster.url))
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def expert(tmp_path_factory):
    """0.05 s a token: a call takes about 0.35 s, long enough to leave or kill it midway."""
    expert = SGLangProcess(tmp_path_factory.mktemp("expert") / "expert.log", token_s=0.05)
    yield expert
    expert.close()


@pytest.fixture(scope="module")
def server(cluster, expert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    server = StepwiseProcess(cluster.url, experts_file(folder, expert.url, timeout_s=30), folder / "serve.log")
    yield server
    server.kill()


def stored(cluster: PostgresCluster, run_id: str) -> tuple[str | None, list[str]]:
    """(runs.status, the run's event types in order), as Postgres holds them now."""

    async def read() -> tuple[str | None, list[str]]:
        conn = await asyncpg.connect(cluster.url)
        try:
            # One snapshot for both reads: the sink commits a run's last events and its status together, and two
            # statements could see the events after that commit and the status before it (seen beside another suite).
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                status = await conn.fetchval("SELECT status FROM runs WHERE run_id = $1::uuid", run_id)
                types = [r["type"]
                         for r in await conn.fetch("SELECT type FROM events WHERE run_id = $1::uuid ORDER BY id",
                                                   run_id)]
            return status, types
        finally:
            await conn.close()

    return asyncio.run(read())


def recorded(cluster: PostgresCluster, run_id: str) -> tuple[str, list[str]]:
    """The run's stored status and events once its last event is written (the sink writes off the request's path)."""
    return wait_until(lambda: (found := stored(cluster, run_id))[1][-1:] in (["run_finished"], ["run_failed"])
                      and found, 30, f"run {run_id} recorded", poll_s=0.1)


def trace_caught_up(server: StepwiseProcess) -> dict:
    """/health's trace counters once everything emitted is written."""
    return wait_until(lambda: (t := httpx.get(f"{server.url}/health",
                                              timeout=10).json()["trace"])["written"] == t["emitted"] and t,
                      60, "the trace sink caught up", poll_s=0.1)


def text_of(chunk: str) -> str:
    """The text a chat.completion.chunk adds."""
    return "".join(choice["delta"].get("content") or "" for choice in json.loads(chunk)["choices"])


def reason(server: StepwiseProcess) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/reason", json=REASON, timeout=60)


@pytest.mark.parametrize(("fault", "status", "error_type", "says"), [
    ({"status": 500}, 502, "backend_error", "answered 500"),
    ({"malformed": True}, 502, "backend_error", "streamed an unreadable chunk"),
    ({"delay_s": 30}, 504, "deadline_exceeded", "deadline"),
])
def test_an_expert_failing_fails_the_run_with_its_reason_recorded(server, expert, cluster, fault, status, error_type,
                                                                  says):
    """An expert answering HTTP 500, a stream chunk cut off mid-JSON, or nothing before the run's 5 s deadline: the
    reply is the run's report with the failure's status and what happened, Postgres has the run failed, and the next
    run finishes."""
    expert.inject(**fault)
    reply = reason(server)
    assert (reply.status_code, reply.json()["status"], reply.json()["error"]["type"]) == (status, "failed", error_type)
    assert says in reply.json()["error"]["detail"]
    assert recorded(cluster, reply.headers[RUN_HEADER])[0] == "failed"
    assert reason(server).json()["status"] == "finished"


def test_an_expert_killed_mid_generation_fails_the_run_recorded(server, expert, cluster):
    """The expert's process SIGKILLed while it generates: the run fails as the expert being unavailable (503), is
    recorded so, and once the expert is back the next run finishes."""
    generated = sum(expert.state()["tokens"].values())
    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(1) as pool:
        reply_future = pool.submit(client.post, f"{server.url}/v1/reason", json=REASON)
        wait_until(lambda: sum(expert.state()["tokens"].values()) > generated, 30, "the expert generating")
        expert.kill()
        reply = reply_future.result()
    try:
        assert (reply.status_code, reply.json()["error"]["type"]) == (503, "backend_unavailable")
        assert recorded(cluster, reply.headers[RUN_HEADER])[0] == "failed"
    finally:
        expert.start()
    assert reason(server).json()["status"] == "finished"


def test_a_client_leaving_its_sse_stream_cancels_the_run_recorded(server, cluster):
    """A client that closes the event stream at the first step's start: the run is cancelled, and Postgres has it so."""
    with httpx.stream("POST", f"{server.url}/v1/reason", json={**REASON, "stream": True}, timeout=60) as reply:
        run_id = reply.headers[RUN_HEADER]
        next(line for line in reply.iter_lines() if line == "event: step_started")
    status, types = recorded(cluster, run_id)
    assert status == "cancelled" and types[0] == "run_started" and "step_started" in types


def test_a_client_leaving_its_chat_stream_cancels_the_run_recorded(server, cluster):
    """A client that closes a streamed chat completion after its first text: the turn is cancelled and recorded so."""
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=CHAT, timeout=60) as reply:
        run_id = reply.headers[RUN_HEADER]
        next(line for line in reply.iter_lines() if line.startswith("data: {") and text_of(line[6:]))
    assert recorded(cluster, run_id)[0] == "cancelled"


def test_runs_across_a_postgres_restart_are_all_recorded(server, cluster):
    """Postgres restarted between runs (every session ended): the runs before and after are answered and recorded,
    and every event emitted is a row; /health never answered with a 500 meanwhile."""
    before = reason(server)
    cluster.restart()
    after = [reason(server) for _ in range(3)]
    assert [r.json()["status"] for r in [before, *after]] == ["finished"] * 4
    for reply in [before, *after]:
        assert recorded(cluster, reply.headers[RUN_HEADER])[0] == "finished"
    trace = trace_caught_up(server)
    assert trace["dropped"] == 0 and trace["dead_lettered"] == 0


def test_runs_while_postgres_is_down_are_answered_held_and_written_after(server, cluster):
    """With Postgres stopped, runs are still answered (their events wait in the trace queue), /health is a 503
    `down` saying the database is unreachable; once Postgres is back, every held event is written."""
    trace_caught_up(server)
    cluster.stop()
    try:
        replies = [reason(server) for _ in range(3)]
        health = httpx.get(f"{server.url}/health", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "down"
        assert health.json()["trace"]["written"] < health.json()["trace"]["emitted"]
    finally:
        cluster.start()
    assert [r.json()["status"] for r in replies] == ["finished"] * 3
    trace = trace_caught_up(server)
    assert trace["dropped"] == 0 and trace["retries"] > 0
    for reply in replies:
        assert recorded(cluster, reply.headers[RUN_HEADER])[0] == "finished"


def test_runs_answered_while_postgres_is_down_at_sigterm_are_written_by_the_next_start(cluster, expert, tmp_path):
    """Postgres down when the server is stopped: it still exits 0, its unwritten events go to a spill file instead of
    being dropped, and the next start on the same data folder and database writes them: every run recorded."""
    experts = experts_file(tmp_path, expert.url, timeout_s=30)
    first = StepwiseProcess(cluster.url, experts, tmp_path / "serve.log")
    try:
        cluster.stop()
        try:
            replies = [reason(first) for _ in range(3)]
            first.terminate()
            assert first.wait(60) == 0
        finally:
            cluster.start()
    finally:
        first.kill()
    (closed,) = first.log_events("trace_sink_closed")
    assert closed["dropped"] == 0 and closed["spilled"] == closed["emitted"] - closed["written"] > 0
    second = StepwiseProcess(cluster.url, experts, tmp_path / "serve-again.log")
    try:
        for reply in replies:
            assert recorded(cluster, reply.headers[RUN_HEADER])[0] == "finished"
        assert trace_caught_up(second)["dropped"] == 0
    finally:
        second.kill()
