"""Parsing Python while a garbage-collected finalizer parses too: CPython 3.11's spurious "AST constructor recursion
depth mismatch" never reaches a caller, and the calculator's warnings-as-errors stay its own."""

from __future__ import annotations

import ast
import gc
import sys
import warnings
from collections.abc import Iterator

import pytest

from stepwise.tools.calculator import evaluate
from stepwise.tools.source import parse_expression, parse_module

_LONG = "+".join(["a*(b+c)"] * 40)


class _Cycle:
    """Garbage only the collector frees. Its finalizer runs what it is given and leaves a new cycle behind while the
    budget lasts, so there is garbage at every collection — one falls mid-way through the parse under test."""

    def __init__(self, finalize, budget: list[int]) -> None:
        self.me = self
        self.finalize = finalize
        self.budget = budget

    def __del__(self) -> None:
        self.finalize()
        if self.budget[0] > 0:
            self.budget[0] -= 1
            _Cycle(self.finalize, self.budget)


@pytest.fixture
def collector_every_allocation() -> Iterator[None]:
    """The collector runs at (nearly) every allocation, so finalizers run while a tree is being built."""
    before = gc.get_threshold()
    gc.set_threshold(1)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.collect()


def _garbage(finalize, budget: int = 200) -> None:
    _Cycle(finalize, [budget])


def _parse_nested() -> None:
    ast.parse("((((1))))")


def test_a_finalizer_parsing_mid_parse_is_what_cpython_trips_on(collector_every_allocation):
    """The condition is real on this interpreter: plain ast.parse fails under it (so the tests below test something)."""
    if not (3, 11) <= sys.version_info[:3] < (3, 11, 8):
        pytest.skip("the bug is known here on 3.11.7 (this machine's and CI's); later interpreters may have it fixed")
    failures = 0
    for _ in range(20):
        _garbage(_parse_nested)
        try:
            ast.parse(f"x = {_LONG}")
        except SystemError:
            failures += 1
    assert failures > 0


def test_a_module_parses_while_finalizers_parse(collector_every_allocation):
    """parse_module returns the same tree as a quiet parse while finalizers parse mid-build."""
    expected = ast.dump(ast.parse(f"x = {_LONG}"))
    for _ in range(20):
        _garbage(_parse_nested)
        assert ast.dump(parse_module(f"x = {_LONG}")) == expected


def test_an_expression_parses_while_finalizers_parse(collector_every_allocation):
    """parse_expression likewise, in eval mode."""
    expected = ast.dump(ast.parse(_LONG, mode="eval"))
    for _ in range(20):
        _garbage(_parse_nested)
        assert ast.dump(parse_expression(_LONG)) == expected


def test_a_syntax_error_is_still_a_syntax_error():
    """Only the spurious SystemError is retried: a bad text raises SyntaxError as ast.parse does."""
    with pytest.raises(SyntaxError):
        parse_module("x = = 1")


def test_the_calculator_evaluates_while_finalizers_parse(collector_every_allocation):
    """The calculator's answer does not depend on what the collector happens to finalize meanwhile."""
    expression = "+".join(["(2*(3+4))"] * 40)
    for _ in range(20):
        _garbage(_parse_nested)
        assert evaluate(expression) == 560


def test_the_calculator_does_not_make_other_codes_warnings_errors(collector_every_allocation):
    """A finalizer's ResourceWarning during the calculator's parse stays a warning, not an error in its __del__."""
    raised: list[BaseException | None] = []
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: raised.append(unraisable.exc_value)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            for _ in range(20):
                _garbage(lambda: warnings.warn("unclosed thing", ResourceWarning, stacklevel=1))
                assert evaluate("+".join(["(2*(3+4))"] * 40)) == 560
            gc.collect()
    finally:
        sys.unraisablehook = hook
    assert raised == []
