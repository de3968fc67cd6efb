"""Deterministic checks: a deterministic tool's result is recomputed; a tool's result has the type it declares;
numbers are finite; an expert's output is non-empty text.

Every check takes any int or float without raising: an int is finite however large (math.isfinite, float() and
format(.., "g") would raise OverflowError past 1.8e308), and a result is shown through `_shown`, since repr() of an int
past 4,300 digits raises ValueError."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from stepwise.reasoning.types import (
    NOT_IN_DOCUMENTS,
    Ask,
    Expect,
    ExpertStep,
    ParallelStep,
    Step,
    Tool,
    Verdict,
)
from stepwise.verifiers.policy import SEVERITY


class _ToolCheck:
    """A check of one tool call's result; a "tools" step gets it for each of its calls."""

    name = "tool_check"
    kinds = frozenset({"tool", "tools"})

    def __init__(self, tools: Mapping[str, Tool]) -> None:
        self._tools = tools

    async def verify(self, step: Step, resolved_input: Any, output: Any, ask: Ask) -> Verdict:
        if isinstance(step, ParallelStep):
            return await each_call(self, step, resolved_input, output, ask)
        return await self.check(self._tools[step.target], resolved_input, output)

    async def check(self, tool: Tool, args: Any, result: Any) -> Verdict:
        raise NotImplementedError


class ToolRecomputed(_ToolCheck):
    """Runs a deterministic tool a second time on the same arguments; the results must agree.

    This catches state leaking between calls and results that were altered after the call."""

    name = "tool_recomputed"

    async def check(self, tool: Tool, args: Any, result: Any) -> Verdict:
        if not tool.deterministic:
            return Verdict(self.name, "pass", f"{tool.name} is not deterministic: not recomputed")
        again = await tool.run(msgspec.convert(args, tool.args_type))
        if _same(again, result):
            return Verdict(self.name, "pass", f"recomputed {_shown(again)}")
        return Verdict(self.name, "fail", f"recomputed {_shown(again)}, step said {_shown(result)}")


class ResultTyped(_ToolCheck):
    """A tool's result must validate under the type it declares (`result_type`; for @tool functions, the return
    annotation). A violation means the tool broke its contract: fail."""

    name = "result_type"

    async def check(self, tool: Tool, args: Any, result: Any) -> Verdict:
        declared = getattr(tool, "result_type", None)
        if declared is None:
            return Verdict(self.name, "pass", "no declared result type")
        try:
            msgspec.convert(result, declared, strict=False)
        except msgspec.ValidationError as exc:
            return Verdict(self.name, "fail", f"result {_shown(result)} is not a {_type_name(declared)}: {exc}")
        return Verdict(self.name, "pass", f"a {_type_name(declared)}")


class NumericSanity:
    """Numbers in a result must be finite; and a step whose plan states `expect` must meet it (a number alone, a range
    for a number, a unit for text). What a step expects is what it states, never how its question is worded. A
    deterministic tool missing what it was expected to give needs a different step (replan); an expert may answer
    better when asked again (retry)."""

    name = "numeric_sanity"
    kinds = frozenset({"tool", "tools", "expert"})

    async def verify(self, step: Step, resolved_input: Any, output: Any, ask: Ask) -> Verdict:
        numbers = list(_numbers(output))
        if any(isinstance(n, float) and not math.isfinite(n) for n in numbers):
            return Verdict(self.name, "fail", f"not a finite number in {_shown(output)}")
        if step.expect is not msgspec.UNSET and (broken := _unmet(step.expect, output)):
            return Verdict(self.name, "retry" if isinstance(step, ExpertStep) else "replan", broken)
        return Verdict(self.name, "pass", f"{len(numbers)} finite number(s)" if numbers else "no numbers")


def _unmet(expect: Expect, output: Any) -> str | None:
    """Why `output` misses what the plan expected, or None."""
    if expect.number and _as_number(output) is None:
        return f"asked for a number, got {_shown(output, as_text=True)[:80]!r}"
    if expect.min is not None or expect.max is not None:
        value = _single_number(output)
        if value is None:
            return f"expected a number, got {_shown(output, as_text=True)[:80]!r}"
        if expect.min is not None and value < expect.min:  # int against float compares exactly, however large
            return f"{_number(value)} is below the expected minimum {expect.min:g}"
        if expect.max is not None and value > expect.max:
            return f"{_number(value)} is above the expected maximum {expect.max:g}"
    if expect.unit and isinstance(output, str) and expect.unit.lower() not in output.lower():
        return f"expected the unit {expect.unit!r} in {output[:80]!r}"
    return None


