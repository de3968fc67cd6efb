"""How a question asks: what counts things (a whole number answers it) and what measures."""

from __future__ import annotations

import pytest

from stepwise.reasoning.questions import counts_things, numbers_in, spaced_lists


@pytest.mark.parametrize(("question", "counting"), [
    ("Charles slew 0.75 as many. How many ogres has Charles slain? Give the result as your final answer.", True),
    ("How many of the students are leaving early?", True),
    ("How many hours does he spend writing a week?", False),
    ("How many more square feet is the field than the yard?", False),
    ("How many kilometres farther does she travel?", False),
    ("How much does she earn in a week?", False),
    ("Which farm has more hens, Oak or Pine?", False),
])
def test_a_question_counts_things_when_it_asks_how_many_of_something_that_is_not_a_measure(question, counting):
    """"How many ogres" counts; "how many hours", "square feet" or "kilometres" measure; "how much" is no count."""
    assert counts_things(question) is counting


def test_the_numbers_a_program_uses_are_counted_as_written_or_as_a_percents_fraction():
    """80% used as 0.8 counts; 0 and 1 are never required; a number inside a query's text counts too."""
    from stepwise.reasoning.questions import given_numbers, numbers_used

    given = given_numbers("Of 1,200 students, 80% play; 1 in 3 of the rest sing. How many sing?")
    assert given == {1200.0, 80.0, 3.0}
    assert numbers_used("players = 1200 * 0.8\nanswer = (1200 - players) / 3", given) == 1.0
    assert numbers_used("answer = 1200 / 3", given) == 2 / 3
    assert numbers_used('answer = sql("SELECT count(*) FROM t WHERE n > 80")', frozenset({80.0})) == 1.0


def test_a_percent_used_as_the_factor_of_a_rise_or_a_fall_counts_as_used():
    """A 25% rise written `* 1.25` and a 25% fall `* 0.75` use the 25, as `* 25 / 100` does."""
    from stepwise.reasoning.questions import given_numbers, numbers_used

    given = given_numbers("16 shares at $32 rise 25%, then fall 25%. What are they worth?")
    assert numbers_used("answer = 16 * 32 * 1.25 * 0.75", given) == 1.0
    assert numbers_used("answer = 16 * 32 * 25 / 100", given) == 1.0
    assert numbers_used("answer = 16 * 32 * 1.5", given) == 2 / 3


@pytest.mark.parametrize(("question", "offered", "way"), [
    ("For 200 minutes a month, which plan is cheaper, Oak or Pine?", ["Oak", "Pine"], "min"),
    ("Which shop is cheaper per pen, Corder's or Dunn's?", ["Corder's", "Dunn's"], "min"),
    ("Who has read more pages, Ines or Kofi?", ["Ines", "Kofi"], "max"),
    ("Which is the tallest: Ash, Beech, or Cedar?", ["Ash", "Beech", "Cedar"], "max"),
    ("Which is larger, 2 to the power 10 or 10 cubed, and by how much?", [], "max"),
    ("Is the tea red or green?", [], None),
])
def test_a_choice_offers_the_names_ending_its_ask_and_goes_the_way_its_comparative_says(question, offered, way):
    """The options are the short names joined by "or" after the ask's last comma or colon; cheaper/fewer choose the
    smallest, more/taller the largest."""
    from stepwise.reasoning.questions import direction, options

    assert options(question) == offered and direction(question) == way


@pytest.mark.parametrize(("question", "up"), [
    ("27 people travel in vans of 6 seats. How many vans are needed?", True),
    ("How many boxes does she need for 50 eggs?", True),
    ("How many tables are enough for 30 guests?", True),
    ("How many people lead at least one project?", False),
    ("How many slices does each friend get if they need to share 8 slices among 3?", False),
    ("How many full boxes are needed for 50 eggs?", False),
    ("How many full boxes of 12 can she fill with 50 eggs?", False),
    ("Ben has half as many tubes as Ana. How many tubes does Ben have?", False),
])
def test_a_count_of_what_suffices_rounds_up(question, up):
    """"Needed", "need" (not "need to"), "enough" count what suffices, unless full ones are counted."""
    from stepwise.reasoning.questions import counts_up

    assert counts_up(question) is up


@pytest.mark.parametrize(("text", "shown"), [
    ("Find the factorial of 5,10 and 15.", "Find the factorial of 5, 10 and 15."),
    ("for 1,5 and 10 years", "for 1, 5 and 10 years"),
    ("$15,000 and 1,234,567.5 people", "$15,000 and 1,234,567.5 people"),
    ("sides 2,4,8 and 12,3456", "sides 2, 4, 8 and 12, 3456"),
    ("a, b and 5, 10", "a, b and 5, 10"),
])
def test_a_list_of_numbers_is_spaced_where_a_comma_does_not_open_a_thousands_group(text, shown):
    """A comma between digits is a list's unless three digits and no more follow it; a list is shown spaced."""
    assert spaced_lists(text) == shown
    assert numbers_in(spaced_lists(text)) == numbers_in(text)


