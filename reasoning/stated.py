"""Whether a conversation states a value a model wrote into a function call's argument: an optional argument the
request gives no value for is the model's guess (a year range for "during the presidency of …", a permittivity of
8854, a date for "next Friday"), and a caller's function is better served by its own default than by a guess.

The test is deliberately lenient — a value counts as stated when the text says it in any usual way — because what it
drops is gone: a number as written, its sign aside (a unit glued to it apart: "6mm"), as its hundredth (a percent's
fraction: 5% → 0.05) or as a small number word, and 0 and 1, which a request leaves implied ("starts from rest", "a
ticket"); a string whose letters occur in the text, or whose every word of three letters or more begins, in its
first four letters, like a word of the text ("Dollar" for "dollars", "detailed" for "in detail"); a list or an
object whose every element is stated. A flag (true/false) and null are never guesses of a value, nor is a value the
parameter offers among its `enum` (the caller's own options: "Backstage Pass" for "backstage access"; on BFCL's
ground truth, 5 of the 12 right values the rule dropped were such picks).

`guessed` names the arguments whose value is a guess (none stated, no default, no option): `stated_arguments`
leaves the optional ones out, and `functions.call_functions` rechecks a reply carrying any."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from stepwise.reasoning.questions import numbers_in

_WORD_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "hundred": 100,
    "thousand": 1000, "dozen": 12, "half": 0.5, "once": 1, "twice": 2, "single": 1, "double": 2, "triple": 3,
    "first": 1, "second": 2, "third": 3, "zero": 0, "none": 0,
}
_WORDS = re.compile(r"[^\W_]+")
_GLUED = re.compile(r"(\d)([^\W\d_])")
_PREFIX = 4  # letters two forms of a word share: dollar/dollars, detail/detailed, transit/transportation
_MISSING = object()


class Stated:
    """What a text states: its numbers and its words, read once for every value tested against it."""

    def __init__(self, text: str) -> None:
        lowered = text.lower()
        self._letters = _letters(lowered)
        words = _WORDS.findall(lowered)
        self._prefixes = {w[:_PREFIX] for w in words}
        unglued = _GLUED.sub(r"\1 \2", text)  # "6mm", "5km": the number apart from its unit
        numbers = set(numbers_in(unglued)) | {float(_WORD_NUMBERS[w]) for w in words if w in _WORD_NUMBERS}
        self._numbers = {round(n, 9) for n in numbers} | {round(n / 100, 9) for n in numbers} | {0.0, 1.0}

    def states(self, value: Any) -> bool:
        """Whether the text states the value (the module's rule)."""
        if value is None or isinstance(value, bool):
            return True
        if isinstance(value, int | float):
            try:
                return round(abs(float(value)), 9) in self._numbers
            except OverflowError:  # an integer past a double's range: no text states it
                return False
        if isinstance(value, str):
            return self._states_text(value.lower())
        if isinstance(value, list):
            return all(self.states(v) for v in value)
        if isinstance(value, dict):
            return all(self.states(v) for v in value.values())
        return True

    def _states_text(self, value: str) -> bool:
        letters = _letters(value)
        if letters and letters in self._letters:
            return True
        words = [w for w in _WORDS.findall(value) if len(w) >= 3]
        return bool(words) and all(w[:_PREFIX] in self._prefixes for w in words)


def _letters(text: str) -> str:
    """The text's letters and digits alone: "New York, NY" and "new-york ny" read the same."""
    return "".join(_WORDS.findall(text))


def stated_arguments(arguments: Mapping[str, Any], parameters: Mapping[str, Any], stated: Stated) -> dict[str, Any]:
    """The arguments less each optional one (not in the schema's `required`) whose value the text does not state and
    which is not the parameter's declared default (the same call either way)."""
    required = parameters.get("required", ())
    required = {r for r in required if isinstance(r, str)} if isinstance(required, list | tuple) else set()
    guesses = guessed(arguments, parameters, stated)
    return {name: value for name, value in arguments.items() if name in required or name not in guesses}


def without_defaults(arguments: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments less those set to their parameter's declared default: the same call either way."""
    properties = _properties(parameters)

    def default(name: str, value: Any) -> bool:
        declared = _default(properties.get(name))
        return value == declared and isinstance(value, bool) == isinstance(declared, bool)  # 1 is not true

    return {name: value for name, value in arguments.items() if not default(name, value)}


def _properties(parameters: Mapping[str, Any]) -> Mapping[str, Any]:
    """A parameters schema's `properties`, or none where it has no such mapping."""
    properties = parameters.get("properties", {})
    return properties if isinstance(properties, Mapping) else {}


def _default(spec: Any) -> Any:
    """A parameter's declared default, or a value equal to nothing."""
    return spec.get("default", _MISSING) if isinstance(spec, Mapping) else _MISSING


def guessed(arguments: Mapping[str, Any], parameters: Mapping[str, Any], stated: Stated) -> set[str]:
    """The arguments whose value the text does not state and the parameter neither declares as its default nor
    offers among its `enum` (the model's pick among the caller's own options)."""
    properties = _properties(parameters)

    def guess(name: str, value: Any) -> bool:
        spec = properties.get(name)
        spec = spec if isinstance(spec, Mapping) else {}
        try:
            return not stated.states(value) and value != _default(spec) and not _offered(spec, value)
        except RecursionError:  # nested past Python's stack (a schema that leaves an array's items open): no guess
            return False

    return {name for name, value in arguments.items() if guess(name, value)}


def _offered(spec: Mapping[str, Any], value: Any) -> bool:
    """Whether the schema offers the value among its `enum`, or each element of a list among its items' `enum`."""
    items = spec.get("items")
    if isinstance(value, list) and isinstance(items, Mapping):
        return bool(value) and all(_offered(items, v) for v in value)
    options = spec.get("enum")
    return isinstance(options, list) and any(value == o and type(value) is type(o) for o in options)
