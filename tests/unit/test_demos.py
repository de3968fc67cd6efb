"""Learned demonstrations: the program a verified run chose becomes a worked example, listing the calls that gate it,
and the learned bank keeps the hand-written examples first."""

from __future__ import annotations

from stepwise.evals.demos import bank_with, calls_of, demonstration
from stepwise.evals.from_runs import answer_type
from stepwise.reasoning.examples import Example, ExampleBank


def test_calls_are_the_tools_ask_and_read_not_arithmetic():
    """sql, python, ask and read gate an example; the calculator's functions (abs, round) and docs do not."""
    program = 'n = sql("SELECT count(*) FROM kites")\nnote = read("the harbour wall")\nguess = ask(f"why {note}")\n' \
              "answer = round(abs(n - 2))"
    assert calls_of(program, ["calculator", "sql", "docs"]) == ("ask", "read", "sql")
    assert calls_of("answer = 2 * 3", ["calculator", "python"]) == ()


def test_a_demonstration_is_the_chosen_program():
    """The vote's chosen sample is the example's program (stripped); a sample that failed to compile is none."""
    sampled = {"programs": ["answer = 1 - 1", "  answer = 4 + 5\n"], "errors": [None, None], "chosen": 1}
    assert demonstration("How many kites?", sampled, ["calculator"]) == Example("How many kites?", "answer = 4 + 5")
    assert demonstration("q", {"programs": ["answer = ("], "errors": ["line 1: bad"], "chosen": 0}, []) is None
    assert demonstration("q", {"programs": ["answer = 1"], "errors": [None], "chosen": -1}, []) is None


def test_the_learned_bank_keeps_the_hand_written_examples_first():
    """Hand-written examples come first; a learned question already in the bank is not repeated."""
    hand = ExampleBank([Example("What is two and two?", "answer = 2 + 2")])
    learned = [Example("What is two and two?", "answer = 4"), Example("What is ten less one?", "answer = 10 - 1")]
    assert [e.program for e in bank_with(hand, learned)] == ["answer = 2 + 2", "answer = 10 - 1"]


def test_recorded_answers_are_scored_as_numbers_when_they_are_numbers():
    """--from-runs: an expected 42 or "42.5" is scored as a number, words as text."""
    assert [answer_type(v) for v in (42, "42.5", "Ostrava", True)] == ["number", "number", "text", "text"]
