"""What Schemathesis found against /schema/openapi.json (issue 14 §2), one test each: the refusals it got that did not
name their field, the replies the document did not describe, and the requests the document called valid that the
server refused. The real app and routes over the test database; no route here runs a model."""

from __future__ import annotations

import pytest

from tests.conftest import engineless_app


@pytest.fixture
async def client(database_url):
    async with engineless_app(database_url) as test_client:
        yield test_client


@pytest.mark.parametrize("route", ["/v1/reason", "/v1/chat/completions"])
async def test_a_post_without_a_body_is_a_400_naming_the_body(client, route):
    """No body at all was Litestar's "Validation failed for POST /v1/reason", naming no field."""
    reply = await client.post(route)
    assert reply.status_code == 400
    assert reply.json()["detail"] == "body: a JSON body is required (the request has none)"


async def test_options_on_a_run_lists_delete_too(client):
    """OPTIONS /v1/runs/{id} said `Allow: GET, OPTIONS`: Litestar computed it before DELETE was registered there."""
    reply = await client.options("/v1/runs/0000")
    assert reply.status_code == 204 and reply.headers["allow"] == "DELETE, GET, OPTIONS"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("ref", ["0", "zz-not-hex", "a" * 37])
async def test_a_run_reference_that_cannot_name_a_run_is_a_400_naming_run_id(client, method, ref):
    """The document gives run_id the pattern the lookup accepts, and the route refuses the rest by it, naming run_id."""
    reply = await client.request(method, f"/v1/runs/{ref}")
    assert reply.status_code == 400 and reply.json()["detail"].startswith("run_id: ")


async def test_the_document_gives_every_run_reference_its_pattern(client):
    """A run id or a prefix of 4 to 36 hex digits: on the JSON routes and on the trace page alike."""
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    for path, method in [("/v1/runs/{run_id}", "get"), ("/v1/runs/{run_id}", "delete"), ("/runs/{run_id}", "get")]:
        (parameter,) = [p for p in paths[path][method]["parameters"] if p["name"] == "run_id"]
        assert parameter["schema"]["pattern"] == "^[0-9A-Fa-f-]{4,36}$", (path, method)


async def test_the_document_keeps_the_bounds_validation_applies(client):
    """Litestar's own schema of ReasonRequest dropped `deadline_s > 0` and that unknown fields are refused; the
    document now has msgspec's schema of the type, which the strict decoder follows."""
    schemas = (await client.get("/schema/openapi.json")).json()["components"]["schemas"]
    reason = schemas["ReasonRequest"]
    assert reason["additionalProperties"] is False
    (number,) = [option for option in reason["properties"]["deadline_s"]["anyOf"] if option.get("type") == "number"]
    assert number["exclusiveMinimum"] == 0 and number["maximum"] == 3600
    assert schemas["Plan"]["properties"]["steps"]["minItems"] == 1
    chat = schemas["ChatRequest"]
    assert chat["properties"]["messages"]["contains"]["properties"]["role"] == {"const": "user"}
    assert schemas["ChatMessage"]["else"]["required"] == ["content"]  # only an assistant's message may lack content


async def test_the_document_says_what_the_schema_routes_and_streams_send(client):
    """The YAML document is sent as application/vnd.oai.openapi, and `stream: true` answers text/event-stream: the
    document said text/yaml and only application/json."""
    document = (await client.get("/schema/openapi.json")).json()
    for suffix in ("yaml", "yml"):
        documented = document["paths"][f"/schema/openapi.{suffix}"]["get"]["responses"]["200"]["content"]
        served = (await client.get(f"/schema/openapi.{suffix}")).headers["content-type"]
        assert list(documented) == [served.split(";")[0]]
    for path in ("/v1/reason", "/v1/chat/completions"):
        assert "text/event-stream" in document["paths"][path]["post"]["responses"]["200"]["content"]
