"""Experts as operators see them: status (health, load, violations) and, on GPU hosts, launching SGLang workers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from urllib.parse import urlsplit

import httpx
import msgspec

from stepwise.app.registry import ExpertSpec, Registry
from stepwise.reasoning.backends.sglang import HEALTH_TIMEOUT_S, SGLangOpenAIBackend
from stepwise.reasoning.router import Router


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
    notes: list[str] = []  # what the server's own flags mean for stepwise (e.g. it reports no cached tokens)


async def _notes(backend) -> list[str]:
    notes = getattr(backend, "notes", None)
    return await notes() if notes is not None else []


async def expert_statuses(router: Router) -> list[ExpertStatus]:
    experts = list(router.experts.values())
    health, notes = await asyncio.gather(asyncio.gather(*(e.backend.health() for e in experts)),
                                         asyncio.gather(*(_notes(e.backend) for e in experts)))
    return [
        ExpertStatus(
            name=e.name, backend=e.kind, provider=e.backend.provider, url=e.backend.base_url, model=e.backend.model,
            skills=e.skills, healthy=ok, in_flight=router.in_flight[e.name], max_concurrency=e.max_concurrency,
            violations=router.violations[e.name], price_in=e.price_in, price_out=e.price_out, notes=said,
        )
        for e, ok, said in zip(experts, health, notes, strict=True)
    ]


def server_notes(spec: ExpertSpec) -> list[str]:
    """Without a running stepwise server: what a remote SGLang expert's flags mean (see SGLangOpenAIBackend.notes)."""
    url = spec.url
    if spec.backend != "sglang-openai" or not url:
        return []

    async def ask() -> list[str]:
        backend = SGLangOpenAIBackend(url, spec.model)
        try:
            return await backend.notes()
        finally:
            await backend.aclose()

    return asyncio.run(ask())


class Launch(msgspec.Struct):
    expert: str
    argv: list[str]
    health_url: str


def launch_plan(registry: Registry, python: str = sys.executable) -> list[Launch]:
    """The processes that serve the registry's SGLang experts that name a `model_path`: one SGLang server each,
    or `workers` servers on the ports after the expert's and sglang_router on the expert's own `url`."""
    launches: list[Launch] = []
    for spec in registry.experts:
        if spec.backend not in ("sglang", "sglang-openai") or not spec.model_path or not spec.url:
            continue  # (the registry's check refuses an SGLang expert without a url)
        url = urlsplit(spec.url)
        host, port = url.hostname or "127.0.0.1", url.port or 30000
        if spec.workers == 1:
            launches.append(Launch(spec.name, _server_argv(python, spec, host, port), f"http://{host}:{port}/health"))
            continue
        workers = [f"http://{host}:{port + i}" for i in range(1, spec.workers + 1)]
        for i, worker in enumerate(workers, 1):
            launches.append(Launch(f"{spec.name}#{i}", _server_argv(python, spec, host, port + i), f"{worker}/health"))
        # The router's /health is 200 before it has registered a worker; /readiness waits for a healthy one.
        launches.append(Launch(f"{spec.name}#router", router_argv(python, host, port, workers, port + spec.workers + 1),
                               f"http://{host}:{port}/readiness"))
    return launches


def router_argv(python: str, host: str, port: int, workers: list[str], metrics_port: int) -> list[str]:
    """sglang_router in front of `workers`, cache-aware: a request goes to the worker that has the longest prefix of
    its text cached (the planner's static prompt, an expert's system prompt), unless the load is uneven. It reads
    /generate's `text` as one string: clients send one prompt per request (reasoning.backends.sglang). Its Prometheus
    exporter gets a port of its own (`metrics_port`: the port after the workers'), or a second router on the host
    fails to start on the default one."""
    return [python, "-m", "sglang_router.launch_router", "--host", host, "--port", str(port), "--policy", "cache_aware",
            "--prometheus-host", host, "--prometheus-port", str(metrics_port), "--worker-urls", *workers]


def _server_argv(python: str, spec: ExpertSpec, host: str, port: int) -> list[str]:
    argv = [
        python, "-m", "sglang.launch_server", "--model-path", spec.model_path, "--host", host, "--port", str(port),
        "--served-model-name", spec.model, "--grammar-backend", "llguidance",  # reads our Lark grammars (as `ebnf`)
        "--enable-cache-report", "--enable-metrics",
    ]
    if spec.tp_size > 1:
        argv += ["--tp-size", str(spec.tp_size)]
    if spec.tool_call_parser:
        argv += ["--tool-call-parser", spec.tool_call_parser]
    return argv


def wait_healthy(url: str, timeout_s: float, process: subprocess.Popen | None = None, poll_s: float = 1.0) -> None:
    """Block until GET `url` answers 200; raise if the process dies first or the time runs out. SGLang answers 503
    while it loads the model and takes a second or more once up (its /health generates a token): both mean "ask
    again"."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and process.poll() is not None:
            args = process.args
            command = " ".join(map(str, args[:4])) if isinstance(args, (list, tuple)) else str(args)
            raise RuntimeError(f"{command} exited with {process.returncode} before {url} was healthy")
        try:
            if httpx.get(url, timeout=HEALTH_TIMEOUT_S).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} was not healthy after {timeout_s:g}s")
        time.sleep(poll_s)


def launch(plan: list[Launch], timeout_s: float = 900.0, poll_s: float = 1.0) -> list[subprocess.Popen]:
    """Start every process (workers before their router), wait for each to be healthy; stop all on failure."""
    started: list[subprocess.Popen] = []
    try:
        for item in plan:
            process = subprocess.Popen(item.argv)
            started.append(process)
            wait_healthy(item.health_url, timeout_s, process, poll_s)
            print(f"{item.expert}: healthy at {item.health_url.rsplit('/', 1)[0]}", flush=True)
    except BaseException:
        for process in started:
            process.terminate()
        raise
    return started
