"""The constraint layer: an output type becomes what a backend takes (a JSON schema, a regex, a grammar), and the
text that comes back is validated against the same type with msgspec. Built on outlines: its DSL turns Python
types (Literal choices, int, float, bool, its own terms such as `outlines.types.email`) into regexes, and
outlines_core turns JSON schemas into regexes for servers that take only regexes."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from reasoning.errors import OutputInvalid
from reasoning.plan import inline_refs
from reasoning.types import Constraint, Grammar, JsonSchema, Regex


class ConstraintViolated(OutputInvalid):
    """Constrained output that does not validate under its type: a distinct, counted error."""

    kind = "constraint_violated"


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def constraint_for(output_type: Any, name: str = "output") -> Constraint:
    """The constraint for an output type: JSON schema for Structs, a regex for everything outlines can express."""
    if isinstance(output_type, (JsonSchema, Regex, Grammar)):
        return output_type
    if _is_struct(output_type):
        return JsonSchema(name, inline_refs(msgspec.json.schema(output_type)))
    from outlines.types import dsl  # imported on first use: outlines takes a second to import

    term = output_type if isinstance(output_type, dsl.Term) else dsl.python_types_to_terms(output_type)
    return Regex(dsl.to_regex(term))


def as_regex(constraint: Constraint) -> str:
    """A regex equivalent to the constraint, for servers that take only regexes (compact JSON: no whitespace)."""
    match constraint:
        case Regex(pattern=pattern):
            return pattern
        case JsonSchema(schema=schema):
            from outlines_core.json_schema import build_regex_from_schema

            return build_regex_from_schema(json.dumps(schema), whitespace_pattern="")
    raise TypeError(f"a grammar has no regex equivalent: {constraint!r}")


def decode_output(text: str, output_type: Any) -> Any:
    """The value of constrained output under its type; ConstraintViolated if it does not validate."""
    try:
        if _is_struct(output_type):
            return msgspec.json.decode(text, type=output_type)
        return msgspec.convert(text.strip(), output_type, strict=False)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        name = getattr(output_type, "__name__", output_type)
        raise ConstraintViolated(f"{text[:200]!r} is not a valid {name}: {exc}") from exc
