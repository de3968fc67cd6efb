"""A run is named the same way everywhere: its full id or a unique prefix (`stepwise runs` prints 8 characters), on
GET /v1/runs/{id}, DELETE /v1/runs/{id}, the trace page /runs/{id} and `stepwise trace`. The app runs on the real
test database with a runtime that has no model (no route here calls one)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from stepwise.app import db
from stepwise.app.routes import create_app
from stepwise.app.trace import find_run
from tests.conftest import engineless_app
from tests.fixtures.known_run import known_run, record


@pytest.fixture(scope="module")
async def client(database_url):
    """The real app and its routes over the test database; the runtime's engine and experts are absent."""
    async with engineless_app(database_url) as test_client:
        yield test_client


async def recorded(database_url: str, *run_ids: uuid.UUID, finished: bool = True) -> None:
    conn = await db.connect(database_url)
    try:
        for run_id in run_ids:
            events = known_run(run_id, time.time())
            await record(conn, events if finished else events[:1])
    finally:
        await conn.close()


def twins() -> tuple[uuid.UUID, uuid.UUID]:
    """Two run ids with the same first 8 characters (differing in the 9th hex digit)."""
    head, tail = uuid.uuid4().hex[:8], uuid.uuid4().hex[9:]
    return uuid.UUID(head + "0" + tail), uuid.UUID(head + "1" + tail)


async def test_a_unique_prefix_reads_the_runs_report(client, database_url):
    """GET /v1/runs/{prefix} answers with the report of the one run whose id starts with it."""
    run_id = uuid.uuid4()
    await recorded(database_url, run_id)
    reply = await client.get(f"/v1/runs/{str(run_id)[:8]}")
    assert reply.status_code == 200 and reply.json()["run_id"] == str(run_id)


async def test_a_unique_prefix_opens_the_trace_page(client, database_url):
    """GET /runs/{prefix} draws the page of the run whose id starts with it."""
    run_id = uuid.uuid4()
    await recorded(database_url, run_id)
    reply = await client.get(f"/runs/{str(run_id)[:8]}")
    assert (reply.status_code == 200 and reply.headers["content-type"].startswith("text/html")
            and str(run_id) in reply.text)


async def test_an_ambiguous_prefix_is_a_400_saying_so_on_every_route(client, database_url):
    """A prefix two runs start with is refused, naming the problem, by GET and DELETE /v1/runs and the trace page;
    one character more picks the run."""
    first, second = twins()
    await recorded(database_url, first, second)
    prefix = str(first)[:8]
    for reply in (await client.get(f"/v1/runs/{prefix}"), await client.delete(f"/v1/runs/{prefix}"),
                  await client.get(f"/runs/{prefix}")):
        assert reply.status_code == 400 and "more than one run starts with" in reply.text
    assert (await client.get(f"/v1/runs/{str(second)[:10]}")).json()["run_id"] == str(second)


async def test_an_unknown_id_or_prefix_is_a_404_and_a_malformed_one_a_400(client):
    """Nothing recorded starts with the prefix (or has the id): 404; not hex at all: 400 naming run_id."""
    for ref in ("ffff0000", str(uuid.uuid4())):
        assert (await client.get(f"/v1/runs/{ref}")).status_code == 404
        assert (await client.delete(f"/v1/runs/{ref}")).status_code == 404
        assert (await client.get(f"/runs/{ref}")).status_code == 404
    malformed = await client.get("/v1/runs/not-a-run")
    assert malformed.status_code == 400 and "run_id" in malformed.text and "not a run id" in malformed.text
    assert (await client.get("/runs/not-a-run")).status_code == 400


async def test_delete_by_prefix_cancels_a_running_run_and_refuses_an_ended_one(client, database_url):
    """DELETE /v1/runs/{prefix} cancels the run going on here (202); a run that has ended is a 409."""
    running, ended = uuid.uuid4(), uuid.uuid4()
    await recorded(database_url, running, finished=False)
    await recorded(database_url, ended)
    task = asyncio.create_task(asyncio.sleep(60))
    client.runtime.active[running] = task
    try:
        reply = await client.delete(f"/v1/runs/{str(running)[:8]}")
        assert reply.status_code == 202 and reply.json() == {"run_id": str(running), "status": "cancelling"}
        await asyncio.wait({task})
        assert task.cancelled()
    finally:
        client.runtime.active.pop(running, None)
    assert (await client.delete(f"/v1/runs/{str(ended)[:8]}")).status_code == 409


async def test_the_cli_and_the_api_resolve_by_the_same_rule(pg, database_url):
    """`stepwise trace`'s lookup is app.trace.find_run: a prefix, upper case or not, finds the run."""
    run_id = uuid.uuid4()
    await recorded(database_url, run_id)
    assert await find_run(pg, str(run_id)[:6].upper()) == run_id


def test_the_openapi_document_says_a_prefix_is_accepted_and_what_fails():
    """/v1/runs/{run_id} documents the prefix and its 400 and 404 (DELETE: 409 too) with the error body."""
    from stepwise.app.settings import Settings

    document = create_app(Settings.from_env()).openapi_schema.to_schema()
    paths, error_body = document["paths"], document["components"]["schemas"]["ErrorBody"]
    assert {"status_code", "detail"} <= set(error_body["required"])
    for method, statuses in (("get", {"200", "400", "404"}), ("delete", {"202", "400", "404", "409"})):
        operation = paths["/v1/runs/{run_id}"][method]
        assert "prefix" in operation["parameters"][0]["description"]
        assert statuses <= set(operation["responses"])
        assert operation["responses"]["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
