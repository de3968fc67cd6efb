"""Issue 10 §3, one request cannot poison the trace for everyone: poison requests run next to 30 ordinary runs
through the real server into the real Postgres; every ordinary run keeps its runs row and every one of its events,
and each poison ends where the test says: refused at the boundary, stored escaped, refused by its tool, or (for a
character the trace database's encoding lacks) dead-lettered while its run stays readable."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import httpx
import msgspec
import pytest

from stepwise.reasoning.report import RunReport
from tests.conftest import TEST_DB, LiveServer, scratch_database, settings_for
from tests.integration.test_sse import read_sse

pytestmark = pytest.mark.model

TERMINAL = {"finished", "failed", "cancelled"}


def calc(sid: int, expression: str, *deps: int) -> dict:
    return {"id": sid, "kind": "tool", "target": "calculator", "input": {"expression": expression},
            "depends_on": list(deps)}


class Ordinary(msgspec.Struct):
    """An ordinary run as its client saw it: the event types streamed, in order, and the report."""

    event_types: list[str]
    report: RunReport


def ordinary_run(url: str, i: int, budget: dict | None = None) -> Ordinary:
    body = {"question": f"Ordinary run {i}: what is 6*7+{i}?", "stream": True, "deadline_s": 120,
            "plan": {"steps": [calc(1, "6*7"), calc(2, f"$1+{i}", 1)]}}
    if budget is not None:
        body["budget"] = budget
    with httpx.Client(base_url=url, timeout=300) as client:
        reply = client.post("/v1/reason", json=body)
    messages = read_sse(reply.text.splitlines())
    assert reply.status_code == 200 and messages[-1]["event"] == "report"
    return Ordinary([m["event"] for m in messages[:-1]], msgspec.json.decode(messages[-1]["data"], type=RunReport))


def send(url: str, body: dict) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=300) as client:
        return client.post("/v1/reason", json=body)


async def assert_whole(pg: asyncpg.Connection, server: LiveServer, run: Ordinary) -> None:
    """The run's runs row has its final status, its events rows are the events it streamed, in order, its steps
    rows are its steps, and GET /v1/runs/{id} folds the same report back."""
    run_id = run.report.run_id
    assert run.report.status in TERMINAL
    assert server.client.get(f"/v1/runs/{run_id}").json() == msgspec.to_builtins(run.report)  # also flushes the sink
    assert await pg.fetchval("SELECT status FROM runs WHERE run_id = $1", run_id) == run.report.status
    stored = [r["type"] for r in await pg.fetch("SELECT type FROM events WHERE run_id = $1 ORDER BY id", run_id)]
    assert stored == run.event_types
    assert await pg.fetchval("SELECT count(*) FROM steps WHERE run_id = $1", run_id) == len(run.report.steps)


@pytest.fixture(scope="module")
def server(database_url):
    settings = settings_for(database_url, "smollm2", deadline_s=120.0, tool_modules=("tests.fixtures.user_tools",))
    with LiveServer(settings) as live:
        yield live


async def test_poison_next_to_30_ordinary_runs_costs_them_nothing(server, pg):
    """30 ordinary runs at once with, among them, a NUL in a question, a NUL in a tool's output, a calculator result
    of 4,771 digits and step ids of 2**31 and 2**70. Every ordinary run is whole in Postgres, whatever its status
    (on 2 busy cores some may reach their deadline). The NULs are stored as U+FFFD, nothing dead-lettered; the huge
    result is refused by the calculator (the run fails, its trace whole); the step ids are 400s naming the field,
    before any run exists."""
    poisons = {
        "nul question": {"question": "nul \u0000 here", "deadline_s": 30, "plan": {"steps": [calc(1, "1+1")]}},
        "nul output": {"question": "echo a NUL", "deadline_s": 30, "plan": {"steps": [
            {"id": 1, "kind": "tool", "target": "echo_later", "input": {"text": "a\u0000b", "seconds": 0},
             "depends_on": []}]}},
        "huge result": {"question": "what is 9**5000?", "deadline_s": 30, "plan": {"steps": [calc(1, "9**5000")]}},
        "id 2**31": {"question": "poison: id 2**31", "plan": {"steps": [calc(2**31, "1+1")]}},
        "id 2**70": {"question": "poison: id 2**70", "plan": {"steps": [calc(2**70, "1+1")]}},
    }
    with ThreadPoolExecutor(max_workers=36) as pool:
        ordinary = [pool.submit(ordinary_run, server.url, i) for i in range(30)]
        poisoned = {name: pool.submit(send, server.url, body) for name, body in poisons.items()}
        runs = [future.result() for future in ordinary]
        replies = {name: future.result() for name, future in poisoned.items()}

    for run in runs:
        await assert_whole(pg, server, run)

    for name in ("id 2**31", "id 2**70"):
        reply = replies[name]
        assert reply.status_code == 400 and reply.json()["detail"] == "plan.steps[0].id: Expected `int` <= 2147483647"
        assert await pg.fetchval("SELECT count(*) FROM runs WHERE question = $1", poisons[name]["question"]) == 0

    nul_question = replies["nul question"].json()
    assert server.client.get(f"/v1/runs/{nul_question['run_id']}").status_code == 200
    assert await pg.fetchval("SELECT question FROM runs WHERE run_id = $1", nul_question["run_id"]) == "nul \ufffd here"

    nul_output = replies["nul output"].json()
    assert nul_output["steps"][0]["output"] == "a\u0000b"  # the reply is the run's own report: JSON carries a NUL
    row = await pg.fetchrow("SELECT s.output, t.result FROM steps s JOIN tool_calls t USING (run_id, "
                            "step_id) WHERE run_id = $1",
                            nul_output["run_id"])
    assert (row["output"], row["result"]) == ("a\ufffdb", "a\ufffdb")

    huge = replies["huge result"].json()  # the repair the engine then asks the planner for cannot help either
    assert (huge["status"] == "failed" and huge["steps"][0]["status"] == "failed"
            and "too large" in huge["steps"][0]["error"])
    assert await pg.fetchval("SELECT status FROM runs WHERE run_id = $1", huge["run_id"]) == "failed"
    assert await pg.fetchval("SELECT error FROM steps WHERE run_id = $1", huge["run_id"]) == huge["steps"][0]["error"]

    poison_ids = [nul_question["run_id"], nul_output["run_id"], huge["run_id"]]
    for run_id in poison_ids:
        assert await pg.fetchval("SELECT status FROM runs WHERE run_id = $1", run_id) in TERMINAL
    run_ids = [run.report.run_id for run in runs] + poison_ids
    assert await pg.fetchval("SELECT count(*) FROM trace_dead_letters WHERE run_id = ANY($1::uuid[])", run_ids) == 0
    health = server.client.get("/health").json()
    assert health["status"] == "ok" and health["trace"]["dropped"] == 0 and health["trace"]["dead_lettered"] == 0


@pytest.fixture(scope="module")
async def latin1_url():
    """A trace database in LATIN1: a real Postgres whose encoding lacks most of Unicode, so a question in Japanese is
    data it refuses (UntranslatableCharacter) however the request was validated."""
    async with scratch_database(f"{TEST_DB}_latin1",
                                options="ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0") as url:
        yield url


async def test_an_event_the_database_refuses_is_dead_lettered_and_its_run_stays_readable(latin1_url):
    """Next to 10 ordinary runs, a question the LATIN1 trace database cannot store: its RunStarted is refused by
    Postgres itself, kept in trace_dead_letters (as ASCII JSON, which fits) with the error, counted in /health and
    /metrics; an ASCII stand-in gives the run its runs row and final status, and GET /v1/runs/{id} still answers.
    Every ordinary run is whole. (Budgets of no model call keep these runs quick: the composer is refused.)"""
    no_model = {"max_model_calls": 0}
    with LiveServer(settings_for(latin1_url, "smollm2", deadline_s=60.0)) as server:
        with ThreadPoolExecutor(max_workers=11) as pool:
            ordinary = [pool.submit(ordinary_run, server.url, i, no_model) for i in range(10)]
            poison = pool.submit(send, server.url, {"question": "日本の首都は? 6*7",
                                                    "plan": {"steps": [calc(1, "6*7")]}, "budget": no_model})
            runs = [future.result() for future in ordinary]
            reply = poison.result()
        assert reply.status_code == 422 and reply.json()["question"] == "日本の首都は? 6*7"
        run_id = reply.json()["run_id"]
        read_back = server.client.get(f"/v1/runs/{run_id}")
        assert (read_back.status_code == 200
                and read_back.json()["question"] == r"\u65e5\u672c\u306e\u9996\u90fd\u306f? 6*7")
        assert read_back.json()["status"] == "failed" and read_back.json()["steps"] == reply.json()["steps"]
        health = server.client.get("/health").json()
        metrics = server.client.get("/metrics").text
        pg = await asyncpg.connect(latin1_url)
        try:
            for run in runs:
                await assert_whole(pg, server, run)
            (letter,) = await pg.fetch("SELECT event_type, payload, error FROM trace_dead_letters WHERE run_id = $1",
                                       run_id)
            assert await pg.fetchval("SELECT count(*) FROM trace_dead_letters") == 1
            assert await pg.fetchval("SELECT status FROM runs WHERE run_id = $1", run_id) == "failed"
        finally:
            await pg.close()
    assert letter["event_type"] == "run_started" and "UntranslatableCharacterError" in letter["error"]
    assert json.loads(letter["payload"])["question"] == "日本の首都は? 6*7" and letter["payload"].isascii()
    assert health["status"] == "ok" and health["trace"]["dead_lettered"] == 1 and health["trace"]["dropped"] == 0
    assert re.search(r"^stepwise_trace_events_dead_lettered_total 1\.0$", metrics, re.MULTILINE)
