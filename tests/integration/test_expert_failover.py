"""Killing an expert's server mid-run: the call is rerouted to an expert with the same skill, the trace records the
failure and the reroute, and nothing waits past the deadline. Real processes, real HTTP, real SmolLM2."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from stepwise.app.registry import build_fleet, load_registry
from stepwise.app.settings import Settings
from stepwise.reasoning import events as ev
from stepwise.reasoning.context import RunContext
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import Message, Regex, Sampling

pytestmark = pytest.mark.model


@pytest.fixture
def remote_expert(repo_root):
    """An SGLang-protocol server in its own process, so it can be killed like a real one."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "tests.sglang_server", str(port)], cwd=repo_root,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline and process.poll() is None, "the test SGLang server did not start"
        time.sleep(0.2)
    yield process, url
    process.kill()
    process.wait()


def write_registry(tmp_path, url: str):
    path = tmp_path / "experts.toml"
    path.write_text(f"""
default = "local"
[[experts]]
name = "remote"
backend = "sglang"
url = "{url}"
model = "smollm2"
skills = ["facts"]
price_in = 0.5
price_out = 1.0
[[experts]]
name = "local"
backend = "local"
model = "smollm2"
skills = ["facts"]
""")
    return path


async def test_a_killed_expert_mid_call_is_rerouted_within_the_deadline(remote_expert, tmp_path):
    """The remote expert dies while generating; the call goes to the local expert; both facts are recorded."""
    process, url = remote_expert
    settings = Settings.from_env(dict(os.environ))
    fleet = await build_fleet(load_registry(write_registry(tmp_path, url)), settings)
    router = Router(fleet.experts, "local")
    sink = ev.Recorder()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    loop.call_later(1.0, os.kill, process.pid, signal.SIGKILL)
    started = time.monotonic()
    try:
        completion, _ = await router.call(
            "remote", [Message("user", "Sing la la la.")], RunContext(uuid.uuid4(), sink, deadline), purpose="expert",
            constraint=Regex("(la ){150}"), sampling=Sampling(max_tokens=400),
        )
    finally:
        await fleet.aclose()
    assert completion.text == "la " * 150
    assert time.monotonic() - started < 60
    failed, served = [e for e in sink.events if isinstance(e, ev.ModelCalled)]
    assert failed.expert == "remote" and failed.error.startswith("backend_unavailable") and failed.backend == "sglang"
    assert served.expert == "local" and served.rerouted_from == "remote" and served.error is None


async def test_a_run_whose_planner_expert_is_dead_ends_recorded_without_waiting_for_it(remote_expert, tmp_path,
                                                                                       database_url, pg):
    """With the planning expert's server killed, the run still ends (rerouted, then finished or failed with its
    reason, not by its deadline), and model_calls shows the failed call and who took it over."""
    from stepwise.app.runtime import Runtime

    process, url = remote_expert
    registry = write_registry(tmp_path, url)
    registry.write_text('planner = "remote"\n' + registry.read_text())
    process.kill()
    process.wait()
    settings = Settings.from_env(dict(os.environ) | {"DATABASE_URL": database_url, "STEPWISE_EXPERTS": str(registry)})
    runtime = await Runtime.start(settings)
    try:
        # The deadline is far off so that a slow machine's planning cannot reach it: what is checked is that the dead
        # expert's call failed at once and was taken over, not how fast the local model then planned.
        report = await runtime.ask("What is 6*7?", 600)
        await runtime.sink.flush(10)
    finally:
        await runtime.close()
    assert report.status in ("finished", "failed") and (report.error is None
                                                        or report.error.type != "deadline_exceeded")
    rows = await pg.fetch("SELECT expert, purpose, error, rerouted_from FROM model_calls WHERE run_id = $1 ORDER BY at",
                          report.run_id)
    assert (rows[0]["expert"], rows[0]["purpose"]) == ("remote", "plan") and "unreachable" in rows[0]["error"]
    assert (rows[1]["expert"], rows[1]["rerouted_from"], rows[1]["error"]) == ("local", "remote", None)
