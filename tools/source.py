"""Python source parsed with `ast`, safe from CPython 3.11's spurious "AST constructor recursion depth mismatch".

CPython 3.11 (3.11.7 here and in CI; later releases may have it fixed) keeps the AST constructor's recursion depth
in one per-interpreter record that every parse resets at its start (python/cpython#106905 and its follow-ups). A
second parse that begins while a first is still building its tree — in a finalizer the garbage collector runs mid-
build, or in another thread — leaves the record at its own depth, and the first parse then fails with SystemError
although its text is fine. A finalizer that parses is common: formatting a traceback parses the failing line (3.11's
`^^^` markers), so any exception raised in a `__del__` (an unclosed event loop's ResourceWarning made an error, say)
and reported by `sys.unraisablehook` is one. The tree is a pure function of the text, so the parse is simply done
again.
"""

from __future__ import annotations

import ast
from typing import cast

_SPURIOUS = "AST constructor recursion depth mismatch"
_TRIES = 3


def parse_module(text: str) -> ast.Module:
    """`ast.parse(text)`, done again when CPython reports the spurious depth mismatch; SyntaxError as ast.parse."""
    return cast(ast.Module, _parsed(text, "exec"))


def parse_expression(text: str) -> ast.Expression:
    """`ast.parse(text, mode="eval")`, done again on the spurious depth mismatch; SyntaxError as ast.parse."""
    return cast(ast.Expression, _parsed(text, "eval"))


def _parsed(text: str, mode: str) -> ast.AST:
    for attempt in range(_TRIES):
        try:
            return ast.parse(text, mode=mode)
        except SystemError as exc:
            if not str(exc).startswith(_SPURIOUS) or attempt == _TRIES - 1:
                raise
    raise AssertionError("unreachable")