class ExpertAnswered:
    """An expert's output must be text, and not empty; and it must not merely repeat a name its question gives
    ("Who founded the firm of Corwin Astley?" → "Corwin Astley": small models echo the subject), unless the question
    offers a choice ("… A or B?"); a reader asked the year a person was born or died must answer the year its
    passages give in brackets after that name (`_life_year_missed`), and one asked where a person was born the place
    its passages say that person was born in (`_birthplace_missed`), and one asked who held a post the one person
    its passages say held it (`_holder_missed`). Each asks for a retry, the reason as feedback."""

    name = "expert_answered"
    kinds = frozenset({"expert"})

    async def verify(self, step: Step, resolved_input: Any, output: Any, ask: Ask) -> Verdict:
        if not isinstance(output, str):
            return Verdict(self.name, "fail", f"expected text, got {type(output).__name__}")
        if not output.strip():
            return Verdict(self.name, "retry", "empty answer")
        said = output.strip().strip(".").strip()
        asked = _question(resolved_input)
        # A reader saying the passages do not hold the answer is answering, even when an earlier read said so too.
        if (len(said) >= 3 and NOT_IN_DOCUMENTS not in said.lower()
            and re.search(rf"(?<!\w){re.escape(said)}(?!\w)", asked, re.IGNORECASE)
                and not re.search(r"\bor\b", asked, re.IGNORECASE)
            and said.casefold() != asked.strip(" ?.").casefold()):
            return Verdict(self.name, "retry",
                           f"the answer repeats {said!r}, which the question already gives; answer "
                           f"what it asks about {said}")
        if (missed := _life_year_missed(resolved_input, said) or _birthplace_missed(resolved_input, said)
                or _holder_missed(resolved_input, said)) is not None:
            return Verdict(self.name, "retry", missed)
        return Verdict(self.name, "pass", f"{len(output)} characters")


# A question asking the year someone was born or died, and a person's years as an encyclopedia gives them, in
# brackets after the name: "Ysolde Carrack (1836–1911)".
_YEAR_ASKED = re.compile(r"\b(?:which|what) year\b|^\s*when\b|\bwhen (?:was|were|did)\b", re.IGNORECASE)
_BORN_OR_DIED = re.compile(r"\b(?:(born|birth)|(die|died|death))\b", re.IGNORECASE)
_LIFE_YEARS = re.compile(r"\((\d{3,4})\s*[–—-]\s*(\d{3,4})\)")
# The name just before such brackets, matched in a bounded window: anchored at the end of a long text, a pattern of
# repeated words is tried from every position (seconds on 60 KB of capitalised words).
_NAME_BEFORE = re.compile(r"([A-Z][\w'’-]*(?:\s+(?:[a-z]{1,3}\s+)?[A-Z][\w'’-]*)*)\s*$")
_NAME_WINDOW = 80


def _life_year_missed(resolved_input: Any, said: str) -> str | None:
    """Why a reader asked the year a person was born or died has answered another year than the passages give in
    brackets after that person's name, the one such name the question names; None if it did not (or the passages
    give no such years). The small reader has answered a passage's other year beside the name: "Ysolde Carrack
    (1836–1911) … She retired in 1890" gave 1890 for her death, a founding's "in 1822 by … Edda Voss (1790–1861)"
    1822 for a birth."""
    text = resolved_input if isinstance(resolved_input, str) else ""
    if "Passages:" not in text:
        return None
    asked = _question(text)
    event = _BORN_OR_DIED.search(asked)
    if event is None or not _YEAR_ASKED.search(asked):
        return None
    passages = _passages(text)
    lives = set()
    for years in _LIFE_YEARS.finditer(passages):
        before = _NAME_BEFORE.search(passages[max(0, years.start() - _NAME_WINDOW):years.start()])
        if before is not None and _about(asked, name := before.group(1)):
            lives.add((name, years.group(1), years.group(2)))
    if len(lives) != 1:
        return None
    ((name, born, died),) = lives
    year, what = (born, "birth") if event.group(1) else (died, "death")
    if re.search(rf"(?<!\d){year}(?!\d)", said):
        return None
    return (f"the passages give {name} ({born}–{died}): years in brackets after a name are birth and death, so "
            f"the year of {what} is {year}")


# "Where was Wendeline Orme born?", "In which town was Wendeline Orme born?": the person asked about.
_PLACE_ASKED = re.compile(r"\b(?:where|in (?:which|what) (?:town|city|village|place|port))\s+(?:was|were)\s+(.+?)"
                          r"\s+born\b", re.IGNORECASE)
