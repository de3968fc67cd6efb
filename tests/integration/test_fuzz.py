"""A small Schemathesis run in the normal suite (issue 14 §2; the full one is `python -m bench.fuzz`): every route of
/schema/openapi.json, valid and invalid requests, against the real app under uvicorn (bench/server_app.py --scripted:
an expert that answers each constrained call with JSON its caller decodes), tracing into the test Postgres. No 5xx,
every refusal a JSON error whose 400 names its field, no request the document calls valid refused before its run
(bench/fuzz_checks.py), and the replies as the document describes them (Schemathesis' own checks)."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from bench.fuzz import requests_by_route, st_command, st_env
from bench.server import Server
from tests.conftest import scratch_database

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
async def server(tmp_path_factory):
    from stepwise.app.migrate import migrate_url

    async with scratch_database("stepwise_test_fuzz") as url:
        await migrate_url(url)
        live = Server(url, True, str(tmp_path_factory.mktemp("fuzz")), ("--scripted",))
        try:
            yield live
        finally:
            live.stop()


def test_the_document_names_this_servers_models_and_tools(server):
    """A chat's `model` lists "stepwise" and the experts, a run's `tools` this server's tools: asking for another is
    refused (400), so the document says which exist."""
    schemas = httpx.get(f"{server.base}/schema/openapi.json").json()["components"]["schemas"]
    assert schemas["ChatRequest"]["properties"]["model"]["enum"] == ["stepwise", "general"]
    (array,) = [o for o in schemas["ReasonRequest"]["properties"]["tools"]["anyOf"] if o.get("type") == "array"]
    assert "calculator" in array["items"]["enum"]


def test_a_small_fuzz_run_finds_no_5xx_and_no_bad_refusal(server, tmp_path):
    """30 generated cases per operation, every phase, a fixed seed: Schemathesis exits 0 (no check failed), and the
    server's own request counts show every route reached and no 500."""
    result = subprocess.run(st_command(server.base, examples=30, workers=1, seed=14),
                            env=st_env(tmp_path / "tally.json"), capture_output=True, text=True, timeout=240,
                            cwd=tmp_path)  # st keeps a .schemathesis folder where it runs
    assert result.returncode == 0, result.stdout[-6000:]
    routes = requests_by_route(httpx.get(f"{server.base}/metrics").text)
    reached = {route for _, route in routes}
    assert {"/v1/reason", "/v1/chat/completions", "/v1/runs/{run_id}", "/runs/{run_id}", "/health"} <= reached
    assert not [(key, statuses) for key, statuses in routes.items() if statuses.get(500)]
    assert sum(sum(statuses.values()) for statuses in routes.values()) >= 500
