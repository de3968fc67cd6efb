"""The calculator: the arithmetic word problems need, walked from the AST, within a float's range, refusing everything
else by name — and no input that takes long or raises anything but ValueError."""

from __future__ import annotations

import math
import re
import time
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepwise.tools.calculator import Calculator, CalculatorArgs, evaluate


def check(expression: str, value: int | float) -> None:
    result = evaluate(expression)
    assert result == value and type(result) is type(value), f"{expression} gave {result!r}"


@pytest.mark.parametrize(
    ("expression", "value"),
    [("17*23", 391), ("(17*23)+(45*12)", 931), ("2+3*4", 14), ("7/2", 3.5), ("6/3", 2), ("2**10", 1024),
     ("-(3-5)", 2), ("1.5*2", 3.0), ("17 // 5", 3), ("17 % 5", 2), ("-7 % 3", 2), ("7 % -2", -1), ("2**-2", 0.25),
     ("2(3+4)", 14), ("(1+2)(3+4)", 21)],
)
def test_arithmetic_is_evaluated(expression, value):
    """Numbers, + - * / // % **, signs and parentheses evaluate (`%` with an operand after it is the remainder;
    a number before a parenthesis multiplies it, as on paper)."""
    check(expression, value)


@pytest.mark.parametrize(
    ("expression", "value"),
    [("2^3", 8), ("6×7", 42), ("6·7", 42), ("8÷2", 4), ("10−4", 6), ("10–4", 6), ("1\u2009000 + 1", 1001),
     ("$57*2", 114), ("$ 12.50*4", 50.0), ("$1,200/4", 300), ("math.sqrt(81)", 9), ("math.factorial(5)", 120),
     ("2*π", 2 * math.pi)],
)
def test_the_notation_models_write_means_what_they_mean(expression, value):
    """^ is a power, × · ÷ − – the operators, `$` before an amount is money, `math.` is dropped, π is pi."""
    check(expression, value)


@pytest.mark.parametrize(
    ("expression", "value"),
    [("1,000*3", 3000), ("1,000,000/4", 250000), ("2,500.50*2", 5001.0), ("(1,000)*3", 3000),
     ("gcd(1071,462)", 21), ("max(1,000, 2)", 2), ("sum([1,000, 2])", 3), ("sum((1,000), 2)", 1002)],
)
def test_a_comma_groups_thousands_except_between_a_functions_arguments(expression, value):
    """`1,000` is a thousand outside a call's parentheses or a list; inside them commas separate arguments (so
    `max(1,000, 2)` is max(1, 0, 2), `sum([1,000, 2])` is 3); a group in its own parentheses is read as a number
    again."""
    check(expression, value)


@pytest.mark.parametrize(
    ("expression", "value"),
    [("7!", 5040), ("(3+4)!", 5040), ("2*3!", 12), ("-3!", -6), ("2^3!", 64), ("3!^2", 36), ("factorial(3)!", 720),
     ("0!", 1), ("7.0!", 5040), ("15%*80", 12), ("15% of 80", 12), ("15 % of $80", 12), ("80*15%", 12),
     ("50%", 0.5), ("200*(1+10%)", 220), ("(10+10)%*5", 1), ("10% - 3", -2.9), ("10%-3", -2)],
)
def test_postfix_factorial_and_percent(expression, value):
    """`n!` is factorial(n) of the number or group before it; `x%` with no operand after it (end, `)`, `*`, `/`,
    a spaced sign, or "of") is x/100, while `10%-3` — a sign attached to an operand — is the remainder."""
    check(expression, value)


