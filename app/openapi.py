"""What the OpenAPI document (/schema/openapi.json) says each route may answer, in one place: the error body, the
statuses every route shares (401 with API keys; 400/413/415 for a JSON body; 503 when a route reading the trace finds
the database away), the statuses of a failed run (from app.status.STATUS_BY_ERROR, so the document follows the map),
and the documentation routes Litestar leaves out of its own document. tests/unit/test_openapi.py checks the document
against the app's routes and the error map."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from typing import Annotated, Any, get_args

import msgspec
from litestar import Litestar
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Parameter,
    PathItem,
    Reference,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import PathParameter

from stepwise.app.auth import OPEN_PATHS
from stepwise.app.status import STATUS_BY_ERROR
from stepwise.reasoning.types import Step


class ErrorBody(msgspec.Struct):
    """What every error reply carries: its status, what went wrong, and sometimes details (the field, the step)."""

    status_code: int
    detail: str
    extra: dict | list | None = None


RunRef = Annotated[str, PathParameter(
    description="A run id, or a unique prefix of one (at least 4 hex digits; `stepwise runs` prints 8).")]
RUN_REF_PATTERN = r"^[0-9A-Fa-f-]{4,36}$"
"""What app.trace.find_run takes (its `_RUN_PREFIX`, case aside), stated in the document (document_run_refs)."""


def error(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


def html_page(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=str, media_type="text/html", description=description, generate_examples=False)


UNAUTHORIZED = {401: error("STEPWISE_API_KEYS is set and no key, or a wrong one, was sent "
                           "(as `Authorization: Bearer KEY` or `X-API-Key: KEY`)")}
JSON_BODY = {
    400: error("The body does not decode into the request type: the detail names the field "
               "(unknown fields are refused)"),
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
    specs[GONE] = ResponseSpec(data_container=None,
                               description="The client went away before the run ended: the run was "
                               "cancelled and recorded so; no body is sent (nobody is listening)")
    return specs


def guarded(path: str, responses: dict[int, ResponseSpec]) -> dict[int, ResponseSpec]:
    """`responses` plus the 401 of key_guard unless `path` is open."""
    return responses if path in OPEN_PATHS else {**UNAUTHORIZED, **responses}


# Litestar serves these under the OpenAPI path but leaves them out of the document.
_DOCS_ROUTES = {
    "": ("The API documentation, in a browser", "text/html"),
    "/openapi.json": ("This document, as JSON", "application/vnd.oai.openapi+json"),
    "/openapi.yaml": ("This document, as YAML", "application/vnd.oai.openapi"),
    "/openapi.yml": ("This document, as YAML", "application/vnd.oai.openapi"),
    "/swagger": ("The API documentation in Swagger UI", "text/html"),
    "/elements": ("The API documentation in Stoplight Elements", "text/html"),
    "/redoc": ("The API documentation in ReDoc", "text/html"),
    "/rapidoc": ("The API documentation in RapiDoc", "text/html"),
    "/oauth2-redirect.html": ("Swagger UI's OAuth2 redirect page", "text/html"),
}


def document_docs_routes(app: Litestar, base: str) -> None:
    """Add the documentation routes to the app's OpenAPI document (built now, served as built)."""
    fields: dict[str, Schema | Reference] = {"status_code": Schema(type=OpenAPIType.INTEGER),
                                             "detail": Schema(type=OpenAPIType.STRING)}
    body = Schema(type=OpenAPIType.OBJECT, required=["status_code", "detail"], properties=fields)
    unauthorized = OpenAPIResponse(description=UNAUTHORIZED[401].description,
                                   content={"application/json": OpenAPIMediaType(schema=body)})
    for suffix, (summary, media_type) in _DOCS_ROUTES.items():
        ok = OpenAPIResponse(description=summary, content={media_type: OpenAPIMediaType(schema=Schema(
            type=OpenAPIType.OBJECT if media_type.endswith("json") else OpenAPIType.STRING))})
        _paths(app)[base + suffix] = PathItem(get=Operation(
            summary=summary,
            operation_id="Schema" + "".join(p.title() for p in suffix.replace(".", "/").replace("-", "/").split("/")),
            tags=["documentation"], responses={"200": ok, "401": unauthorized}))


