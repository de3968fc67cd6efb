"""Scorers: a prediction against an item's expected answer. Each returns a Score whose note says what it saw."""

from __future__ import annotations

import ast
import math
import re
from collections import Counter
from fractions import Fraction
from typing import Any

from stepwise.evals.types import Item, Score
from stepwise.reasoning.questions import final_number, numbers_stated
from stepwise.tools.source import parse_expression

# Read the way the planner reads a worked answer (reasoning/questions.py): "1,234.5" is one number; "v2" is none.
numbers_in = numbers_stated


def score_number(item: Item, predicted: Any, rel_tol: float = 1e-6) -> Score:
    """Correct when the prediction's final number equals the expected one (relative tolerance 1e-6): the number in
    its last `\\boxed{…}` if it marks its result so, else its last number, because an answer sentence states its
    working before its result more often than after (`questions.final_number`)."""
    expected = float(item.answer)
    if isinstance(predicted, (int, float)) and not isinstance(predicted, bool):
        value = float(predicted)
    else:
        found = final_number(str(predicted or ""))
        if found is None:
            return Score(False, "no number in the answer")
        value = found
    if math.isclose(value, expected, rel_tol=rel_tol, abs_tol=rel_tol):
        return Score(True)
    return Score(False, f"got {value:g}, expected {expected:g}")


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip().strip(".").strip().casefold()


def score_exact(item: Item, predicted: Any) -> Score:
    """Correct when equal to the expected text, ignoring case, surrounding space and a final full stop."""
    if _normal(predicted) == _normal(item.answer):
        return Score(True)
    return Score(False, f"{_normal(predicted)[:80]!r} is not {_normal(item.answer)!r}")


def score_text(item: Item, predicted: Any) -> Score:
    """Correct when the expected text appears in the answer as whole words, ignoring case."""
    expected = _normal(item.answer)
    if re.search(rf"(?<!\w){re.escape(expected)}(?!\w)", _normal(predicted)):
        return Score(True)
    return Score(False, f"{expected!r} not in the answer")


SCORERS = {"number": score_number, "exact": score_exact, "text": score_text}


def score_by_type(item: Item, predicted: Any) -> Score:
    return SCORERS[item.answer_type](item, predicted)


# Game of 24 ---------------------------------------------------------------------------------------------------

_OPERATORS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
              ast.Div: lambda a, b: a / b}
_EXPRESSION = re.compile(r"[\d\s+\-*/×÷().]+")


def evaluate_24(expression: str) -> tuple[Fraction, list[int]]:
    """The exact value of an arithmetic expression and the numbers it uses. Only integers, + - * / and
    parentheses are accepted (ValueError names anything else); × and ÷ are read as * and /."""
    text = expression.replace("×", "*").replace("÷", "/")
    try:
        tree = parse_expression(text.strip())
    except SyntaxError as exc:
        raise ValueError(f"not an expression: {expression!r}") from exc
    used: list[int] = []

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            used.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Div) and right == 0:
                raise ValueError("division by zero")
            return _OPERATORS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            raise ValueError("negation is not one of the four operations")
        raise ValueError(f"{type(node).__name__} is not allowed")

    return walk(tree.body), used


def check_24(expression: str, numbers: list[int]) -> Score:
    """An expression solves the puzzle when it uses each given number exactly once and equals 24 (within 1e-6)."""
    try:
        value, used = evaluate_24(expression)
    except ValueError as exc:
        return Score(False, str(exc))
    if Counter(used) != Counter(numbers):
        return Score(False, f"uses {sorted(used)}, not {sorted(numbers)}")
    if abs(value - 24) > 1e-6:
        return Score(False, f"{expression.strip()} = {float(value):g}")
    return Score(True)


def score_24(item: Item, predicted: Any) -> Score:
    """The answer may be a sentence: every run of expression characters in it (the part before an '=') is tried,
    and one solving the puzzle is enough — a run that uses exactly the four numbers cannot solve it by chance."""
    text = str(predicted or "")
    candidates = sorted({c.strip(" .\n") for c in _EXPRESSION.findall(text) if re.search(r"\d", c)}, key=len,
                        reverse=True)
    if not candidates:
        return Score(False, "no expression in the answer")
    # Checked lazily, longest first: the first that solves it, else the first verdict (the longest run's) says why not.
    verdicts = (check_24(candidate, item.meta["numbers"]) for candidate in candidates)
    first = next(verdicts)
    return first if first.correct else next((v for v in verdicts if v.correct), first)