@pytest.mark.parametrize(
    ("expression", "value"),
    [("gcd(1071, 462)", 21), ("gcd(12, 18, 27)", 3), ("gcd(12.0, 8)", 4), ("lcm(4, 6)", 12), ("lcm(4, 6, 10)", 60),
     ("factorial(5)", 120), ("comb(5, 2)", 10), ("comb(5, 7)", 0), ("perm(5, 2)", 20), ("perm(4)", 24),
     ("sqrt(16)", 4), ("sqrt(16.0)", 4.0), ("sqrt(2)", math.sqrt(2)), ("floor(7.5)", 7), ("floor(-7.5)", -8),
     ("ceil(7.2)", 8), ("min(7)", 7), ("max([7.5])", 7.5), ("round(2.5)", 3), ("round(-2.5)", -3),
     ("round(7.45, 1)", 7.5), ("round(2.675, 2)", 2.68),
     ("round(1234, -2)", 1200), ("round(1250, -2)", 1300), ("round(7, 2)", 7), ("min(3, 1, 2)", 1),
     ("max([1, 5, 2])", 5), ("abs(-4)", 4), ("abs(-4.5)", 4.5), ("sum([1, 2, 3])", 6), ("sum(1, 2, 3)", 6),
     ("sum([])", 0), ("sum([0.5, 0.25])", 0.75), ("pi", math.pi), ("e**2", math.e**2)],
)
def test_the_functions_word_problems_need(expression, value):
    """gcd lcm factorial comb perm sqrt floor ceil round min max abs sum, and pi and e; round halves away from
    zero on the number as written (people's rounding, not Python's round(2.5) == 2)."""
    check(expression, value)


@pytest.mark.parametrize(("expression", "value"), [("int(1868)", 1868), ("int(7.9)", 7), ("int(-7.9)", -7),
                                                 ("int(10/4)", 2), ("int(2.5*4)", 10)])
def test_int_is_pythons_truncation(expression, value):
    """`int(x)`, which a coder model writes around a number it was given (a year an `ask` answered), is Python's:
    toward zero."""
    check(expression, value)


@pytest.mark.parametrize(
    ("expression", "value"),
    [("sum(range(1, 21))", 210), ("sum(range(1, 21)) - 15 * 13", 15), ("sum(range(5))", 10),
     ("sum(range(0, 100, 7))", 735), ("max(range(3))", 2), ("min(range(10, 0, -2))", 2), ("sum(range(2.0, 4))", 5),
     ("sum(range(10, 0, -3))", 22), ("max(range(10, 0, -3))", 10), ("sum(range(100000))", 4999950000),
     ("sum(range(-5, 3))", -12)],
)
def test_a_range_is_what_python_means_as_the_argument_of_sum_min_or_max(expression, value):
    """A coder model writes "the whole numbers from 1 to 20" as `sum(range(1, 21))`: range's Python meaning."""
    check(expression, value)


@pytest.mark.parametrize(("expression", "value"), [("len([4, 5, 9])", 3), ("len([])", 0), ("len([7, 8]) * 2", 4),
                                                 ("len(range(1, 11))", 10), ("len(range(5, 1))", 0)])
def test_len_counts_a_list_or_a_range(expression, value):
    """`len(members)` of a query's column of distinct values is how a coder model counts them."""
    check(expression, value)


def test_len_counts_a_substituted_column_of_names():
    """A query's column of names, substituted as JSON, is counted: its texts are not arithmetic and need not be."""
    names = "[" + ", ".join(f'"Person {i}"' for i in range(50)) + "]"
    check(f"len({names})", 50)
    check('len(["Ana Ruiz", "Bo Li"]) * 2', 4)
    with pytest.raises(ValueError, match="character not allowed"):
        evaluate('sum(["Ana Ruiz"])')


@pytest.mark.parametrize("expression", ["len(5)", "len(2, 3)", "len()"])
def test_len_of_anything_but_one_list_is_refused(expression):
    """A number has no length: `len` takes one list or range, as in Python."""
    with pytest.raises(ValueError, match="len takes one list"):
        evaluate(expression)


