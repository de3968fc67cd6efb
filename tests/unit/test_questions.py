"""How a question asks: what counts things (a whole number answers it) and what measures."""

from __future__ import annotations

import pytest

from reasoning.questions import counts_things


@pytest.mark.parametrize(("question", "counting"), [
    ("Charles slew 0.75 as many. How many ogres has Charles slain? Give the result as your final answer.", True),
    ("How many of the students are leaving early?", True),
    ("How many hours does he spend writing a week?", False),
    ("How many more square feet is the field than the yard?", False),
    ("How many kilometres farther does she travel?", False),
    ("How much does she earn in a week?", False),
    ("Which farm has more hens, Alder or Birch?", False),
])
def test_a_question_counts_things_when_it_asks_how_many_of_something_that_is_not_a_measure(question, counting):
    """"How many ogres" counts; "how many hours", "square feet" or "kilometres" measure; "how much" is no count."""
    assert counts_things(question) is counting