# A place of one to three capitalised words; a month is a date's ("born in March 1836 in …").
_PLACE = (r"(?:the (?:village|town|city|port) of )?(?!(?:January|February|March|April|May|June|July|August|"
          r"September|October|November|December)\b)([A-Z][\w'’-]*(?: [A-Z][\w'’-]*){0,2})(?![\w'’-]| [A-Z])")
_SENTENCE = 200  # characters between a name and its "born in" within one sentence, past no "who" (another person)


def _birthplace_missed(resolved_input: Any, said: str) -> str | None:
    """Why a reader asked where a person was born has answered another place than the passages say that person was
    born in ("Wendeline Orme (1851–1928) was a meteorologist, born in Windlestrand. She studied at the Arnsgate
    College …" gave Arnsgate); None if it did not, or the passages name no one such place in a sentence naming
    the person."""
    text = resolved_input if isinstance(resolved_input, str) else ""
    if "Passages:" not in text or (asked := _PLACE_ASKED.search(_question(text))) is None:
        return None
    name = asked.group(1).strip()
    if not name[:1].isupper():  # "the founder of …": someone named through another, the question's first hop
        return None
    passages = _passages(text)
    places = {found.group(1) for found in re.finditer(
        rf"(?<![\w'’]){re.escape(name)}(?![\w'’])(?:(?!\bwho)[^.]){{0,{_SENTENCE}}}?\bborn (?:in|at) {_PLACE}",
        passages)}
    place = _unsaid(places, said)
    return None if place is None else f"the passages say {name} was born in {place}"


# "Who was the first director of the Varnay Observatory?": a post (one to three lower-case words) and the thing.
_POST_ASKED = re.compile(r"\s*[Ww]ho (?:was|is) the ((?:[a-z]+ ){0,2}[a-z]+) of (?:the )?"
                         r"([A-Z][\w'’-]*(?: [A-Z][\w'’-]*)*)\s*\??\s*$")
# A person's name of two to four words, maybe a link's text (`[Casimir Holt](casimir_holt.md)`).
_PERSON = r"\[?([A-Z][\w'’-]+(?: (?:[a-z]{1,3} )?[A-Z][\w'’-]+){1,3})\]?"


def _holder_missed(resolved_input: Any, said: str) -> str | None:
    """Why a reader asked who held a post ("Who was the first director of the Varnay Observatory?") has answered
    another person than the one its passages say held it, in so many words: "<post> of <thing> was <person>", "<person>
    was the <post> of <thing>", or, in the thing's own article, "Its <post> was <person>"; None if it did not, or the
    passages say no one such person. The small reader, given "Its first director was Casimir Holt" beside "… the
    first director of the Varnay Observatory, which Odile Marchetti had founded", answered the founder."""
    text = resolved_input if isinstance(resolved_input, str) else ""
    if "Passages:" not in text or (asked := _POST_ASKED.match(_question(text))) is None:
        return None
    post, thing = asked.groups()
    try:
        passages = msgspec.json.decode(_passages(text).strip())
    except msgspec.DecodeError:
        return None
    held = set()
    of_thing = rf"of (?:the )?\[?{re.escape(thing)}\]?(?:\([^)]*\))?"
    for passage in passages if isinstance(passages, list) else []:
        if not (isinstance(passage, dict) and isinstance(words := passage.get("text"), str)):
            continue
        article = str(passage.get("source", "")).split(".md", 1)[0].replace("_", " ").lower()
        own = rf"(?:{of_thing}\s+)?" if article == thing.lower() else rf"{of_thing}\s+"
        for pattern in (rf"\b(?:[Tt]he|[Ii]ts|[Tt]heir)\s+{re.escape(post)}\s+{own}(?:was|is)\s+{_PERSON}",
                        rf"{_PERSON}(?:\([^)]*\))?\s+(?:was|is|became)\s+the\s+{re.escape(post)}\s+{of_thing}"):
            held |= {person for found in re.finditer(pattern, words) if (person := _person(found.group(1)))}
    person = _unsaid(held, said)
    return None if person is None else f"the passages say the {post} of {thing} was {person}"


def _unsaid(found: set[str], said: str) -> str | None:
    """The one thing the passages say (a place, a person), if the answer does not say it; None if they say none or
    several, or the answer says it."""
    if len(found) != 1:
        return None
    (one,) = found
    return None if re.search(rf"(?<!\w){re.escape(one)}(?!\w)", said, re.IGNORECASE) else one