@pytest.mark.parametrize(
    ("expression", "message"),
    [("range(3)", "only as the argument of sum, min, max or len"), ("abs(range(3))", "only as the argument"),
     ("sum(range(10**7))", "10,000,000 numbers, over the 100,000 allowed"), ("sum(range(5, 1))", "range is empty"),
     ("sum(range(10**30))", "too many numbers, over the 100,000"), ("max(range(1e308))", "too many numbers"),
     ("sum(range(1.5, 3))", "whole numbers, got 1.5"), ("sum(range(1, 5, 0))", "step must not be 0"),
     ("sum(range())", "1 to 3 arguments"), ("sum(range(1, 2, 3, 4))", "1 to 3 arguments")],
)
def test_a_range_anywhere_else_or_too_long_is_refused_by_name(expression, message):
    """A range is refused outside sum, min and max, past 100,000 numbers, empty, or of fractions."""
    with pytest.raises(ValueError, match=message):
        evaluate(expression)


@pytest.mark.parametrize(
    ("expression", "value"),
    [("10/4*2", 5), ("15/100*80", 12), ("sqrt(2)**2", 2.0000000000000004), ("0.5*4", 2.0), ("pi/pi", 1.0),
     ("floor(7/2)", 3), ("2**60/2", 2**59), ("10**300/3*3", 10**300),
     ("0.1+0.2", 0.3), ("19.99*3", 59.97), ("200*(1+10/100)", 220), ("1.5*2", 3.0), ("floor(7.5)", 7)],
)
def test_results_are_exact_and_whole_ones_are_ints_when_written_in_integers(expression, value):
    """`/` and decimal literals are exact fractions until the end (0.1+0.2 is 0.3); a whole result is an int when
    every literal was an integer or a function gives whole numbers (floor), else a float as written (1.5*2 is 3.0)."""
    check(expression, value)


@pytest.mark.parametrize(
    ("expression", "message"),
    [("x+1", "names are not allowed: 'x'"), ("log(2)", "unknown function 'log'"), ("__import__(1)", "unknown function"),
     ("'a'", "character not allowed"), ("(1).real", "not allowed in arithmetic: Attribute"), ("[1,2]", "a list"),
     ("abs([1])", "a list"), ("sum([1, [2]])", "a list"), ("1 if 1 else 2", "IfExp"), ("lambda: 1", "':'"),
     ("5!=3", "comparisons"), ("2 > 1", "comparisons"), ("x = 3", "assignments"), ("1 is 1", "comparisons"),
     ("not 1", "operator not allowed: Not"), ("1 & 2", "character not allowed: '&'"), ("1,00", "a comma outside"),
     ("1/0", "division by zero"), ("5 % 0", "division by zero"), ("0**-1", "division by zero"),
     ("(-8)**(1/3)", r"\(-8\)\*\*0.333333 is not a real number"), ("sqrt(-4)", "sqrt of a negative number"),
     ("factorial(-1)", "at least 0"), ("factorial(7.5)", "whole numbers, got 7.5"), ("gcd(1.5, 3)", "whole numbers"),
     ("3!!", "'!!' is ambiguous"), ("!3", "needs a number"), ("2j", "complex"), ("True+1", "booleans"),
     ("gcd()", "gcd takes at least 1"), ("comb(5)", "comb takes 2 argument"), ("round(1, 2, 3)", "round takes 1 to 2"),
     ("max([])", "max takes at least 1"), ("gcd(*[1])", r"\*arguments"), ("$x", "'\\$' is allowed only before"),
     ("", "empty"), ("   ", "empty"), ("2 +", "not an arithmetic expression"), ("1if 1 else 2", "not an arithmetic"),
     ("((1)", "not an arithmetic expression"), ("1" * 501, "longer than 500")],
)
def test_everything_else_is_refused_by_name(expression, message):
    """Names, other functions, attributes, comparisons, other operators and impossible values are refused with a
    reason the step's repair can act on."""
    with pytest.raises(ValueError, match=message):
        evaluate(expression)


