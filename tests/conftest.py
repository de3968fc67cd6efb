"""Shared fixtures: a fresh test database on the real Postgres, and real HTTP servers running the real app."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
import uvicorn

from stepwise.app import db
from stepwise.app.migrate import migrate_url
from stepwise.app.modelfiles import default_cache_dir, use_fetched
from stepwise.app.routes import create_app
from stepwise.app.settings import Settings
from stepwise.app.sqlrole import ensure_readonly_role, role_url
from stepwise.evals.types import Item
from stepwise.tools.sql import SqlArgs, SqlTool

# the eval data's packages (BFCL's checker, reasoning-gym), fetched by `stepwise fetch`
use_fetched(default_cache_dir())

ADMIN_URL = os.environ.get("STEPWISE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_DB = f"stepwise_test_{os.getpid()}"  # one per session: sessions running at once never share a database


async def as_admin(*statements: str) -> None:
    """Run statements one at a time as the admin on its own database (CREATE and DROP DATABASE run outside a
    transaction, and not on the database they name)."""
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        for statement in statements:
            await admin.execute(statement)
    finally:
        await admin.close()


async def drop_scratch(database: str, roles: Iterable[str] = ()) -> None:
    """Drop a scratch database, ending any session still on it, then the roles made for it (after it: their grants
    on it go with it); either may already be gone."""
    await as_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)",
                   *(f"DROP ROLE IF EXISTS {role}" for role in roles))


@contextlib.asynccontextmanager
async def scratch_database(name: str, *, options: str = "", roles: Iterable[str] = ()) -> AsyncIterator[str]:
    """A database created afresh (`options` follow CREATE DATABASE: an encoding, a template), as the admin's URL;
    dropped at the end, and `roles` after it. One left by a killed session of the same name is dropped first."""
    await as_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name} {options}".rstrip())
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await drop_scratch(name, roles)


async def readonly_role(url: str, role: str, setup: str = "") -> str:
    """Run `setup` (the tables) as the admin on the database at `url`, then make `role` the read-only role
    `stepwise sql-role` makes for it; the role's URL. Drop it after the database (scratch_database's `roles`)."""
    conn = await asyncpg.connect(url)
    try:
        if setup:
            await conn.execute(setup)
        await ensure_readonly_role(conn, role)
    finally:
        await conn.close()
    return role_url(url, role)


def deadline_in(seconds: float) -> float:
    """A deadline `seconds` from now, in event-loop time (as backends and the engine take it)."""
    return asyncio.get_running_loop().time() + seconds


@contextlib.asynccontextmanager
async def readonly_database(name: str, role: str, setup: str) -> AsyncIterator[str]:
    """A scratch database set up by `setup`, as the URL of its read-only role `role` (as the sql tool is given it);
    both dropped at the end."""
    async with scratch_database(name, roles=[role]) as url:
        yield await readonly_role(url, role, setup)


async def sql_query(tool: SqlTool, sql: str) -> Any:
    """Run `sql` through the sql tool as a step would: its arguments decoded first."""
    return await tool.run(msgspec.convert({"query": sql}, SqlArgs))


@pytest.fixture(scope="session")
async def database_url():
    """A database created afresh for this test session, migrated, and dropped at its end."""
    async with scratch_database(TEST_DB) as url:
        await migrate_url(url)
        yield url


@pytest.fixture
async def pg(database_url: str):
    conn = await db.connect(database_url)
    yield conn
    await conn.close()


def query_sync(database_url: str, query: str, *args) -> list[asyncpg.Record]:
    """Rows of one query, from a synchronous test (CLI tests run `main()`, which runs its own event loop)."""

    async def fetch() -> list[asyncpg.Record]:
        conn = await db.connect(database_url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(fetch())


class _NoFleet:
    async def aclose(self) -> None:
        pass


@contextlib.asynccontextmanager
async def engineless_app(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real app and its routes over `database_url`, its runtime without an engine or experts (for routes that
    call no model), as an HTTP client; `client.runtime` is the runtime."""
    from types import SimpleNamespace

    from stepwise.app.runtime import Runtime
    from stepwise.app.trace import TraceSink

    settings = settings_for(database_url, "smollm2")
    pool = await db.create_pool(database_url)
    sink = TraceSink(lambda: db.connect(database_url))
    sink.start()
    runtime = Runtime(settings, SimpleNamespace(router=None), _NoFleet(), pool, sink, database_url)
    app = create_app(settings, runtime=runtime)
    app.state.runtime = runtime  # what the app's startup does; ASGITransport calls the app in this event loop
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://stepwise.test") as client:
            client.runtime = runtime
            yield client
    finally:
        await runtime.close()


def settings_for(database_url: str, model: str, **overrides) -> Settings:
    return Settings.from_env(dict(os.environ) | {"DATABASE_URL": database_url, "STEPWISE_MODEL": model}, **overrides)


class LiveServer:
    """The real app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, settings: Settings) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.app = create_app(settings)
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning",
                                                     lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 300
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        self.client = httpx.Client(base_url=self.url, timeout=600)
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()
        self._server.should_exit = True
        self._thread.join(timeout=60)


@pytest.fixture(scope="session")
def smollm2_server(database_url: str):
    with LiveServer(settings_for(database_url, "smollm2", deadline_s=120.0)) as server:
        yield server


@pytest.fixture(scope="session")
def qwen_server(database_url: str):
    with LiveServer(settings_for(database_url, "qwen", deadline_s=300.0)) as server:
        yield server


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def smollm2_llama():
    """The real SmolLM2 under llama.cpp's server, shared by the tests of mechanics."""
    from stepwise.app.modelfiles import smollm2_path
    from stepwise.reasoning.backends.local import EmbeddedLlama

    llama = EmbeddedLlama(str(smollm2_path()), threads=2, parallel=4)
    yield llama
    llama.close()


@pytest.fixture(scope="session")
def sglang_server(smollm2_llama):
    from tests.sglang_server import SGLangTestServer

    with SGLangTestServer(smollm2_llama.base_url) as server:
        yield server

def assert_one_cell(result: dict, item: Item) -> None:
    """A reference query's result is one row of one column, equal to the item's answer."""
    assert len(result["rows"]) == 1 and len(result["columns"]) == 1, item.id
    (value,) = result["rows"][0]
    if item.answer_type == "number":
        assert math.isclose(float(value), float(item.answer), rel_tol=1e-9), (item.id, value, item.answer)
    else:
        assert value == item.answer, (item.id, value, item.answer)
