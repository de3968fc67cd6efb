"""The constraint layer: JSON schemas become regexes (through outlines_core); outputs validate with msgspec."""

from __future__ import annotations

import re
from typing import Literal

import msgspec
import pytest

from stepwise.reasoning.constraints import ConstraintViolated, as_regex, decode_output
from stepwise.reasoning.types import Grammar, JsonSchema, Regex


class Verdict(msgspec.Struct, forbid_unknown_fields=True):
    ok: bool
    reason: str


def test_a_json_schema_becomes_a_regex_for_compact_json():
    """outlines_core's regex for the schema accepts msgspec's compact encoding and rejects other shapes."""
    pattern = as_regex(JsonSchema("verdict", msgspec.json.schema(Verdict)))
    assert re.fullmatch(pattern, msgspec.json.encode(Verdict(True, "fine")).decode())
    assert not re.fullmatch(pattern, '{"ok": true, "reason": "spaces"}')
    assert not re.fullmatch(pattern, '{"ok":"yes","reason":"x"}')


def test_a_regex_is_its_own_regex_and_a_grammar_has_none():
    """A Regex constraint passes through as_regex unchanged; a grammar cannot be said as a regex and says so."""
    assert as_regex(Regex("yes|no")) == "yes|no"
    with pytest.raises(TypeError, match="no regex equivalent"):
        as_regex(Grammar("root ::= \"yes\""))


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
