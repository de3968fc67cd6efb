"""SIGTERM stops `stepwise serve` gracefully: it stops accepting, lets the runs in flight end within the grace period
(STEPWISE_SHUTDOWN_GRACE_S) or cancels them, flushes the trace, and exits 0. The real server process, the real
Postgres, an SGLang-protocol expert (the test server's scripted model, no model file)."""

from __future__ import annotations

import asyncio
import signal
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from stepwise.app import db
from stepwise.app.openai_api import RUN_HEADER
from stepwise.app.runtime import Runtime
from stepwise.app.trace import TraceSink
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.types import ExpertStep, Plan
from tests.conftest import query_sync, settings_for
from tests.doubles import Script, engine_with
from tests.processes import ANSWER, StepwiseProcess, experts_file, wait_until
from tests.sglang_server import SGLangTestServer

RUNS = 4
BODY = {"question": "Say done.", "plan": {"steps": [
    {"id": 1, "kind": "expert", "target": "general", "input": "Say done.", "depends_on": []},
]}}


@pytest.fixture
def slow_expert():
    """The scripted model, 0.3 s a token: each of a run's two calls (the step, the composer) takes about 2 s."""
    with SGLangTestServer(None, script=ANSWER, token_s=0.3, health_delay_s=0) as server:
        yield server


def generations(expert: SGLangTestServer) -> int:
    return sum(path == "/generate" for path, _ in expert.requests)


def start_runs(server: StepwiseProcess, expert: SGLangTestServer, pool: ThreadPoolExecutor) -> list:
    """RUNS requests in flight: each has reached the expert."""
    replies = [pool.submit(httpx.post, f"{server.url}/v1/reason", json=BODY, timeout=120) for _ in range(RUNS)]
    wait_until(lambda: generations(expert) >= RUNS, 30, "every run calling the expert")
    return replies


def stored_ends(database_url: str, replies: list[httpx.Response]) -> list[tuple[str, str, str]]:
    """Each stored run of `replies` as Postgres holds it: (runs.status, its first event's type, its last's)."""
    rows = query_sync(database_url, """
        SELECT r.status, array_agg(e.type ORDER BY e.id) AS types
        FROM runs r JOIN events e USING (run_id) WHERE r.run_id::text = ANY($1) GROUP BY r.run_id, r.status""",
                      [reply.headers[RUN_HEADER] for reply in replies])
    return [(row["status"], row["types"][0], row["types"][-1]) for row in rows]


def test_sigterm_stops_accepting_lets_runs_in_flight_finish_and_exits_0(database_url, tmp_path, slow_expert):
    """Within the grace period every run in flight finishes and is answered, new connections are refused, the
    trace is complete in Postgres, nothing is dropped, and the exit status is 0 (uvicorn alone: 143)."""
    server = StepwiseProcess(database_url, experts_file(tmp_path, slow_expert.url), tmp_path / "serve.log",
                             env={"STEPWISE_SHUTDOWN_GRACE_S": "60"})
    try:
        with ThreadPoolExecutor(RUNS) as pool:
            replies = start_runs(server, slow_expert, pool)
            server.terminate()
            wait_until(lambda: not server.accepting(), 10, "the listening socket closed")
            answered = [reply.result() for reply in replies]
        assert server.wait(60) == 0
    finally:
        server.kill()
    assert [(r.status_code, r.json()["status"]) for r in answered] == [(200, "finished")] * RUNS
    assert stored_ends(database_url, answered) == [("finished", "run_started", "run_finished")] * RUNS
    (drained,) = server.log_events("runs_drained")
    assert (drained["ended"], drained["cancelled"]) == (RUNS, 0)
    (closed,) = server.log_events("trace_sink_closed")
    assert closed["dropped"] == 0 and closed["written"] > 0


def test_runs_still_going_after_the_grace_period_are_cancelled_recorded_and_answered(database_url, tmp_path):
    """Runs longer than the grace period are cancelled at its end: each client gets the report saying so (499), the
    expert is told to abort, Postgres has every run as cancelled, and the exit status is still 0."""
    with SGLangTestServer(None, script="la " * 200, token_s=1.0, health_delay_s=0) as expert:
        server = StepwiseProcess(database_url, experts_file(tmp_path, expert.url, max_tokens=100),
                                 tmp_path / "serve.log", env={"STEPWISE_SHUTDOWN_GRACE_S": "1"})
        try:
            with ThreadPoolExecutor(RUNS) as pool:
                replies = start_runs(server, expert, pool)
                server.process.send_signal(signal.SIGTERM)
                answered = [reply.result() for reply in replies]
            assert server.wait(60) == 0
        finally:
            server.kill()
        aborted = dict(expert.aborted)
    assert [(r.status_code, r.json()["status"]) for r in answered] == [(499, "cancelled")] * RUNS
    assert stored_ends(database_url, answered) == [("cancelled", "run_started", "run_failed")] * RUNS
    assert len(aborted) == RUNS
    (drained,) = server.log_events("runs_drained")
    assert (drained["ended"], drained["cancelled"]) == (0, RUNS)
    assert server.log_events("trace_sink_closed")[0]["dropped"] == 0


class _NoFleet:
    async def aclose(self) -> None:
        pass


async def test_closing_the_runtime_cancels_runs_still_going_and_writes_their_end(database_url, pg):
    """Runtime.close with a run still waiting on its expert: the run is cancelled first, so its RunFailed reaches the
    trace before the sink closes; Postgres has it cancelled and the sink dropped nothing."""
    expert = Script(hang=True)
    sink = TraceSink(lambda: db.connect(database_url))
    sink.start()
    runtime = Runtime(settings_for(database_url, "smollm2"), engine_with(expert, {}), _NoFleet(),
                      await db.create_pool(database_url), sink, database_url)
    run_id = uuid.uuid4()
    plan = Plan([ExpertStep(1, "general", "Say done.")])
    run = asyncio.create_task(runtime.ask("Say done.", 60, options=RunOptions(plan=plan), run_id=run_id))
    while not expert.calls:  # the run is waiting on its expert
        await asyncio.sleep(0.01)
    await runtime.close()
    assert (await run).status == "cancelled"
    assert await pg.fetchval("SELECT status FROM runs WHERE run_id = $1", run_id) == "cancelled"
    assert await pg.fetchval("SELECT type FROM events WHERE run_id = $1 ORDER BY id DESC LIMIT 1",
                             run_id) == "run_failed"
    assert sink.dropped == 0 and sink.written == sink.emitted
