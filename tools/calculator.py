"""Arithmetic without eval: the expression is parsed with `ast` and only numbers, + - * / **, unary signs and
parentheses are walked. Anything else is refused by name, so the step can be repaired."""

from __future__ import annotations

import ast
import asyncio
import math
import operator
from typing import Annotated

import msgspec

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
# Notation models write that means the same thing.
_SPELLINGS = str.maketrans({"×": "*", "÷": "/", "−": "-", "^": "**"} | {"\u2009": "", "\u00a0": ""})
_MAX_DIGITS = 1000
_MAX_LENGTH = 500


class CalculatorArgs(msgspec.Struct, forbid_unknown_fields=True):
    expression: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Calculator:
    name = "calculator"
    description = "evaluates an arithmetic expression on numbers, such as 12*(3+4)/2; only for arithmetic"
    args_type = CalculatorArgs
    result_type = int | float
    deterministic = True

    async def run(self, args: CalculatorArgs) -> int | float:
        # Parsed here, on the event loop: ast.parse in worker threads at once has failed with CPython's "AST
        # constructor recursion depth mismatch" (1 request in ~24,000 under load). Evaluated off the loop:
        # big-number arithmetic must not stall other runs, and independent steps overlap.
        tree = parse(args.expression)
        return await asyncio.to_thread(value_of, tree, args.expression)


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic expression; ValueError naming what was refused."""
    return value_of(parse(expression), expression)


def parse(expression: str) -> ast.Expression:
    text = expression.translate(_SPELLINGS).replace(",", "").strip()
    if not text:
        raise ValueError("empty expression")
    if len(text) > _MAX_LENGTH:
        raise ValueError(f"expression longer than {_MAX_LENGTH} characters")
    try:
        return ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from exc


def value_of(tree: ast.Expression, expression: str) -> int | float:
    value = _walk(tree.body)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"result is not finite: {expression!r}")
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53 and _all_integers(tree.body):
        return int(value)
    return value


def _walk(node: ast.AST) -> int | float:
    match node:
        case ast.Constant(value=bool()):
            raise ValueError("booleans are not numbers here")
        case ast.Constant(value=int() | float() as value):
            return value
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            a, b = _walk(left), _walk(right)
            if isinstance(op, ast.Pow) and b > 1 and abs(a) > 1 and abs(b) * math.log10(abs(a)) > _MAX_DIGITS:
                raise ValueError(f"result of {a}**{b} would have more than {_MAX_DIGITS} digits")
            try:
                return _BINARY[type(op)](a, b)
            except ZeroDivisionError as exc:
                raise ValueError("division by zero") from exc
            except OverflowError as exc:
                raise ValueError("result too large") from exc
        case ast.UnaryOp(op=op, operand=operand) if type(op) in _UNARY:
            return _UNARY[type(op)](_walk(operand))
        case ast.Name(id=name):
            raise ValueError(f"names are not allowed: {name!r}")
        case ast.Call():
            raise ValueError("function calls are not allowed")
        case ast.BinOp(op=op):
            raise ValueError(f"operator not allowed: {type(op).__name__}")
    raise ValueError(f"not allowed in arithmetic: {type(node).__name__}")


def _all_integers(node: ast.AST) -> bool:
    """Whether every literal is an integer, so an integral float result (from /) can be shown as an int."""
    return all(not isinstance(n, ast.Constant) or isinstance(n.value, int) for n in ast.walk(node))
