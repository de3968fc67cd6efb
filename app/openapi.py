"""What the OpenAPI document (/schema/openapi.json) says each route may answer, in one place: the error body, the
statuses every route shares (401 with API keys; 400/413/415 for a JSON body; 503 when a route reading the trace finds
the database away), the statuses of a failed run (from app.status.STATUS_BY_ERROR, so the document follows the map),
and the documentation routes Litestar leaves out of its own document. tests/unit/test_openapi.py checks the document
against the app's routes and the error map."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

import msgspec
from litestar import Litestar
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, PathItem, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import PathParameter

from app.auth import OPEN_PATHS
from app.status import STATUS_BY_ERROR


class ErrorBody(msgspec.Struct):
    """What every error reply carries: its status, what went wrong, and sometimes details (the field, the step)."""

    status_code: int
    detail: str
    extra: dict | list | None = None


RunRef = Annotated[str, PathParameter(
    description="A run id, or a unique prefix of one (at least 4 hex digits; `stepwise runs` prints 8).")]


def error(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


def html_page(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=str, media_type="text/html", description=description, generate_examples=False)


UNAUTHORIZED = {401: error("STEPWISE_API_KEYS is set and no key, or a wrong one, was sent "
                           "(as `Authorization: Bearer KEY` or `X-API-Key: KEY`)")}
JSON_BODY = {
    400: error("The body does not decode into the request type: the detail names the field (unknown fields are refused)"),
    413: error("The body is larger than STEPWISE_MAX_BODY_BYTES"),
    415: error("The body was not sent as application/json"),
}
DATABASE_DOWN = {503: error("The database holding the trace is unreachable")}
GONE = 499  # the client went away before the run ended: the run is cancelled and recorded, and nothing is sent


def run_failures(body: Any, what: str) -> dict[int, ResponseSpec]:
    """A failed run's statuses, each listing the error types STATUS_BY_ERROR maps to it; `body` is what carries the
    error (`what`), and 499 has none."""
    types: dict[int, list[str]] = defaultdict(list)
    for error_type, status in STATUS_BY_ERROR.items():
        types[status].append(error_type)
    specs = {status: ResponseSpec(data_container=body, generate_examples=False,
                                  description=f"The run failed ({', '.join(names)}): {what}")
             for status, names in sorted(types.items()) if status != GONE}
    specs[GONE] = ResponseSpec(data_container=None, description="The client went away before the run ended: the run was "
                               "cancelled and recorded so; no body is sent (nobody is listening)")
    return specs


def guarded(path: str, responses: dict[int, ResponseSpec]) -> dict[int, ResponseSpec]:
    """`responses` plus the 401 of key_guard unless `path` is open."""
    return responses if path in OPEN_PATHS else {**UNAUTHORIZED, **responses}


# Litestar serves these under the OpenAPI path but leaves them out of the document.
_DOCS_ROUTES = {
    "": ("The API documentation, in a browser", "text/html"),
    "/openapi.json": ("This document, as JSON", "application/json"),
    "/openapi.yaml": ("This document, as YAML", "text/yaml"),
    "/openapi.yml": ("This document, as YAML", "text/yaml"),
    "/swagger": ("The API documentation in Swagger UI", "text/html"),
    "/elements": ("The API documentation in Stoplight Elements", "text/html"),
    "/redoc": ("The API documentation in ReDoc", "text/html"),
    "/rapidoc": ("The API documentation in RapiDoc", "text/html"),
    "/oauth2-redirect.html": ("Swagger UI's OAuth2 redirect page", "text/html"),
}


def document_docs_routes(app: Litestar, base: str) -> None:
    """Add the documentation routes to the app's OpenAPI document (built now, served as built)."""
    openapi = app.openapi_schema
    unauthorized = OpenAPIResponse(description=UNAUTHORIZED[401].description, content={"application/json": OpenAPIMediaType(
        schema=Schema(type=OpenAPIType.OBJECT, required=["status_code", "detail"],
                      properties={"status_code": Schema(type=OpenAPIType.INTEGER), "detail": Schema(type=OpenAPIType.STRING)}))})
    for suffix, (summary, media_type) in _DOCS_ROUTES.items():
        ok = OpenAPIResponse(description=summary, content={media_type: OpenAPIMediaType(schema=Schema(
            type=OpenAPIType.OBJECT if media_type == "application/json" else OpenAPIType.STRING))})
        openapi.paths[base + suffix] = PathItem(get=Operation(
            summary=summary, operation_id="Schema" + "".join(p.title() for p in suffix.replace(".", "/").replace("-", "/").split("/")),
            tags=["documentation"], responses={"200": ok, "401": unauthorized}))