# Capitalised words before a name that are no part of it: a sentence's first word, a title.
_NOT_NAME = frozenset("Later Then In After Before When While Since By From Professor Prof Sir Dr Doctor Captain Mr "
                      "Mrs Ms Miss Lord Lady Dame Reverend Rev".split())


def _person(words: str) -> str | None:
    """A captured run of capitalised words as the person's name, without a title or a sentence's first word before
    it; None if fewer than two words are left, or if it is a possessive ("Casimir Holt's student …": the holder is
    someone named through that person)."""
    if re.search(r"['’]s?$", words):
        return None
    parts = words.split()
    while parts and parts[0] in _NOT_NAME:
        parts.pop(0)
    return " ".join(parts) if len(parts) >= 2 else None


def _passages(text: str) -> str:
    """A reader's passages: its input after "Passages:", up to its "Question:" where that comes after them."""
    return text.split("Passages:", 1)[1].rsplit("\nQuestion:", 1)[0]


def _about(asked: str, name: str) -> bool:
    """Whether the question asks when `name` itself was born or died ("did Ysolde Carrack die", "was she … born",
    "the death of Ysolde Carrack"), not someone named through them ("Ysolde Carrack's son", "the founder of …")."""
    named = re.escape(name)
    return bool(re.search(rf"(?<![\w'’]){named}(?:\s+(?:was|were|is))?\s+(?:born|die|died)\b", asked)
                or re.search(rf"\b(?:birth|death)\s+of\s+{named}(?![\w'’])", asked))


def _question(resolved_input: Any) -> str:
    """The question an expert step asks: its input, or a reader's, after the last "Question:" (its passages come
    before it; up to "Passages:" where they come after)."""
    text = resolved_input if isinstance(resolved_input, str) else ""
    if "Question:" in text:
        text = text.rsplit("Question:", 1)[1].split("\nPassages:", 1)[0]
    return text


async def each_call(verifier: Any, step: ParallelStep, calls: list[dict[str, Any]], results: list[Any],
                    ask: Ask) -> Verdict:
    """A tool verifier applied to every call of a "tools" step; the worst verdict stands, its reason names the call."""
    verdicts = await asyncio.gather(*(
        verifier.verify(call, call.input, result, ask) for call, result in zip(step.calls(calls), results, strict=True)
    ))
    worst = max(range(len(verdicts)), key=lambda i: SEVERITY[verdicts[i].outcome])
    if verdicts[worst].outcome == "pass":
        return Verdict(verifier.name, "pass", f"{len(verdicts)} calls: " + "; ".join(v.reason for v in verdicts))
    return Verdict(verifier.name, verdicts[worst].outcome, f"call {worst + 1}: {verdicts[worst].reason}")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
            return False
        try:
            return math.isclose(a, b, rel_tol=1e-12)
        except OverflowError:  # an int past a float's range is not close to any float
            return False
    return a == b


def _numbers(value: Any):
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _single_number(output: Any) -> int | float | None:
    """The one number a result states (a number, or text such as "12.5 km"); None if it states none or several."""
    if isinstance(output, str):
        found = _NUMBER.findall(output)
        return float(found[0].replace(",", "")) if len(found) == 1 else None
    numbers = list(_numbers(output))
    return numbers[0] if len(numbers) == 1 else None  # an int stays an int: float() of a huge one raises


def _as_number(text: Any) -> float | None:
    try:
        return float(str(text).strip().rstrip(".").replace(",", ""))
    except ValueError:
        return None


def _number(value: int | float) -> str:
    """A number as `:g` shows it, without converting an int too large for a float."""
    try:
        return format(value, "g")
    except OverflowError:  # only an int can be too large for `:g`, which converts it to a float
        if isinstance(value, float):
            raise
        return f"a {int(value.bit_length() * math.log10(2)) + 1}-digit number"


_SHOWN = 500
"""Characters of a result a verdict's reason shows: a reason is for a person, and the result itself is in the trace
(a recomputed one is not, and nothing bounded it: the engine bounds the step's result only)."""


def _shown(value: Any, as_text: bool = False) -> str:
    """repr() (or str()) of a result, its first `_SHOWN` characters when longer; a result holding an int too long to
    print says so instead."""
    try:
        text = str(value) if as_text else repr(value)
    except ValueError:  # int -> str past sys.get_int_max_str_digits()
        return f"<a {type(value).__name__} holding a number too long to show>"
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}… ({len(text):,} characters)"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)
