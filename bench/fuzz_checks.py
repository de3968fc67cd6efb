"""Schemathesis checks for stepwise's error contract, loaded by `st run` through SCHEMATHESIS_HOOKS=bench.fuzz_checks
(bench/fuzz.py and tests/integration/test_fuzz.py set it):

- `error_names_the_field`: a request refused before any run started (a 4xx without the run id header) is answered
  with JSON `{"status_code": <the status>, "detail": "..."}`, and a 400's detail starts with the field it is about
  (`plan.steps[0].id: …`, `body: …` for the body as a whole, `run_id: …`).
- `no_server_error`: no 5xx, except a run's 504 that says its deadline passed when the client gave a deadline under
  `SHORT_DEADLINE_S` (the run did what it was told; such replies are counted apart in the report).
- `schema_valid_accepted` (in place of Schemathesis' positive_data_acceptance): a request the document says is
  valid is not refused before its run starts. Replies of a run that started and failed (422 budget exceeded, 404 for
  a run id no run has) are outcomes, not refusals; the built-in check counts them as refusals.

An HTML page (the trace page, the documentation) may answer its errors as a page: only JSON routes are held to the
error body.

Refusals the document cannot foresee — a plan's own rules (`plan: …`: ids unique, references to earlier steps, each
target of its kind, a tool named in `tools`), function names unique in a chat's `tools` and a named `tool_choice`
naming one of them — are rules between fields that JSON Schema does not state, a run id prefix more than one stored
run starts with depends on the data, and a number written with a fraction
(`5.0`) is an integer to JSON Schema but not to the strict decoder (app/bodies.py); `schema_valid_accepted` counts them
(by the detail's head) instead of failing, as it counts the short-deadline 504s. With FUZZ_TALLY set, the counts are
written there as JSON when the process ends.

Replies of runs that started (the run id header is set) carry the run's report or OpenAI's error object instead:
their statuses are the error map's (app/status.py), checked by Schemathesis' own status and schema checks."""

from __future__ import annotations

import atexit
import json
import os
import re
from collections import Counter

import schemathesis

RUN_HEADER = "x-stepwise-run-id"
SHORT_DEADLINE_S = 1.0
# A field path as app/bodies.py and the routes write it: names, indexes, dots (`messages[0].content`, `plan.steps[1]`).
CROSS_FIELD = ("plan: ", "tool_choice: no tool is named", "tools: function names must be unique",
               "run_id: more than one run starts with")  # the last depends on the runs stored, not on the request
FRACTION = re.compile(r"^[\w.\[\]-]+: Expected `int[^`]*`, got `float`")
TALLY: Counter[str] = Counter()
FIELD = re.compile(r"^[A-Za-z_][\w\-]*(?:\[\d+\]|\.[A-Za-z_][\w\-]*)*: \S")


def _headers(response) -> dict[str, str]:
    """Lower-cased names, each with its first value (Schemathesis keeps every value of a header in a list)."""
    return {k.lower(): (v[0] if isinstance(v, list) and v else v) for k, v in response.headers.items()}


def _json(response) -> object:
    try:
        return json.loads(response.content or b"")
    except ValueError:
        return None


def problem(status: int, headers: dict[str, str], body: bytes) -> str | None:
    """What is wrong with a 4xx refusal (None: nothing). `headers` lower-cased."""
    if not 400 <= status < 500 or RUN_HEADER in headers or status == 499:
        return None
    if headers.get("content-type", "").startswith("text/html"):
        return None
    try:
        data = json.loads(body or b"")
    except ValueError:
        return f"a {status} whose body is not JSON: {body[:200]!r}"
    detail = data.get("detail") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("status_code") != status or not isinstance(detail, str) or not detail:
        return f"a {status} whose body is not an error ({{status_code, detail}}): {body[:200]!r}"
    if status == 400 and not FIELD.match(data["detail"]):
        return f"a 400 whose detail does not start with the field it is about: {data['detail'][:200]!r}"
    return None


def _deadline(case) -> float | None:
    body = case.body if isinstance(case.body, dict) else None
    value = body.get("deadline_s") if body else None
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


@schemathesis.check
def error_names_the_field(ctx, response, case) -> bool | None:
    found = problem(response.status_code, _headers(response), response.content or b"")
    if found:
        raise AssertionError(found)
    return None


@schemathesis.check
def no_server_error(ctx, response, case) -> bool | None:
    status = response.status_code
    if status < 500:
        return None
    data = _json(response)
    error = data.get("error") if isinstance(data, dict) else None
    error_type = error.get("type") if isinstance(error, dict) else None
    deadline = _deadline(case)
    if status == 504 and error_type == "deadline_exceeded" and deadline is not None and deadline < SHORT_DEADLINE_S:
        TALLY[f"504 deadline_exceeded, deadline_s under {SHORT_DEADLINE_S:g} s"] += 1
        return None
    raise AssertionError(f"{status} from {case.method} {case.path}: {(response.content or b'')[:300]!r}")


@schemathesis.check
def schema_valid_accepted(ctx, response, case) -> bool | None:
    meta = case.meta
    positive = meta is not None and meta.generation.mode.is_positive
    status = response.status_code
    headers = _headers(response)
    if positive and 400 <= status < 500 and status not in (401, 404, 409, 499) and RUN_HEADER not in headers:
        data = _json(response)
        detail = data.get("detail") if isinstance(data, dict) else None
        if isinstance(detail, str) and detail.startswith(CROSS_FIELD):
            TALLY[f"{status} " + next(head for head in CROSS_FIELD if detail.startswith(head)).rstrip(": ") + " …"] += 1
            return None
        if isinstance(detail, str) and FRACTION.match(detail):
            TALLY[f"{status} an integer written as 5.0"] += 1
            return None
        body = (response.content or b"")[:300]
        raise AssertionError(f"a request valid under the document was refused ({status}): {body!r}")
    return None


def _write_tally() -> None:
    if path := os.environ.get("FUZZ_TALLY"):
        with open(path, "w") as out:
            json.dump(dict(TALLY), out)


atexit.register(_write_tally)