def test_a_range_stop_counts_the_last_number_it_counts_to_as_used():
    """"The whole numbers from 1 to 20" is `range(1, 21)`: the 20 is used; a stop alone says nothing of its start."""
    from stepwise.reasoning.questions import numbers_used

    assert numbers_used("answer = sum(range(1, 21)) - 15 * 13", frozenset({20.0, 15.0, 13.0})) == 1.0
    assert numbers_used("answer = sum(range(21))", frozenset({20.0})) == 0.0


def test_a_number_converted_to_a_unit_a_hundred_or_a_thousand_times_apart_counts_as_used():
    """"A 750 ml bottle" priced per litre is `/ 0.75`; "1.50 euros" in cents is 150: the numbers are used."""
    from stepwise.reasoning.questions import numbers_used

    assert numbers_used("answer = (3.60 / 2 - 1.50 / 0.75) * 100", frozenset({2.0, 3.6, 750.0, 1.5})) == 1.0
    assert numbers_used("answer = 150 * 4", frozenset({1.5, 4.0})) == 1.0
    assert numbers_used("answer = 3.60 / 2", frozenset({2.0, 3.6, 750.0})) == 2 / 3


@pytest.mark.parametrize(("question", "periods"), [
    ("He saves 45 euros a week. After how many weeks of saving can he first afford the bike?", True),
    ("How many months will it take her to afford the car?", True),
    ("After how many days is the tank full?", True),
    ("How many weeks did she spend there first?", False),
    ("How many weeks does she spend there first?", False),
    ("How many months can she afford to stay?", False),
    ("How many days does the first leg of the trip take?", False),
    ("How many days does the trip last?", False),
    ("How many minutes pass until she gets home?", False),
])
def test_a_question_counts_the_periods_until_something_is_first_reached(question, periods):
    """Days, weeks, months or years "after" which, or until, something is first reached or afforded: whole periods
    (the planner rounds a fraction up); a time spent or lasting is a measure. Neither is a count of things."""
    from stepwise.reasoning.questions import counts_periods

    assert counts_periods(question) is periods
    assert counts_things(question) is False


@pytest.mark.parametrize(("question", "who"), [
    ("Who does Aino Virtanen report to?", True),
    ("To whom does the head of Sales report?", True),
    ("Under whom did Aino work?", True),
    ("Who founded the company that built the Varn Bridge?", True),
    ("Whose bike is faster?", False),
    ("How many people report to Kenji Watanabe?", False),
])
def test_a_question_asking_who_asks_for_a_person(question, who):
    """"Who", "whom" and "to whom" ask for someone, whom a name answers; "whose" and "how many" do not."""
    from stepwise.reasoning.questions import asks_who

    assert asks_who(question) is who


@pytest.mark.parametrize(("question", "named"), [
    ("Who does Aino Virtanen report to?", True),
    ("Which department runs projects with the largest combined budget?", True),
    ("In which office does Lotte van der Heijden work?", True),
    ("What project has the latest start date?", True),
    ("In which year was the engineer who designed the viaduct born?", False),
    ("On which floor does Greta's department sit?", False),
    ("What is the total budget of the Sales department?", False),
    ("What percentage of the staff are active?", False),
    ("Which is cheaper per notebook, Shop A or Shop B?", False),
    ("Which of the three plans costs least?", False),
    ("How many people work in Tallinn?", False),
])
def test_a_question_asking_who_or_which_thing_is_answered_by_a_name(question, named):
    """Who, or which or what thing, is answered by a name; which year, floor or percentage by a number, "what is"
    by anything, and "which is", "which of" choose between options."""
    from stepwise.reasoning.questions import asks_for_name

    assert asks_for_name(question) is named


@pytest.mark.parametrize(("question", "digits"), [
    ("What is her average speed, in km/h rounded to one decimal place?", 1),
    ("What is the average fare, in euros, rounded to two decimal places?", 2),
    ("How much does each pupil pay, in euros, to the nearest cent?", 2),
    ("How many cents does each pupil pay, to the nearest cent?", 0),
    ("What is the average salary? Round to the nearest whole number.", 0),
    ("About how many people live there, to the nearest hundred?", -2),
    ("How many minutes does the trip take?", None),
    ("How far is it from the farm to the nearest station?", None),
    ("How much does he pay, rounded up to the nearest dollar?", None),
    ("How many fans came, to the nearest ten thousand?", -4),
    ("What is the average, to the nearest tenths?", 1),
])
def test_a_question_says_how_its_answer_is_rounded(question, digits):
    """Decimal places asked in words or as the nearest tenth, cent, unit or ten thousand; a cent is two places of a
    euro but none of an answer in cents; no such words, a rounding up or down, or the nearest thing that is no unit:
    no rounding."""
    from stepwise.reasoning.questions import rounding

    assert rounding(question) == digits
