"""The BFCL scorer: BFCL's own possible answers pass it, and on those answers and their mutations it agrees with
BFCL's checker module (loaded with its provider table stubbed: it imports every provider's SDK otherwise)."""

from __future__ import annotations

import copy
import sys
import types

import pytest

from stepwise.evals import bfcl
from stepwise.evals.types import Item

CATEGORIES = list(bfcl.DATASETS)


@pytest.fixture(scope="module")
def reference():
    """BFCL's ast_checker module and its Language enum, imported with `constants.model_config` stubbed."""

    class Config:
        underscore_to_dot = False

    stub = types.ModuleType("bfcl_eval.constants.model_config")
    stub.MODEL_CONFIG_MAPPING = {"stepwise": Config()}
    saved = sys.modules.get(stub.__name__)
    sys.modules[stub.__name__] = stub
    try:
        from bfcl_eval.constants.enums import Language
        from bfcl_eval.eval_checker.ast_eval import ast_checker
    finally:
        if saved is None:
            sys.modules.pop(stub.__name__)
        else:
            sys.modules[stub.__name__] = saved
    return ast_checker, Language


def items(name: str) -> list[Item]:
    return list(bfcl.dataset(name).items())


def first_answer(possible: list[dict], minimal: bool = False) -> list[dict]:
    """A model output built from a possible answer: the first allowed value of each parameter other than "" (which
    marks a parameter that may be left out); a parameter with no other value is left out, and with `minimal` so
    is every parameter that may be."""
    return [{name: _pick(params, minimal)} for call in possible for name, params in call.items()]


def _pick(allowed_by_key: dict, minimal: bool = False) -> dict:
    """Inside a dict value the answer lists allowed values per key again: pick from those too."""
    chosen = {key: [a for a in allowed if a != ""] for key, allowed in allowed_by_key.items()
              if not (minimal and "" in allowed)}
    return {key: _value(values[0]) for key, values in chosen.items() if values}


def _value(value):
    if isinstance(value, dict):
        return _pick(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [_pick(v) for v in value]
    return value


def mutants(output: list[dict]) -> list[list[dict]]:
    """Outputs the checker must judge: reordered, missing a call, an extra call, a renamed function, and for each
    call a parameter dropped, changed, retyped or added."""
    found = [list(reversed(output)), output[:-1], output + output[:1], [{"nonexistent_fn": {}}] + output[1:]]
    for i, call in enumerate(output):
        (name, params), = call.items()
        for param, value in params.items():
            for changed in _changes(value):
                found.append(output[:i] + [{name: params | {param: changed}}] + output[i + 1:])
            found.append(output[:i] + [{name: {k: v for k, v in params.items() if k != param}}] + output[i + 1:])
        found.append(output[:i] + [{name: params | {"unexpected_param": 1}}] + output[i + 1:])
    return found


def _changes(value):
    if isinstance(value, bool):
        return [not value, str(value)]
    if isinstance(value, int):
        return [value + 1, float(value), str(value)]
    if isinstance(value, float):
        return [value * 2 + 1, int(value), str(value)]
    if isinstance(value, str):
        return [value.upper(), value + " extra", 3]
    if isinstance(value, list):
        return [value[:-1], value + value[:1], list(reversed(value)), [str(v) for v in value]]
    if isinstance(value, dict):
        return [{}, {**value, "extra": 1}, {k: str(v) for k, v in value.items()}]
    return [None]


@pytest.mark.parametrize("name", CATEGORIES)
def test_bfcl_possible_answers_are_scored_correct(name: str):
    """For every item of a category, calls built from BFCL's own possible answer (with its optional parameters
    given, or left out) score correct."""
    loaded = items(name)
    assert len(loaded) >= 100
    failures = []
    for item in loaded:
        verdicts = [bfcl.score(item, [{"name": n, "arguments": a}
                                      for call in first_answer(item.answer, minimal) for n, a in call.items()])
                    for minimal in (False, True)]
        if not any(v.correct for v in verdicts):
            failures.append((item.id, verdicts[0].note))
    assert failures == []


@pytest.mark.parametrize("name", CATEGORIES)
def test_bfcl_checker_agrees_with_bfcl_module(name: str, reference):
    """On each possible answer and its mutations, the port gives BFCL's verdict and error type."""
    ast_checker, language = reference
    compared = 0
    wrong = []
    for item in items(name):
        for output in [first_answer(item.answer), *mutants(first_answer(item.answer))]:
            theirs = ast_checker.ast_checker(copy.deepcopy(item.meta["functions"]), copy.deepcopy(output),
                                             copy.deepcopy(item.answer), language.PYTHON, item.meta["category"],
                                             "stepwise")
            ours = bfcl.check(item.meta["functions"], output, item.answer, item.meta["category"])
            compared += 1
            if theirs["valid"] != ours["valid"] or (not theirs["valid"] and theirs["error_type"] != ours["error_type"]):
                wrong.append((item.id, output, theirs, ours))
    assert compared > 1000
    assert wrong[:3] == []


def test_bfcl_score_reads_openai_style_calls():
    """Arguments as JSON text and '_' for '.' in names (OpenAI's name rule) are read back as BFCL's names."""
    item = items("bfcl_simple")[1]  # math.factorial(number=5)
    assert item.meta["functions"][0]["name"] == "math.factorial"
    assert bfcl.score(item, [{"name": "math_factorial", "arguments": '{"number": 5}'}]).correct
    wrong = bfcl.score(item, [{"name": "math.factorial", "arguments": {"number": 6}}])
    assert not wrong.correct and "value_error" in wrong.note
    assert not bfcl.score(item, "5").correct


def test_bfcl_json_schema_maps_types_and_closes_objects():
    """BFCL's dict/float/tuple/any become object/number (format float)/array/string; declared parameters only."""
    function = {"name": "f", "description": "d", "parameters": {"type": "dict", "required": ["a"], "properties": {
        "a": {"type": "float", "description": "x"}, "b": {"type": "tuple", "items": {"type": "integer"}},
        "c": {"type": "any"}, "d": {"type": "dict", "properties": {"e": {"type": "string", "enum": ["p", "q"]}}}}}}
    schema = bfcl.json_schema(function)
    params = schema["parameters"]
    assert params["type"] == "object" and params["additionalProperties"] is False and params["required"] == ["a"]
    assert params["properties"]["a"] == {"type": "number", "format": "float", "description": "x"}
    assert params["properties"]["b"] == {"type": "array", "items": {"type": "integer"}}
    assert params["properties"]["c"] == {"type": "string"}
    assert params["properties"]["d"]["properties"]["e"] == {"type": "string", "enum": ["p", "q"]}


def test_bfcl_json_schema_keeps_each_parameters_default():
    """A parameter's default stays in the schema, as BFCL shows it to a model (a model not told a default guesses a
    value for the parameter); the description is the function's own."""
    properties = {"a": {"type": "string", "description": "x"},
                  "year": {"type": "integer", "description": "y", "default": 2000}}
    function = {"name": "f", "description": "Finds it.",
                "parameters": {"type": "dict", "required": ["a"], "properties": properties}}
    schema = bfcl.json_schema(function)
    assert schema["description"] == "Finds it."
    assert schema["parameters"]["properties"]["year"] == {"type": "integer", "description": "y", "default": 2000}
    assert "default" not in schema["parameters"]["properties"]["a"]
