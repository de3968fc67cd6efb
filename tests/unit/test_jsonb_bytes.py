"""JSONB bytes for Postgres: a float JSON would write with an exponent is written as its exact value, wherever it
stands; nothing else is changed, text that merely looks like such a number included."""

from __future__ import annotations

import uuid

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from stepwise.app.db import _STRING_OR_BIG_FLOAT, _exact, jsonb_bytes

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(alphabet="0123456789e+-.:,[]{}\"\\ab")
    | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1e16, 1e20, -3e300, 1.2345678901234567e19]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@given(JSON)
def test_every_big_float_is_rewritten_wherever_it_stands(value):
    """The quick test that decides whether to rewrite misses no float written with an exponent."""
    data = msgspec.json.encode(value)
    assert jsonb_bytes(value) == _STRING_OR_BIG_FLOAT.sub(_exact, data)


def test_big_floats_become_exact_and_text_stays_as_it_is():
    """A big float alone, in a list or in an object is written exactly; a run id's hex and a string holding '1e20'
    are not touched."""
    run_id = uuid.UUID("3f2e4a10-2e45-4e9b-8e7d-0e1f2a3b4c5d")
    assert jsonb_bytes(1e20) == b"100000000000000000000.0"
    assert jsonb_bytes([1.0, {"a": 1e17}]) == b'[1.0,{"a":100000000000000000.0}]'
    assert jsonb_bytes({"run_id": run_id, "note": "1e20"}) == msgspec.json.encode({"run_id": run_id, "note": "1e20"})
