"""The constraint layer: types become JSON schemas or (through outlines) regexes; outputs validate with msgspec."""

from __future__ import annotations

import re
from typing import Literal

import msgspec
import pytest
from outlines.types import email

from reasoning.constraints import ConstraintViolated, as_regex, constraint_for, decode_output
from reasoning.types import JsonSchema, Regex


class Verdict(msgspec.Struct, forbid_unknown_fields=True):
    ok: bool
    reason: str


def test_a_struct_becomes_a_self_contained_json_schema():
    """msgspec Structs turn into a JSON schema with no $refs, which every backend accepts."""
    constraint = constraint_for(Verdict, "verdict")
    assert isinstance(constraint, JsonSchema) and constraint.name == "verdict"
    assert constraint.schema["required"] == ["ok", "reason"] and "$ref" not in str(constraint.schema)


def test_a_json_schema_becomes_a_regex_for_compact_json():
    """outlines_core's regex for the schema accepts msgspec's compact encoding and rejects other shapes."""
    pattern = as_regex(constraint_for(Verdict))
    assert re.fullmatch(pattern, msgspec.json.encode(Verdict(True, "fine")).decode())
    assert not re.fullmatch(pattern, '{"ok": true, "reason": "spaces"}')
    assert not re.fullmatch(pattern, '{"ok":"yes","reason":"x"}')


@pytest.mark.parametrize(
    ("output_type", "good", "bad"),
    [(Literal["yes", "no"], "yes", "maybe"), (int, "-42", "4.2"), (float, "3.5e2", "three"), (email, "a@b.io", "a@")],
)
def test_python_types_and_outlines_terms_become_regexes(output_type, good, bad):
    """Literal choices, numbers and outlines' own terms become regexes that admit exactly their values."""
    constraint = constraint_for(output_type)
    assert isinstance(constraint, Regex)
    assert re.fullmatch(constraint.pattern, good) and not re.fullmatch(constraint.pattern, bad)


def test_outputs_are_validated_and_violations_are_their_own_error():
    """Valid text decodes to the type's value; invalid text is ConstraintViolated, never passed through."""
    assert decode_output('{"ok":true,"reason":"r"}', Verdict) == Verdict(True, "r")
    assert decode_output("42", int) == 42 and decode_output("no", Literal["yes", "no"]) == "no"
    with pytest.raises(ConstraintViolated):
        decode_output('{"ok":"yes"}', Verdict)
    with pytest.raises(ConstraintViolated):
        decode_output("maybe", Literal["yes", "no"])


def test_numba_is_installed_so_outlines_constraints_cannot_silently_switch_off():
    """outlines' logits processors fall back to unconstrained generation without numba: it must import."""
    import numba

    assert numba.__version__
