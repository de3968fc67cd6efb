"""Scorers: numbers compared by value, text exactly or as whole words, and Game of 24 expressions evaluated from
their AST, each given number used exactly once, value 24."""

from __future__ import annotations

from fractions import Fraction

import pytest

from stepwise.evals.scoring import check_24, evaluate_24, numbers_in, score_24, score_exact, score_number, score_text
from stepwise.evals.types import Item


def item(answer, answer_type="number", **meta) -> Item:
    return Item("x", "q", answer, answer_type, meta)


def test_numbers_in_reads_thousands_separators_and_signs():
    """'1,234.5' is one number, a leading minus counts, digits inside words do not."""
    assert numbers_in("paid $1,234.50 then -3, v2 and 7.") == [1234.5, -3.0, 7.0]


@pytest.mark.parametrize("predicted, correct", [
    ("There are 70 students in total.", True),
    ("12 + 24 + 34 = 70", True),
    ("70.0", True),
    (70, True),
    ("The answer is 1,070.", False),
    ("70 students, 12 of them", False),  # the last number is the answer
    ("no idea", False),
    (None, False),
    (r"So \(\boxed{70}\) students came, 12 of them late.", True),  # a marked result, then the question restated
    (r"\boxed{70 \text{ students}}", True),
    (r"Not \boxed{12} but \boxed{70}.", True),  # the last one marked
    (r"\boxed{12} students, 70 in all", False),
])
def test_score_number_takes_the_boxed_or_else_the_last_number(predicted, correct):
    """The number in the last `\\boxed{…}` is the answer, else the last number stated; it must equal the expected
    value."""
    assert score_number(item("70"), predicted).correct is correct


def test_score_number_says_what_it_saw():
    """A wrong number is named in the note, next to the expected one."""
    assert score_number(item("93"), "it is 39").note == "got 39, expected 93"


def test_score_exact_and_text():
    """exact ignores case, spaces and a final stop; text wants the expected words inside the answer."""
    assert score_exact(item("Paris", "exact"), "  paris. ").correct
    assert not score_exact(item("Paris", "exact"), "Paris, France").correct
    assert score_text(item("Paris", "text"), "The capital is Paris.").correct
    assert not score_text(item("Paris", "text"), "Parisian food").correct


def test_evaluate_24_is_exact_and_lists_the_numbers_used():
    """Fractions stay exact (8/(3-8/3) is 24, not 23.99…); the numbers used are listed with repeats."""
    assert evaluate_24("8 / (3 - 8 / 3)") == (Fraction(24), [8, 3, 8, 3])
    assert evaluate_24("6 × 4 ÷ 1") == (Fraction(24), [6, 4, 1])


@pytest.mark.parametrize("expression, reason", [
    ("__import__('os').system('true')", "Call is not allowed"),
    ("x * 24", "Name is not allowed"),
    ("2 ** 4 + 8", "BinOp is not allowed"),
    ("4 / (2 - 2) + 6", "division by zero"),
    ("-4 + 28", "negation"),
    ("24.0", "Constant is not allowed"),
    ("(4 + ", "not an expression"),
])
def test_evaluate_24_refuses_anything_but_integer_arithmetic(expression, reason):
    """Names, calls, powers, floats, negation and division by zero are refused, with the reason."""
    with pytest.raises(ValueError, match=reason):
        evaluate_24(expression)


def test_check_24_wants_each_number_exactly_once():
    """Right value with a number missing, repeated or foreign is wrong; so is a right set with another value."""
    assert check_24("(10 - 6) * 5 + 4", [4, 5, 6, 10]).correct
    assert not check_24("(10 - 6) * 6", [4, 5, 6, 10]).correct
    assert check_24("(10 - 6) * 5 + 4 + 4 - 4", [4, 5, 6, 10]).note == "uses [4, 4, 4, 5, 6, 10], not [4, 5, 6, 10]"
    assert check_24("4 + 5 + 6 + 10", [4, 5, 6, 10]).note == "4 + 5 + 6 + 10 = 25"


def test_score_24_finds_the_expression_in_a_sentence():
    """An answer that wraps the expression in words, or follows it with '= 24', is read."""
    puzzle = item(24, "expression", numbers=[4, 5, 6, 10])
    assert score_24(puzzle, "The expression is (10 - 6) * 5 + 4 = 24.").correct
    assert score_24(puzzle, "(10-6)*5+4").correct
    assert not score_24(puzzle, "I cannot find one.").correct
    assert not score_24(puzzle, "10 + 6 + 5 + 4 = 25").correct
