"""Shared fixtures: a fresh test database on the real Postgres, and real HTTP servers running the real app."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn

from app import db
from app.http import create_app
from app.migrate import migrate
from app.settings import Settings

ADMIN_URL = os.environ.get("STEPWISE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_DB = f"stepwise_test_{os.getpid()}"  # one per session: sessions running at once never share a database


@pytest.fixture(scope="session")
async def database_url():
    """A database created afresh for this test session, migrated, and dropped at its end."""
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEST_DB} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {TEST_DB}")
    finally:
        await admin.close()
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{TEST_DB}"
    conn = await db.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    yield url
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEST_DB} WITH (FORCE)")
    finally:
        await admin.close()


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
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
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
    from app.modelfiles import smollm2_path
    from reasoning.backends.local import EmbeddedLlama

    llama = EmbeddedLlama(str(smollm2_path()), threads=2, parallel=4)
    yield llama
    llama.close()


@pytest.fixture(scope="session")
def sglang_server(smollm2_llama):
    from tests.sglang_server import SGLangTestServer

    with SGLangTestServer(smollm2_llama.base_url) as server:
        yield server
