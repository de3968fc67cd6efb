"""The server says it is ready only once it listens, with the URL it really listens on (over real HTTP)."""

from __future__ import annotations

import threading
import time

import httpx
import uvicorn
from litestar import Litestar, get

from stepwise.app.serve import AnnouncingServer


@get("/ping", sync_to_thread=False)
def ping() -> str:
    return "pong"


def test_the_ready_callback_gets_the_bound_url_once_the_port_answers():
    """Port 0 is announced as the port the kernel chose, and a request to the announced URL is answered."""
    announced: list[str] = []
    server = AnnouncingServer(uvicorn.Config(Litestar([ping]), host="127.0.0.1", port=0, log_level="warning"),
                              announced.append)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not announced and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(announced) == 1 and announced[0].startswith("http://127.0.0.1:") and not announced[0].endswith(":0")
        assert httpx.get(f"{announced[0]}/ping", timeout=5).text == "pong"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_stepwise_serve_prints_one_ready_line_on_stderr(monkeypatch, capsys):
    """`stepwise serve` (with a stand-in app, no model) prints the ready line once, naming the database without
    its password; nothing else on stderr at the default log level."""
    import stepwise.app.routes
    import stepwise.app.serve
    from stepwise.app.cli import main

    class StopWhenReady(stepwise.app.serve.GracefulServer):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            self.should_exit = True

    monkeypatch.setattr(stepwise.app.routes, "create_app", lambda settings: Litestar([ping]))
    monkeypatch.setattr(stepwise.app.serve, "GracefulServer", StopWhenReady)
    monkeypatch.setenv("DATABASE_URL", "postgresql://ada:s3cret@db.example:6543/traces")
    monkeypatch.setenv("STEPWISE_MODEL", "smollm2")
    monkeypatch.delenv("STEPWISE_EXPERTS", raising=False)
    assert main(["serve", "--port", "0"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("stepwise is listening on http://127.0.0.1:")
    assert ("model smollm2" in lines[0] and "database postgres db.example:6543/traces (user ada)" in lines[0]
            and "s3cret" not in lines[0])