@pytest.mark.parametrize(
    ("expression", "message"),
    [("10**400", "10**400 is too large"), ("2**1023*2", "8.98847e+307 * 2 is too large"),
     ("9**9**9", "9**387420489 is too large"), ("10**5000", "10**5000 is too large"), ("2**10**100", "is too large"),
     ("1.5**10000", "1.5**10000 is too large"), ("(1/3)**-1000", "0.333333**-1000 is too large"),
     ("1e308*10", "1e+308 * 10 is too large"), ("1e999", "inf is too large"),
     ("pi**1000", "3.14159**1000 is too large"),
     ("10**300/1e-300", "1e+300 / 1e-300 is too large"), ("1e308//1e-308", "is too large"),
     ("1" + "0" * 400, "a 401-digit number is too large"), ("factorial(100000)", "factorial(100000) is too large"),
     ("171!", "factorial(171) is too large"), ("factorial(10**300)", "factorial(1e+300) is too large"),
     ("comb(10**9, 5*10**8)", "comb(1000000000, 500000000) is too large"), ("comb(2000, 1000)", "is too large"),
     ("perm(10**6, 10**5)", "perm(1000000, 100000) is too large"), ("perm(200, 200)", "perm(200, 200) is too large"),
     ("perm(1000)", "factorial(1000) is too large"), ("lcm(2**300, 3**190, 5**130, 7**106)", "lcm(2.03704e+90, "),
     ("sum([1e308, 1e308])", "sum of 2 numbers is too large"), ("2**1023*2**1023", "is too large"),
     ("-(2**1023)*2", "-8.98847e+307 * 2 is too large"), ("round(1e308, -400)*10**400", "is too large")],
)
def test_a_number_past_a_floats_range_is_refused_naming_what_was_too_large(expression, message):
    """Every number stays below 1.8e308 (309 digits, well inside Python's 4,300-digit text limit); a power,
    factorial, comb, perm or lcm is refused before it is computed, so a refusal takes under a few milliseconds."""
    started = time.perf_counter()
    with pytest.raises(ValueError, match=re.escape(message)):
        evaluate(expression)
    assert time.perf_counter() - started < 0.05


@pytest.mark.parametrize(
    ("expression", "value"),
    [("2**1023", 2**1023), ("-(2**1023)", -(2**1023)), ("170!", math.factorial(170)),
     ("perm(170)", math.factorial(170)),
     ("comb(1020, 510)", math.comb(1020, 510)), ("comb(10**300, 1)", 10**300),
     ("perm(10**100, 3)", math.perm(10**100, 3)),
     ("floor(1e308)", 10**308), ("sqrt(10**300)", 10**150), ("lcm(2**500, 3**300)", 2**500 * 3**300),
     ("1.7e308", 1.7e308), ("(2/3)**1000", (2 / 3) ** 1000), ("10**-400", 0)],
)
def test_numbers_up_to_a_floats_range_are_exact(expression, value):
    """Right below the bounds, results are exact ints (or floats), computed in milliseconds; a decimal literal is the
    number as written (1e308 is 10**308); a value too small for a float underflows to 0."""
    started = time.perf_counter()
    check(expression, value)
    assert time.perf_counter() - started < 0.05


# Pieces the property test strings together: the notation, the functions and the numbers that stress the bounds.
PIECES = ["1", "7", "9", "99", "1e308", "0.5", "10**", "**", "*", "/", "//", "%", "+", "-", "^", "!", "(", ")",
          "[", "]", ",", "1,000", "$", "pi", "e", "gcd(", "lcm(", "factorial(", "comb(", "perm(", "sqrt(", "floor(",
          "ceil(", "round(", "min(", "max(", "abs(", "sum(", "range(", " of ", " ", ".", "×", "÷", "x", "2(", "1j"]


