"""An optional argument of a function call whose value the conversation does not state is the model's guess and is
left out; required arguments, flags and a parameter's own default stay. What counts as stated is lenient: a number as
written, as a percent's fraction or a number word; a string by its letters or by the starts of its words."""

from __future__ import annotations

from stepwise.reasoning.stated import Stated, stated_arguments, without_defaults
from stepwise.reasoning.types import Function, FunctionCall, Message
from tests.unit.test_function_replies import call
from tests.unit.test_function_samples import Sampler, answer

FIELD = Function("field", "The electric field of a charge.", {"type": "object", "properties": {
    "charge": {"type": "number"}, "distance": {"type": "number"},
    "permittivity": {"type": "number"}, "medium": {"type": "string", "default": "vacuum"},
    "unit": {"type": "string"}, "detailed": {"type": "boolean"}}, "required": ["charge", "distance"]})


def test_numbers_count_as_written_as_a_fraction_of_a_percent_or_in_words():
    """5% states 0.05, "twelve" 12, "6mm" 6, 5 also -5; "5,10 and 15" states 5, 10 and 15, never 510; 1,500 is one
    number."""
    text = Stated("A rate of 5% for twelve months, smoothed at 6mm, for 5,10 and 15 years, 1,500 dollars.")
    assert all(text.states(n) for n in (0.05, 5, 12, 6, 10, 15, 1500, 1500.0))
    assert text.states(-5) and text.states(0) and text.states(1)  # a sign aside; 0 and 1 are left implied
    assert not any(text.states(n) for n in (510, 8854, 2023, 0.5))


def test_strings_count_by_their_letters_or_by_the_starts_of_their_words():
    """Case, spaces and punctuation aside ("new-york" is "New York"), or every word of three letters or more
    beginning like one of the text's ("Dollar" for "dollars", "detailed" for "in detail")."""
    text = Stated("Convert 200 dollars from New York, in detail, for case XY1234.")
    assert all(text.states(s) for s in ("new-york", "NEWYORK", "Dollar", "detailed", "xy1234", ["Dollar", "New York"]))
    assert not any(text.states(s) for s in ("Vegan", "2023-05-15", "ZZ9999", ["Dollar", "euro"]))


def test_flags_and_null_are_never_guesses():
    """True, False and null say nothing a request could state; an object is stated when each of its values is."""
    text = Stated("Weather in Paris.")
    assert text.states(True) and text.states(False) and text.states(None)
    assert text.states({"city": "Paris"}) and not text.states({"city": "Rome"})


def test_only_optional_unstated_arguments_that_are_not_the_default_are_left_out():
    """The permittivity and the unit are guesses; the required charge and distance stay whatever they are, the
    medium stays as the declared default, the flag stays."""
    written = {"charge": 5, "distance": 7, "permittivity": 8854, "medium": "vacuum", "unit": "N/C", "detailed": True}
    kept = stated_arguments(written, FIELD.parameters, Stated("The field of a 5 C charge 2 m away?"))
    assert kept == {"charge": 5, "distance": 7, "medium": "vacuum", "detailed": True}


async def test_the_calls_a_caller_gets_leave_unstated_optional_arguments_out():
    """Through a function-calling turn: the greedy reply's guessed permittivity is gone, its stated unit kept."""
    written = call("field", {"charge": 5, "distance": 2, "permittivity": 8854, "unit": "N/C"})
    got = await answer(Sampler(written, None), functions=(FIELD,), samples=1,
                       messages=[Message("user", "The field of a 5 C charge 2 m away, in N/C?")])
    assert got.tool_calls == [FunctionCall("field", {"charge": 5, "distance": 2, "unit": "N/C"})]


async def test_a_value_an_earlier_turn_gave_counts_as_stated():
    """A tool's result, given back as a user turn, states the values the next call takes from it."""
    written = call("field", {"charge": 5, "distance": 2, "permittivity": 8.854})
    got = await answer(Sampler(written, None), functions=(FIELD,), samples=1, messages=[
        Message("user", "The field of a 5 C charge 2 m away, with the permittivity looked up first?"),
        Message("assistant", call("lookup", {"name": "permittivity"})),
        Message("user", "<tool_response>\n8.854\n</tool_response>")])
    assert got.tool_calls[0].arguments["permittivity"] == 8.854


def test_values_no_text_could_hold_are_handled_not_raised():
    """An integer past a double's range is not stated; a value nested past Python's stack is kept (not judged); a
    schema whose `required` is no list leaves every argument optional."""
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    odd_schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": 5}
    kept = stated_arguments({"n": 10**400, "deep": deep}, odd_schema, Stated("Nothing stated here."))
    assert list(kept) == ["deep"]


def test_a_value_among_the_parameters_own_options_is_a_pick_not_a_guess():
    """"backstage access" asks for the offered "Backstage Pass": a value among the parameter's `enum` (each element,
    for a list of them) stays; a value outside it, or of another type than the option, is still a guess."""
    schema = {"type": "object", "properties": {
        "add_ons": {"type": "array", "items": {"type": "string", "enum": ["Backstage Pass", "VIP Seating"]}},
        "tier": {"type": "integer", "enum": [1, 2, 3]}, "seat": {"type": "string", "enum": ["aisle"]}}}
    text = Stated("A ticket with backstage access.")
    written = {"add_ons": ["Backstage Pass"], "tier": 3, "seat": "window"}
    assert stated_arguments(written, schema, text) == {"add_ons": ["Backstage Pass"], "tier": 3}
    assert stated_arguments({"add_ons": ["Backstage Pass", "Meet"], "tier": 3.0}, schema, text) == {}


async def test_a_call_that_differs_only_by_an_argument_set_to_its_default_is_the_same_call():
    """The medium written as its default "vacuum" in one call and left out of the next: one call, the first."""
    first = call("field", {"charge": 5, "distance": 2, "medium": "vacuum"})
    again = call("field", {"charge": 5, "distance": 2})
    other = call("field", {"charge": 5, "distance": 3})
    got = await answer(Sampler("\n".join([first, again, other]), None), functions=(FIELD,), samples=1,
                       messages=[Message("user", "The field of a 5 C charge 2 m and 3 m away?")])
    assert got.tool_calls == [FunctionCall("field", {"charge": 5, "distance": 2, "medium": "vacuum"}),
                              FunctionCall("field", {"charge": 5, "distance": 3})]
    assert without_defaults({"medium": "vacuum", "detailed": 1}, {"properties": {
        "medium": {"default": "vacuum"}, "detailed": {"default": True}}}) == {"detailed": 1}
