"""Experts as operators see them: status (health, load, violations) and, on GPU hosts, launching SGLang workers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from urllib.parse import urlsplit

import httpx
import msgspec

from app.registry import ExpertSpec, Registry
from reasoning.router import Router


class ExpertStatus(msgspec.Struct):
    name: str
    backend: str
    provider: str
    url: str
    model: str
    skills: list[str]
    healthy: bool
    in_flight: int
    max_concurrency: int
    violations: int
    price_in: float
    price_out: float


async def expert_statuses(router: Router) -> list[ExpertStatus]:
    experts = list(router.experts.values())
    health = await asyncio.gather(*(e.backend.health() for e in experts))
    return [
        ExpertStatus(
            name=e.name, backend=e.kind, provider=e.backend.provider, url=e.backend.base_url, model=e.backend.model,
            skills=e.skills, healthy=ok, in_flight=router.in_flight[e.name], max_concurrency=e.max_concurrency,
            violations=router.violations[e.name], price_in=e.price_in, price_out=e.price_out,
        )
        for e, ok in zip(experts, health)
    ]


class Launch(msgspec.Struct):
    expert: str
    argv: list[str]
    health_url: str


def launch_plan(registry: Registry, python: str = sys.executable) -> list[Launch]:
    """The processes that serve the registry's SGLang experts that name a `model_path`: one SGLang server each,
    or `workers` servers on the ports after the expert's and sglang_router on the expert's own `url`."""
    launches: list[Launch] = []
    for spec in registry.experts:
        if spec.backend not in ("sglang", "sglang-openai") or not spec.model_path:
            continue
        url = urlsplit(spec.url)
        host, port = url.hostname or "127.0.0.1", url.port or 30000
        if spec.workers == 1:
            launches.append(Launch(spec.name, _server_argv(python, spec, host, port), f"http://{host}:{port}/health"))
            continue
        workers = [f"http://{host}:{port + i}" for i in range(1, spec.workers + 1)]
        for i, worker in enumerate(workers, 1):
            launches.append(Launch(f"{spec.name}#{i}", _server_argv(python, spec, host, port + i), f"{worker}/health"))
        launches.append(Launch(
            f"{spec.name}#router",
            [python, "-m", "sglang_router.launch_router", "--host", host, "--port", str(port), "--policy", "cache_aware", "--worker-urls", *workers],
            f"http://{host}:{port}/health",
        ))
    return launches


def _server_argv(python: str, spec: ExpertSpec, host: str, port: int) -> list[str]:
    argv = [
        python, "-m", "sglang.launch_server", "--model-path", spec.model_path, "--host", host, "--port", str(port),
        "--served-model-name", spec.model, "--grammar-backend", "xgrammar", "--enable-cache-report", "--enable-metrics",
    ]
    if spec.tp_size > 1:
        argv += ["--tp-size", str(spec.tp_size)]
    if spec.tool_call_parser:
        argv += ["--tool-call-parser", spec.tool_call_parser]
    return argv


def wait_healthy(url: str, timeout_s: float, process: subprocess.Popen | None = None, poll_s: float = 1.0) -> None:
    """Block until GET `url` answers 200; raise if the process dies first or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{' '.join(process.args[:4])} exited with {process.returncode} before {url} was healthy")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} was not healthy after {timeout_s:g}s")
        time.sleep(poll_s)


def launch(plan: list[Launch], timeout_s: float = 900.0) -> list[subprocess.Popen]:
    """Start every process (workers before their router), wait for each to be healthy; stop all on failure."""
    started: list[subprocess.Popen] = []
    try:
        for item in plan:
            process = subprocess.Popen(item.argv)
            started.append(process)
            wait_healthy(item.health_url, timeout_s, process)
            print(f"{item.expert}: healthy at {item.health_url.removesuffix('/health')}", flush=True)
    except BaseException:
        for process in started:
            process.terminate()
        raise
    return started
