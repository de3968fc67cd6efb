"""The calculator: arithmetic only, walked from the AST, refusing everything else by name."""

from __future__ import annotations

import pytest

from tools.calculator import Calculator, CalculatorArgs, evaluate


@pytest.mark.parametrize(
    ("expression", "value"),
    [("17*23", 391), ("(17*23)+(45*12)", 931), ("2+3*4", 14), ("7/2", 3.5), ("6/3", 2), ("2**10", 1024),
     ("-(3-5)", 2), ("1.5*2", 3.0), ("2^3", 8), ("6×7", 42), ("8÷2", 4), ("10−4", 6), ("1,000+1", 1001)],
)
def test_arithmetic_is_evaluated(expression, value):
    """Numbers, + - * / **, signs and parentheses (and the notation models write for them) evaluate."""
    result = evaluate(expression)
    assert result == value and type(result) is type(value)


@pytest.mark.parametrize(
    ("expression", "message"),
    [("x+1", "names are not allowed: 'x'"), ("abs(-1)", "function calls"), ("__import__('os')", "function calls"),
     ("(1).real", "not allowed"), ("[1,2]", "not allowed"), ("1 if 1 else 2", "not allowed"), ("7 % 2", "Mod"),
     ("1/0", "division by zero"), ("10**10**10", "more than 1000 digits"), ("True+1", "booleans"),
     ("", "empty"), ("2 +", "not an arithmetic expression")],
)
def test_everything_else_is_refused_by_name(expression, message):
    """Names, calls, attributes, other operators and runaway results are refused with a reason."""
    with pytest.raises(ValueError, match=message):
        evaluate(expression)


async def test_the_tool_runs_its_arguments():
    """The tool entry point evaluates its decoded arguments."""
    assert await Calculator().run(CalculatorArgs(expression="45*12")) == 540
