"""BFCL v4 (bfcl-eval, installed --no-deps): the Python categories simple, multiple, parallel and
parallel_multiple, and their AST checker.

The checker is a port of the Python path of `bfcl_eval/eval_checker/ast_eval/ast_checker.py` (the package's own
module imports every provider's SDK through `constants.model_config`, so it cannot be imported without them):
each expected function called, each required parameter present, no parameter outside the schema and the answer,
each value among the allowed ones (strings compared without case, spaces and ",./-_*^"; "" in the allowed list
marks an optional parameter that may be left out), and parallel calls matched in any order.
tests/unit/test_bfcl_checker.py holds the port to BFCL's own module on every possible answer."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stepwise.evals.types import Dataset, Item, Score

DATASETS = {
    "bfcl_simple": "simple_python",
    "bfcl_multiple": "multiple",
    "bfcl_parallel": "parallel",
    "bfcl_parallel_multiple": "parallel_multiple",
}

_PYTHON_TYPES = {"string": str, "integer": int, "float": float, "boolean": bool, "array": list, "tuple": list,
                 "dict": dict, "any": str}
_NESTED = ("array", "tuple")
_JSON_TYPES = {"integer": "integer", "number": "number", "float": "number", "string": "string", "boolean": "boolean",
               "bool": "boolean", "array": "array", "list": "array", "dict": "object", "object": "object",
               "tuple": "array", "any": "string"}  # BFCL's GORILLA_TO_OPENAPI for the types these categories use


def data_dir() -> Path:
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("bfcl_eval")
    return Path(spec.submodule_search_locations[0]) / "data"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def dataset(name: str, limit: int | None = None, offset: int = 0) -> Dataset:
    category = DATASETS[name]
    root = data_dir()
    questions = _lines(root / f"BFCL_v4_{category}.json")[offset:][:limit]
    answers = {row["id"]: row["ground_truth"] for row in _lines(root / "possible_answer" / f"BFCL_v4_{category}.json")}

    def items() -> Iterator[Item]:
        for row in questions:
            messages = row["question"][0]  # single-turn categories: one turn
            yield Item(row["id"], messages[-1]["content"], answers[row["id"]], "function_calls", {
                "category": category, "messages": messages, "functions": row["function"],
                "parallel": category.startswith("parallel"),
            })

    return Dataset(name, items, score)


def json_schema(function: dict) -> dict:
    """A BFCL function description as an OpenAI-style function: its parameters as a JSON schema (BFCL's type names
    mapped the way BFCL maps them for OpenAI models), closed to parameters it does not declare, keeping each
    parameter's default as BFCL shows it (shown none, the model guessed a year or a depth for optional parameters of 2
    of the first 50 parallel items). BFCL's "Note that the provided function is in Python 3 syntax." at the end of
    each description is left out: with it, bfcl_multiple's first 100 answered 85, without it 87 (README). BFCL's
    float is a number of OpenAPI's `format: float`, which the server honours (a whole number written as a float),
    since BFCL's checker refuses `[1, 3]` for a list of floats."""

    def convert(spec: dict) -> dict:
        kind = _JSON_TYPES.get(spec.get("type", "string"), "string")
        out: dict[str, Any] = {"type": kind}
        if spec.get("type") == "float":
            out["format"] = "float"
        if spec.get("description"):
            out["description"] = spec["description"]
        if "enum" in spec:
            out["enum"] = spec["enum"]
        if "default" in spec:
            out["default"] = spec["default"]
        if kind == "object" and "properties" in spec:
            out["properties"] = {k: convert(v) for k, v in spec["properties"].items()}
            out["required"] = list(spec.get("required", []))
            out["additionalProperties"] = False
        if kind == "array" and "items" in spec:
            out["items"] = convert(spec["items"])
        return out

    parameters = convert({**function["parameters"], "type": "dict"})
    parameters.setdefault("properties", {})
    parameters.setdefault("required", [])
    return {"name": function["name"], "description": function.get("description", ""), "parameters": parameters}


def as_model_output(calls: list[dict], functions: list[dict]) -> list[dict]:
    """[{name, arguments}] (arguments a dict or JSON text) as BFCL's model output, [{name: {param: value}}]. A name
    with '_' where the schema has '.' (OpenAI's name rule) is mapped back, as BFCL's checker maps it for such models."""
    known = {f["name"] for f in functions}
    dotted = {re.sub(r"\.", "_", n): n for n in known}
    out = []
    for call in calls:
        arguments = call.get("arguments")
        if isinstance(arguments, str):
            arguments = json.loads(arguments) if arguments.strip() else {}
        name = call["name"] if call["name"] in known else dotted.get(call["name"], call["name"])
        out.append({name: arguments or {}})
    return out