@settings(max_examples=400, deadline=timedelta(milliseconds=200))
@given(st.lists(st.sampled_from(PIECES), max_size=60).map("".join))
def test_any_expression_of_its_pieces_evaluates_or_is_refused_quickly(expression):
    """Whatever is strung together from the calculator's notation gives an int or float within a float's range, or
    a ValueError — never another exception, and never a slow evaluation (hypothesis's deadline)."""
    try:
        result = evaluate(expression)
    except ValueError:
        return
    assert type(result) in (int, float) and abs(result) <= 1.8e308


@settings(max_examples=200, deadline=timedelta(milliseconds=200))
@given(st.text(max_size=200))
def test_any_text_evaluates_or_is_refused(text):
    """Arbitrary text (any characters, NULs, quotes, newlines) is a number or a ValueError."""
    try:
        result = evaluate(text)
    except ValueError:
        return
    assert type(result) in (int, float)


def test_deep_nesting_is_refused_or_evaluated_not_crashed():
    """The longest chains the length limit allows — 499 signs, 200 parentheses — end in a value or a ValueError."""
    check("-" * 499 + "1", -1)
    check("(" * 199 + "1" + ")" * 199, 1)
    with pytest.raises(ValueError, match="not an arithmetic expression"):
        evaluate("(" * 240 + "1" + ")" * 240)


def test_the_description_is_one_short_line_naming_every_function():
    """The planner reads it on every plan, so it stays one line and names what the calculator accepts."""
    description = Calculator.description
    assert "\n" not in description and len(description) <= 120
    for name in ("gcd", "lcm", "factorial", "n!", "comb", "perm", "sqrt", "floor", "ceil", "round", "min", "max", "abs",
                 "sum"):
        assert re.search(rf"(?<!\w){re.escape(name)}(?!\w)", description), name


async def test_the_tool_runs_its_arguments():
    """The tool entry point evaluates its decoded arguments."""
    assert await Calculator().run(CalculatorArgs(expression="45*12")) == 540
    assert await Calculator().run(CalculatorArgs(expression="gcd(1071,462) + 7!")) == 5061


@pytest.mark.parametrize(("expression", "off_the_loop"), [
    ("45*12", False), ("(17*23)+(45*12)/4 - 3%", False), ("2**10", True), ("7!", True), ("comb(40, 20)", True),
    ("lcm(4, 6)", True), ("+".join(["1"] * 40), True),
])
async def test_what_may_take_long_is_evaluated_off_the_event_loop(monkeypatch, expression, off_the_loop):
    """A power, factorial, comb, perm, lcm or a long expression goes to a worker thread; plain arithmetic (microseconds,
    less than the hand-off) is evaluated on the loop; the value is the same either way."""
    import stepwise.tools.calculator as module

    handed: list[str] = []
    real = module.asyncio.to_thread

    async def to_thread(function, *args):
        handed.append(expression)
        return await real(function, *args)

    monkeypatch.setattr(module.asyncio, "to_thread", to_thread)
    assert await Calculator().run(CalculatorArgs(expression=expression)) == evaluate(expression)
    assert bool(handed) is off_the_loop


async def test_independent_plain_evaluations_all_start_before_any_ends():
    """Evaluated on the loop, plain arithmetic still yields once first: steps started together overlap, as the trace
    of a plan's independent steps shows them."""
    import asyncio

    log: list[tuple[str, str]] = []

    async def timed(expression: str) -> None:
        log.append(("start", expression))
        await Calculator().run(CalculatorArgs(expression=expression))
        log.append(("end", expression))

    await asyncio.gather(timed("17*23"), timed("45*12"))
    assert [kind for kind, _ in log] == ["start", "start", "end", "end"]


def test_a_call_is_shown_as_its_expression_alone():
    """`{"expression": "2*3"}` shows as `2*3`; arguments that are not the calculator's are left to the default
    (None)."""
    calculator = Calculator()
    assert calculator.show({"expression": "$1*3"}) == "$1*3"
    assert calculator.show({"query": "SELECT 1"}) is None and calculator.show("2*3") is None
