"""Real processes for the reliability tests and `python -m bench.reliability` (it imports no test tooling, so bench
may use it): `stepwise serve` in its own process with an experts file, the SGLang test server in its own process
(so it can be killed like a real one), and a Postgres cluster of our own that can be stopped and restarted without
touching the shared server on 127.0.0.1:5432.

    StepwiseProcess   `python -m stepwise.app.cli serve` on a free port, healthy when returned; terminate() = SIGTERM
    SGLangProcess     `python -m tests.sglang_server PORT --scripted`; inject() posts a fault; kill() = SIGKILL
    PostgresCluster   initdb into a temporary folder, pg_ctl start/stop/restart on its own port (as the postgres
                      user when root: Postgres refuses to run as root)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from stepwise.app.experts import wait_healthy

REPO = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("STEPWISE_PG_BIN", "/usr/lib/postgresql/15/bin"))
ANSWER = '{"text":"done","uses":[1]}'
"""The scripted expert's reply: an expert step's text, and an Answer the composer decodes (it cites step 1)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout_s: float, what: str, poll_s: float = 0.02) -> object:
    """Poll `condition` until it is truthy (its value is returned); TimeoutError naming `what` past `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout_s:g}s")
        time.sleep(poll_s)
    return value


def experts_file(folder: Path, url: str, *, max_tokens: int = 16, timeout_s: float = 30.0,
                 max_concurrency: int = 8) -> Path:
    """A registry of one SGLang expert at `url` (no local model is loaded)."""
    path = folder / "experts.toml"
    path.write_text(f'default = "general"\n[[experts]]\nname = "general"\nbackend = "sglang"\nurl = "{url}"\n'
                    f'model = "scripted"\nmax_tokens = {max_tokens}\ntimeout_s = '
                    f'{timeout_s}\nmax_concurrency = {max_concurrency}\n')
    return path


class StepwiseProcess:
    """`stepwise serve` in its own process (stdout and stderr to `log`), healthy before the constructor returns."""

    def __init__(self, database_url: str, experts: Path, log: Path, *, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        environment = {k: v for k, v in os.environ.items() if not k.startswith("STEPWISE_")} | {
            "DATABASE_URL": database_url, "STEPWISE_EXPERTS": str(experts),
            "STEPWISE_DATA_DIR": str(log.parent / "data"), "PYTHONUNBUFFERED": "1", **(env or {})}
        self._log = open(log, "ab")  # noqa: SIM115 -- open while the server runs; stop() closes it
        self.process = subprocess.Popen([sys.executable, "-m", "stepwise.app.cli", "serve", "--host", "127.0.0.1",
                                         "--port", str(self.port)],
                                        cwd=REPO, env=environment, stdout=self._log, stderr=self._log)
        try:
            wait_healthy(f"{self.url}/health", 60, self.process, poll_s=0.1)
        except BaseException:
            self.kill()
            raise

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float) -> int:
        return self.process.wait(timeout_s)

    def accepting(self) -> bool:
        """Whether a new TCP connection to the server is accepted."""
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True
        return False

    def log_events(self, name: str) -> list[dict]:
        """The structlog JSON lines of the server's log whose event is `name`."""
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                if (record := json.loads(line)).get("event") == name:
                    found.append(record)
        return found

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


class SGLangProcess:
    """The SGLang test server's scripted model in its own process, answering `script` at `token_s` a token."""

    def __init__(self, log: Path, *, script: str = ANSWER, token_s: float = 0.01, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._args = [sys.executable, "-m", "tests.sglang_server", str(self.port), "--scripted", "--token-s",
                      str(token_s), "--health-delay-s", "0", "--script", script]
        self._log = open(log, "ab")  # noqa: SIM115 -- open while the worker runs; stop() closes it
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(self._args, cwd=REPO, stdout=self._log, stderr=self._log)
        wait_healthy(f"{self.url}/health", 30, self.process, poll_s=0.1)

    def inject(self, **fault) -> None:
        """The next requests' fault, as SGLangTestServer.inject takes it (status, delay_s, times, malformed)."""
        httpx.post(f"{self.url}/_test/inject", json=fault, timeout=10).raise_for_status()

    def state(self) -> dict:
        return httpx.get(f"{self.url}/_test/state", timeout=10).json()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        self.kill()
        self._log.close()


class PostgresCluster:
    """A Postgres cluster of our own, in a temporary folder, on its own loopback port: stop(), start() and restart()
    are ours to call. Trust authentication for the postgres role; `url` names its postgres database."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="stepwise-pg-"))
        self.data = self.folder / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_owner: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            self._as_owner = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self._as_owner, str(PG_BIN / tool), *args], check=True, capture_output=True, timeout=120)

    def _ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w", "-t", "60", *args)

    def start(self) -> None:
        self._ctl("-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self, mode: str = "fast") -> None:
        """`fast` ends every session (clients see their connection closed), as a managed Postgres does for a restart."""
        self._ctl("-m", mode, "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
