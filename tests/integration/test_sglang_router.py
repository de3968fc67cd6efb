"""The SGLang client through the real sglang-router (cache-aware policy) in front of two test SGLang workers, all
separate processes started the way `stepwise experts launch` starts them: calls spread over both workers, each call
one /generate of one prompt (the router refuses a batch), a cancelled call stops generating on its worker, and a
worker killed mid-run is routed around. The workers run the scripted model: no GPU, no model file, seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from stepwise.app.experts import Launch, launch, router_argv, wait_healthy
from stepwise.reasoning.backends.sglang import SGLangBackend
from stepwise.reasoning.backends.transport import RetryPolicy
from stepwise.reasoning.errors import BackendTimeout, BackendUnavailable
from stepwise.reasoning.types import Message, Sampling
from tests.conftest import deadline_in

TOKEN_S = 0.01  # the scripted model's time per token


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """Two scripted workers, then sglang_router in front of them as `stepwise experts launch` starts it."""

    def __init__(self, repo_root) -> None:
        self.worker_urls = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        server = str(repo_root / "tests" / "sglang_server.py")
        # Both workers start at once, their /health as slow as SGLang's (a second); the launcher then starts the
        # router and waits for its /readiness.
        self.processes = [subprocess.Popen([sys.executable, server, url.rsplit(":", 1)[1], "--scripted", "--token-s",
                                            str(TOKEN_S), "--health-delay-s", "1"]) for url in self.worker_urls]
        try:
            for url, process in zip(self.worker_urls, self.processes, strict=True):
                wait_healthy(f"{url}/health", 60, process, poll_s=0.1)
            self.processes += launch([Launch("router", router_argv(sys.executable, "127.0.0.1", port, self.worker_urls,
                                                                   free_port()),
                                             f"{self.url}/readiness")], timeout_s=60, poll_s=0.1)
        except BaseException:
            self.stop()
            raise

    def state(self, worker: int) -> dict:
        return httpx.get(f"{self.worker_urls[worker]}/_test/state", timeout=5).json()

    def generate_bodies(self, worker: int) -> list[dict]:
        return [body for route, body in self.state(worker)["requests"] if route == "/generate"]

    def aborted(self) -> dict[str, str]:
        return {**self.state(0)["aborted"], **self.state(1)["aborted"]}

    def tokens(self, rid: str) -> int:
        return next(state["tokens"][rid] for state in (self.state(0), self.state(1)) if rid in state["tokens"])

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # a worker still draining a request: no test waits on that
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def cluster(repo_root):
    running = Cluster(repo_root)
    yield running
    running.stop()


@pytest.fixture
def fresh_cluster(repo_root):
    """A cluster of its own, for a test that kills one of its workers."""
    running = Cluster(repo_root)
    yield running
    running.stop()


def client_of(cluster: Cluster) -> SGLangBackend:
    return SGLangBackend(cluster.url, "scripted", policy=RetryPolicy(initial_s=0.05))


@pytest.fixture
async def backend(cluster):
    client = client_of(cluster)
    yield client
    await client.aclose()


def question(i: int) -> list[Message]:
    # Prompts with nothing in common past the template's first tokens: cache-aware routing has no cached prefix to
    # follow, so it balances (the worker with the smaller cache tree gets the next one).
    return [Message("user", f"{i}{chr(ord('a') + i) * 40} question {i}")]


async def test_concurrent_calls_spread_over_both_workers_one_prompt_per_request(cluster, backend):
    """Eight calls at once: all answered, both workers serve some, and each reached a worker as one /generate with
    `text` a single string and its own rid, streamed."""
    before = [len(cluster.generate_bodies(0)), len(cluster.generate_bodies(1))]
    results = await asyncio.gather(*(backend.generate(question(i), sampling=Sampling(max_tokens=4),
                                                      deadline=deadline_in(30))
                                     for i in range(8)))
    assert [r.text for r in results] == ["la " * 4] * 8
    assert all(r.finish_reason == "length" and r.usage.output_tokens == 4 and r.ttft_ms is not None for r in results)
    bodies = [cluster.generate_bodies(0)[before[0]:], cluster.generate_bodies(1)[before[1]:]]
    assert bodies[0] and bodies[1] and len(bodies[0]) + len(bodies[1]) == 8
    every = bodies[0] + bodies[1]
    assert all(isinstance(b["text"], str) and b["stream"] is True for b in every)
    assert len({b["rid"] for b in every}) == 8


async def test_the_router_refuses_a_batched_generate(cluster):
    """A list-valued `text` (SGLang's own batch form) is a 422 from sglang-router: why the client never batches."""
    async with httpx.AsyncClient() as client:
        reply = await client.post(f"{cluster.url}/generate", json={"text": ["a", "b"], "sampling_params": [{}, {}]})
    assert reply.status_code == 422 and "expected a string" in reply.text


async def test_a_cancelled_call_stops_generating_on_its_worker(cluster, backend):
    """Cancelled after its first tokens, a call meant to run 20 s stops on the worker within a second: closing the
    stream reaches the worker through the router (which has no /abort_request)."""
    first = asyncio.Event()
    call = asyncio.create_task(backend.generate(question(0), sampling=Sampling(max_tokens=2000),
                                                deadline=deadline_in(60), on_text=lambda _: first.set()))
    await asyncio.wait_for(first.wait(), 10)
    before = cluster.aborted()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.sleep(1.0)
    (rid, how), = [item for item in cluster.aborted().items() if item[0] not in before]
    generated = cluster.tokens(rid)
    assert how == "disconnected" and generated < 1.5 / TOKEN_S  # far short of 2000: it stopped
    await asyncio.sleep(0.3)
    assert cluster.tokens(rid) == generated


async def test_a_call_past_its_deadline_times_out_and_stops_on_its_worker(cluster, backend):
    """A streamed call still going at its deadline raises BackendTimeout at the deadline, and its worker stops."""
    loop = asyncio.get_running_loop()
    before = cluster.aborted()
    started = loop.time()
    with pytest.raises(BackendTimeout):
        await backend.generate(question(1), sampling=Sampling(max_tokens=2000), deadline=deadline_in(1.0))
    assert loop.time() - started < 1.5
    await asyncio.sleep(1.0)
    (rid, how), = [item for item in cluster.aborted().items() if item[0] not in before]
    assert how == "disconnected" and cluster.tokens(rid) < 2.5 / TOKEN_S


async def test_a_worker_killed_mid_run_is_routed_around(fresh_cluster):
    """The worker holding a prompt's prefix is killed while streaming it: that call fails as unavailable, and the
    same prompt again — which cache-aware routing would send to the dead worker — is answered by the other one."""
    cluster, backend = fresh_cluster, client_of(fresh_cluster)
    prompt = question(2)
    await backend.generate(prompt, sampling=Sampling(max_tokens=2), deadline=deadline_in(30))
    holder = 0 if cluster.generate_bodies(0) else 1
    streaming = asyncio.Event()
    call = asyncio.create_task(backend.generate(prompt, sampling=Sampling(max_tokens=2000), deadline=deadline_in(60),
                                                on_text=lambda _: streaming.set()))
    await asyncio.wait_for(streaming.wait(), 10)
    assert len(cluster.generate_bodies(holder)) == 2  # cache-aware: the second call went where the prefix is
    os.kill(cluster.processes[holder].pid, signal.SIGKILL)
    with pytest.raises(BackendUnavailable):
        await call
    again = await backend.generate(prompt, sampling=Sampling(max_tokens=3), deadline=deadline_in(30))
    more = await asyncio.gather(*(backend.generate(question(i), sampling=Sampling(max_tokens=3),
                                                   deadline=deadline_in(30))
                                  for i in range(3, 7)))
    await backend.aclose()
    assert again.text == "la " * 3 and [r.text for r in more] == ["la " * 3] * 4
    assert len(cluster.generate_bodies(1 - holder)) == 5