def document_request_bodies(app: Litestar, bodies: Mapping[str, Any], *, tools: Collection[str] = (),
                            experts: Collection[str] = (), system_model: str = "stepwise") -> None:
    """Make the document's request bodies say what validation accepts, so a client (or a fuzzer) that follows the
    document is not refused. Litestar's own schemas of the request types drop what msgspec decodes strictly (a bound
    like `deadline_s > 0` inside an optional, unknown fields refused); msgspec's schemas of the same types
    (`msgspec.json.schema_components`) keep them, and replace Litestar's under the same names. `bodies` maps each
    request type's name to the type; with `tools` and `experts` (this server's), the names a request may use are
    listed too (`tools`, a step's `target`, a chat's `model`), and the rules of a chat request that one field's
    schema cannot say are written as conditions (a `tool_choice` other than "none" needs `tools`; a JSON
    `response_format` goes without tools; only an assistant's message may lack content; one message is the user's).
    What stays beyond the document, refused with a 400 naming the field: a plan's own rules (ids unique,
    references to earlier steps, acyclic, each target of its kind, a tool's input valid for it), function names
    unique within `tools`, and a named `tool_choice` naming one of them."""
    _, components = msgspec.json.schema_components(list(bodies.values()), ref_template="#/components/schemas/{name}")
    if tools or experts:
        if tools and "ReasonRequest" in components:
            tools_field = components["ReasonRequest"]["properties"]["tools"]
            for option in tools_field.get("anyOf", [tools_field]):
                if option.get("type") == "array":
                    option["items"] = {"type": "string", "enum": sorted(tools)}
        for variant in get_args(Step):  # each kind of step: any of the names a target may be
            if variant.__name__ in components:
                targets = sorted({*tools, *experts, "parallel"})
                components[variant.__name__]["properties"]["target"] = {"type": "string", "enum": targets}
        if experts and "ChatRequest" in components:
            models = [system_model, *sorted(experts)]
            components["ChatRequest"]["properties"]["model"] = {"type": "string", "enum": models}
    if "Plan" in components:
        components["Plan"]["properties"]["steps"]["minItems"] = 1
    if "ChatMessage" in components:
        components["ChatMessage"] |= {
            "if": {"properties": {"role": {"const": "assistant"}}},
            "else": {"required": ["content"], "properties": {"content": {"type": ["string", "array"]}}},
        }
    if "ChatRequest" in components:
        chat = components["ChatRequest"]
        chat["properties"]["messages"]["contains"] = {"type": "object", "required": ["role"],
                                                      "properties": {"role": {"const": "user"}}}
        no_tools = {"anyOf": [{"not": {"required": ["tools"]}}, {"properties": {"tools": {"type": ["null"]}}},
                              {"properties": {"tools": {"maxItems": 0}}}]}
        chat["allOf"] = [
            {"if": {"required": ["tool_choice"], "properties": {"tool_choice": {"not": {"enum": ["none", None]}}}},
             "then": {"required": ["tools"], "properties": {"tools": {"type": "array", "minItems": 1}}}},
            {"if": {"required": ["response_format"], "properties": {"response_format": {
                "type": "object", "required": ["type"],
                "properties": {"type": {"enum": ["json_object", "json_schema"]}}}}},
             "then": {"anyOf": [no_tools, {"required": ["tool_choice"],
                                           "properties": {"tool_choice": {"const": "none"}}}]}},
        ]
    if "ResponseFormat" in components:
        components["ResponseFormat"] |= {
            "if": {"properties": {"type": {"const": "json_schema"}}},
            "then": {"required": ["json_schema"], "properties": {"json_schema": {"type": "object"}}},
        }
    schemas = app.openapi_schema.components.schemas
    # Raw JSON Schema: the document is rendered by walking it, and a dict is rendered as it is.
    schemas.update(components)  # type: ignore[arg-type]


def _paths(app: Litestar) -> dict[str, PathItem]:
    """The document's paths: Litestar builds them with the document, so they exist once the app has routes."""
    paths = app.openapi_schema.paths
    if paths is None:
        paths = app.openapi_schema.paths = {}
    return paths


def document_run_refs(app: Litestar) -> None:
    """Every `run_id` path parameter with the pattern a run reference has, in the document only: app.trace.find_run
    refuses the rest itself (a 400 naming run_id that says what a run reference is; the trace page, as a page)."""
    for item in _paths(app).values():
        for operation in (item.get, item.delete):
            for parameter in (operation.parameters or []) if operation else []:
                if isinstance(parameter, Parameter) and parameter.name == "run_id" \
                        and isinstance(parameter.schema, Schema):
                    parameter.schema.pattern = RUN_REF_PATTERN


def document_streams(app: Litestar, paths: Collection[str]) -> None:
    """The routes whose 200 is Server-Sent Events with `stream: true`: that media type in the document too."""
    for path in paths:
        operation = _paths(app)[path].post
        ok = operation.responses.get("200") if operation is not None and operation.responses else None
        if not isinstance(ok, OpenAPIResponse):
            raise ValueError(f"POST {path} has no 200 reply in the document to add the stream to")
        events = Schema(type=OpenAPIType.OBJECT, required=["data"],
                        description="With `stream: true`: one Server-Sent Event per run event, then the report",
                        properties={name: Schema(type=OpenAPIType.STRING) for name in ("data", "event", "id")})
        ok.content = {**(ok.content or {}), "text/event-stream": OpenAPIMediaType(schema=events)}
