"""The constraint layer: the text that comes back from a constrained call is validated against its output type with
msgspec (or, for a type with a `from_text` classmethod, by it: function calls' `<tool_call>` blocks), and outlines_core
turns JSON schemas into regexes for servers that take only regexes."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from stepwise.reasoning.errors import OutputInvalid
from stepwise.reasoning.types import Constraint, JsonSchema, Regex


class ConstraintViolated(OutputInvalid):
    """Constrained output that does not validate under its type: a distinct, counted error."""

    kind = "constraint_violated"


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def as_regex(constraint: Constraint) -> str:
    """A regex equivalent to the constraint, for servers that take only regexes (compact JSON: no whitespace)."""
    match constraint:
        case Regex(pattern=pattern):
            return pattern
        case JsonSchema(schema=schema):
            from outlines_core import json_schema  # the package's own name for it (json_schema.py wraps the .so)

            return json_schema.build_regex_from_schema(json.dumps(schema), whitespace_pattern="")
    raise TypeError(f"a grammar has no regex equivalent: {constraint!r}")


def decode_output(text: str, output_type: Any) -> Any:
    """The value of constrained output under its type; ConstraintViolated if it does not validate."""
    try:
        if hasattr(output_type, "from_text"):  # a reply in a format of its own (function calls' <tool_call> blocks)
            return output_type.from_text(text)
        if _is_struct(output_type):
            return msgspec.json.decode(text, type=output_type)
        return msgspec.convert(text.strip(), output_type, strict=False)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        name = getattr(output_type, "__name__", output_type)
        raise ConstraintViolated(f"{text[:200]!r} is not a valid {name}: {exc}") from exc
