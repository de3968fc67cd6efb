"""/schema/openapi.json tells the truth: every route the app serves is in it, with every status the route can answer
(a failed run's statuses from app.status.STATUS_BY_ERROR) and the body each error carries."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from stepwise.app.auth import OPEN_PATHS
from stepwise.app.metrics import Metrics
from stepwise.app.routes import create_app
from stepwise.app.settings import Settings
from stepwise.app.status import STATUS_BY_ERROR

# Litestar's catch-all under /schema: it only answers 404 for a documentation page that does not exist.
NOT_DOCUMENTED = {"/schema/{path}"}
RUN_ROUTES = [("post", "/v1/reason"), ("post", "/v1/chat/completions")]
TRACE_ROUTES = [("get", "/v1/runs/{run_id}"), ("delete", "/v1/runs/{run_id}"), ("get", "/runs/{run_id}")]


def app(**env: str):
    return create_app(Settings.from_env({"HOME": "/nonexistent", **env}), runtime=SimpleNamespace(metrics=Metrics()))


@pytest.fixture(scope="module")
def document() -> dict:
    return app().openapi_schema.to_schema()


def served(application) -> set[tuple[str, str]]:
    return {(method.lower(), re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path))
            for route in application.routes if isinstance(route, HTTPRoute)
            for method in route.methods - {"OPTIONS", "HEAD"}}


def operations(document: dict) -> dict[tuple[str, str], dict]:
    return {(method, path): op for path, item in document["paths"].items() for method, op in item.items()
            if "responses" in op}


def test_the_document_lists_exactly_the_routes_the_app_serves(document):
    """Every route (the trace page, /metrics and /schema's own included) is an operation, and nothing else is."""
    routes = {(m, p) for m, p in served(app()) if p not in NOT_DOCUMENTED}
    assert {("get", "/metrics"), ("get", "/runs/{run_id}"), ("get", "/schema"),
            ("get", "/schema/openapi.json")} <= routes
    assert set(operations(document)) == routes


def test_a_route_that_runs_documents_every_status_the_error_map_gives(document):
    """POST /v1/reason and /v1/chat/completions list 200, the body's 400/413/415, 401, and each status of
    STATUS_BY_ERROR."""
    for key in RUN_ROUTES:
        statuses = {int(s) for s in operations(document)[key]["responses"]}
        assert statuses == {200, 400, 401, 413, 415} | set(STATUS_BY_ERROR.values()), key


def test_routes_naming_a_run_document_a_bad_id_an_unknown_one_and_the_database_away(document):
    """GET/DELETE /v1/runs/{id} and the trace page: 400, 404, 503 (and 409 for a DELETE of an ended run)."""
    for key in TRACE_ROUTES:
        assert {"400", "401", "404", "503"} <= set(operations(document)[key]["responses"]), key
    assert "409" in operations(document)[("delete", "/v1/runs/{run_id}")]["responses"]


def test_every_error_status_says_what_its_body_is(document):
    """Each 4xx/5xx has a description and a body (ErrorBody, a run's report, OpenAI's error, /health's body, an HTML
    page) except 499, which is sent to nobody."""
    bodies = {"#/components/schemas/ErrorBody", "#/components/schemas/RunReport", "#/components/schemas/ErrorReply",
              "#/components/schemas/Health"}
    for key, op in operations(document).items():
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            assert response["description"], (key, status)
            if status == "499":
                assert "content" not in response, key
                continue
            (media_type, content), = response["content"].items()
            if media_type == "text/html":
                continue
            schema = content["schema"]
            assert schema.get("$ref") in bodies or schema["required"] == ["status_code", "detail"], (key, status)


def test_the_documented_401_is_what_a_keyless_request_gets(document):
    """With STEPWISE_API_KEYS set, each operation documenting a 401 answers 401 without a key; only the open paths
    (/health) document none."""
    with TestClient(app(STEPWISE_API_KEYS="k1")) as client:
        for (method, path), op in operations(document).items():
            assert ("401" in op["responses"]) == (path not in OPEN_PATHS), path
            if path in OPEN_PATHS:
                continue
            reply = client.request(method.upper(), path.replace("{run_id}", "abcd1234"), json={} if method == "post"
                                   else None)
            assert reply.status_code == 401, (method, path)


def test_the_served_document_is_the_one_checked_here(document):
    """GET /schema/openapi.json serves this document, the documentation routes included."""
    with TestClient(app()) as client:
        served_document = client.get("/schema/openapi.json").json()
    assert set(served_document["paths"]) == set(document["paths"])