def score(item: Item, predicted: Any) -> Score:
    """Predicted is a list of {name, arguments}; correct when BFCL's AST check passes."""
    if not isinstance(predicted, list):
        return Score(False, "no function calls")
    try:
        output = as_model_output(predicted, item.meta["functions"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return Score(False, f"unreadable call: {exc}")
    result = check(item.meta["functions"], output, item.answer, item.meta["category"])
    return Score(True) if result["valid"] else Score(False, f"{result['error_type']}: {_first(result['error'])}")


def _first(errors: list) -> str:
    return str(errors[0])[:300] if errors else ""


# The checker (BFCL's Python path) -------------------------------------------------------------------------------

def check(functions: list[dict], output: list[dict], possible: list[dict], category: str) -> dict:
    if "parallel" in category:
        return _parallel_no_order(functions, output, possible)
    if "multiple" in category:
        if len(output) != len(possible):
            return _invalid("Wrong number of functions.", "multiple_function_checker:wrong_count")
        return _simple(_describe(functions, next(iter(possible[0]))), output[0], possible[0])
    if len(output) != 1:
        return _invalid("Wrong number of functions.", "simple_function_checker:wrong_count")
    return _simple(functions[0], output[0], possible[0])


def _invalid(error: Any, kind: str) -> dict:
    return {"valid": False, "error": [error], "error_type": kind}


def _describe(functions: list[dict], name: str) -> dict | None:
    return next((f for f in functions if f["name"] == name), None)


def _standard(text: str) -> str:
    return re.sub(r"[ \,\.\/\-\_\*\^]", "", text).lower().replace("'", '"')


def _answer_type(allowed: list) -> type | None:
    return next((type(a) for a in allowed if a != ""), None)


def _type_check(param: str, value: Any, allowed: list, described: str, expected: type, nested: type | None) -> dict:
    result = {"valid": True, "error": [], "is_variable": False, "error_type": "type_error:simple"}
    answer_type = _answer_type(allowed)
    # An allowed value of another type than the schema's is a variable's name (BFCL writes variables as strings).
    is_variable = answer_type is not None and answer_type != expected
    if type(value) is expected:
        if nested is None:
            return result | {"is_variable": is_variable}
        for option in allowed:
            if type(option) is list and any(not _type_check(param, v, option, str(nested), nested, None)["valid"]
                                            for v in value):
                continue
            return {"valid": True, "error": [], "is_variable": is_variable}
        result = _invalid(f"Nested type checking failed for parameter {param!r}.", "type_error:nested")
    if answer_type is not None and type(value) is answer_type:
        return result | {"is_variable": True}  # as BFCL: a failed nested check stays failed
    error = f"Incorrect type for parameter {param!r}. Expected type {described}, got {type(value).__name__}."
    return {"valid": False, "error": [*result["error"], error], "error_type": "type_error:simple"}


def _string_check(param: str, value: str, allowed: list) -> dict:
    if _standard(value) not in [_standard(a) for a in allowed if type(a) is str]:
        return _invalid(f"Invalid value for parameter {param!r}: {value!r}. Expected one of {allowed}.",
                        "value_error:string")
    return {"valid": True, "error": []}


def _list_check(param: str, value: list, allowed: list) -> dict:
    given = [_standard(v) if type(v) is str else v for v in value]
    options = [[_standard(v) if type(v) is str else v for v in option] for option in allowed]
    if given not in options:
        return _invalid(f"Invalid value for parameter {param!r}: {value!r}. Expected one of {allowed}.",
                        "value_error:list/tuple")
    return {"valid": True, "error": []}


def _dict_check(param: str, value: dict, allowed: list) -> dict:
    result = _invalid("", "dict_checker:unclear") | {"error": []}
    for option in allowed:
        if option == "":
            continue
        result, fits = {"valid": False, "error": [], "error_type": "dict_checker:unclear"}, True
        for key, v in value.items():
            if key not in option:
                result = _invalid(f"Unexpected dict key parameter: '{key}'.", "value_error:dict_key")
                fits = False
                break
            standard = _standard(v) if type(v) is str else v
            if standard not in [_standard(a) if type(a) is str else a for a in option[key]]:
                result = _invalid(f"Invalid value for parameter {key!r}: {v!r}.", "value_error:dict_value")
                fits = False
                break
        for key, v in option.items():
            if key not in value and "" not in v:
                result = _invalid(f"Missing dict key parameter: '{key}'.", "value_error:dict_key")
                fits = False
                break
        if fits:
            return {"valid": True, "error": []}
    return result


def _list_dict_check(param: str, value: list, allowed: list) -> dict:
    result = _invalid("", "list_dict_checker:unclear") | {"error": []}
    for option in allowed:
        if len(value) != len(option):
            result = _invalid("Wrong number of dictionaries in the list.", "value_error:list_dict_count")
            continue
        for given, expected in zip(value, option, strict=True):  # lengths checked just above
            result = _dict_check(param, given, [expected])
            if not result["valid"]:
                break
        else:
            return {"valid": True, "error": []}
    return result


def _simple(function: dict | None, output: dict, possible: dict) -> dict:
    allowed_by_param = next(iter(possible.values()))
    if function is None:
        # An item that does not describe the function its answer calls is broken, not answered wrongly: BFCL's
        # checker fails there too (subscripting None), and this is the same TypeError, with a message.
        raise TypeError("the expected function is not among the item's functions")
    name = function["name"]
    details = function["parameters"]["properties"]
    if name not in output:
        return _invalid(f"Function name {name!r} not found in model output.", "simple_function_checker:wrong_func_name")
    given = output[name]
    for param in function["parameters"]["required"]:
        if param not in given:
            return _invalid(f"Missing required parameter: {param!r}.", "simple_function_checker:missing_required")
    for param, value in given.items():
        failed = _param_check(param, value, details, allowed_by_param)
        if failed is not None:
            return failed
    for param, allowed in allowed_by_param.items():
        if param not in given and "" not in allowed:
            return _invalid(f"Optional parameter {param!r} not provided and not marked as optional.",
                            "simple_function_checker:missing_optional")
    return {"valid": True, "error": [], "error_type": "simple_function_checker:unclear"}


def _param_check(param: str, value: Any, details: dict, allowed_by_param: dict) -> dict | None:
    """None when one given parameter passes; else BFCL's result for its first failure. Apart from `_simple` so that
    each holds one level of BFCL's checker: the call's shape there, one value's type and content here."""
    if param not in details or param not in allowed_by_param:
        return _invalid(f"Unexpected parameter: {param!r}.", "simple_function_checker:unexpected_param")
    described = details[param]["type"]
    expected = _PYTHON_TYPES[described]
    nested = _PYTHON_TYPES[details[param]["items"]["type"]] if described in _NESTED else None
    if described == "float" and type(value) is int:
        value = float(value)  # BFCL lets an int stand for a float
    allowed = allowed_by_param[param]
    typed = _type_check(param, value, allowed, described, expected, nested)
    if not typed["valid"]:
        return typed
    # A variable's name (see _type_check) is compared as it is, never by the checks for its schema type.
    special = None if typed["is_variable"] else _typed_value_check(param, value, allowed, expected, nested)
    if special is not None:
        return None if special["valid"] else special
    if value not in allowed:
        return _invalid(f"Invalid value for parameter {param!r}: {value!r}. Expected one of {allowed}.",
                        "value_error:others")
    return None


def _typed_value_check(param: str, value: Any, allowed: list, expected: type, nested: type | None) -> dict | None:
    """BFCL's own comparison for a dict, a list (of dicts or not) or a string; None for other types, which must equal
    an allowed value exactly."""
    if expected is dict:
        return _dict_check(param, value, allowed)
    if expected is list and nested is dict:
        return _list_dict_check(param, value, allowed)
    if expected is str:
        return _string_check(param, value, allowed)
    if expected is list:
        return _list_check(param, value, allowed)
    return None


def _parallel_no_order(functions: list[dict], output: list[dict], possible: list[dict]) -> dict:
    if len(output) != len(possible):
        return _invalid("Wrong number of functions.", "parallel_function_checker_no_order:wrong_count")
    matched: list[int] = []
    for i, expected in enumerate(possible):
        function = _describe(functions, next(iter(expected)))
        errors = []
        for index, call in enumerate(output):
            if index in matched:
                continue
            result = _simple(function, call, expected)
            if result["valid"]:
                matched.append(index)
                break
            errors.append(result["error"])
        else:
            return {"valid": False,
                    "error": [f"Could not find a matching function for index {i} of possible answers.", *errors],
                    "error_type": "parallel_function_checker_no_order:cannot_find_match"}
    return {"valid": True, "error": []}
