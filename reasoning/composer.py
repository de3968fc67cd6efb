"""The composer: writes the final answer from the step results, decoded under the Answer schema
(the text plus the ids of the steps it rests on, which the schema limits to the plan's ids)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from stepwise.reasoning import prompts
from stepwise.reasoning.context import RunContext
from stepwise.reasoning.plan import Dag, as_value, is_number, is_table, last_part, render, substitute
from stepwise.reasoning.program import ANSWER
from stepwise.reasoning.questions import ask, asks_for_difference, asks_for_quantity, chooses, direction, options
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import (
    NOT_IN_DOCUMENTS,
    Answer,
    ExpertStep,
    JsonSchema,
    Message,
    Sampling,
    Tool,
    ToolStep,
    shown_call,
)


def answer_schema(step_ids: list[int], max_chars: int = 400) -> dict:
    return {
        "type": "object",
        "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": max_chars},
            # An answer rests on at least one step: the schema makes the composer cite.
            "uses": {"type": "array", "items": {"enum": step_ids}, "minItems": 1, "maxItems": len(step_ids)},
        },
        "required": ["text", "uses"],
        "additionalProperties": False,
    }


def results_text(dag: Dag, outputs: dict[int, Any], tools: Mapping[str, Tool]) -> str:
    """The results block of the composer's prompt: each step's call (as its tool shows it) and result, then the
    final result(s)."""
    lines = []
    for sid, step in dag.steps.items():
        given = substitute(step.input, outputs)
        shown = shown_call(tools.get(step.target) if isinstance(step, ToolStep) else None, given)
        shown = render(given) if shown is None else shown
        named = (prompts.RESULT_NAMED.format(name=step.name)
                 if isinstance(step.name, str) and step.name != ANSWER else "")
        lines.append(prompts.RESULT_LINE.format(id=sid, named=named, target=step.target, shown=shown[:300],
                                                result=render(outputs[sid])[:600]))
    if dag.answer is not None:
        final = as_value(outputs[dag.answer])
        # A choice made with min/max ("which is cheaper?") ends in a number: say whose it is, so the answer names it.
        whose = [step.name for sid, step in dag.steps.items() if sid != dag.answer and isinstance(step.name, str)
                 and step.name != ANSWER and _equal(as_value(outputs[sid]), final)]
        owner = prompts.RESULT_OWNER.format(names=", ".join(whose)) if whose and len(whose) < len(dag.steps) - 1 else ""
        lines.append(prompts.RESULT_FINAL.format(id=dag.answer, result=render(outputs[dag.answer])[:600], owner=owner))
    elif dag.parts:
        shown = "; ".join(render(outputs[p])[:300] for p in dag.parts)
        lines.append(prompts.RESULT_PARTS.format(ids=", ".join(map(str, dag.parts)), results=shown))
        lines += _extremes(dag, outputs)
    return "\n".join(lines)


def _extremes(dag: Dag, outputs: dict[int, Any]) -> list[str]:
    """For a question comparing several computed quantities ("who has read more, Ines or Kofi?"), which final
    result is the largest and which the smallest, by name: a small model reading two decimals picks the wrong one
    too often, and the choice is arithmetic."""
    named = [(dag.steps[p].name, as_value(outputs[p])) for p in dag.parts]
    numeric = [(name, value) for name, value in named if isinstance(name, str) and is_number(value)]
    if len(numeric) < 2 or len(numeric) != len(named):
        return []
    values = [value for _, value in numeric]
    if all(_equal(v, values[0]) for v in values):
        return [prompts.RESULT_ALL_EQUAL.format(value=render(values[0]))]
    top, low = max(numeric, key=lambda nv: nv[1]), min(numeric, key=lambda nv: nv[1])
    return [prompts.RESULT_EXTREMES.format(top=top[0], top_value=render(top[1]), low=low[0], low_value=render(low[1]))]


def _equal(a: Any, b: Any) -> bool:
    return is_number(a) and is_number(b) and abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


# An arithmetic expression as a tool may build one (a puzzle's solution): numbers, + - * / and brackets only, with an
# operator between two numbers. Two linear scans (a tool's output may be long) and a length a solution has.
_EXPRESSION_CHARS = re.compile(r"[\d.\s()+\-*/]+")
_OPERATION = re.compile(r"\d[\s)]*[-+*/][\s(]*\d")


def _expression(value: Any) -> bool:
    return (isinstance(value, str) and len(value) <= 200 and _EXPRESSION_CHARS.fullmatch(value) is not None
            and _OPERATION.search(value) is not None)


class Composer:
    """`always`: every answer is written by the model. Otherwise an answer that is a number the tools computed, to a
    question asking for a quantity, is that number, and an arithmetic expression the tools built (a puzzle's
    solution) is that expression: a model call there could only restate it (or misstate it)."""

    def __init__(self, router: Router, *, target: str | None = None, max_chars: int = 400, always: bool = False):
        self.router = router
        self.target = target or router.default
        self.max_chars = max_chars
        self.always = always

    def computed(self, question: str, dag: Dag, outputs: dict[int, Any]) -> int | float | str | None:
        """The final value, when it is the whole answer, from a plan of tool steps only: a number, to a quantity
        question, or an arithmetic expression (the composer model, asked to restate one, has put a stray `:` before
        it); else None."""
        if self.always or any(isinstance(step, ExpertStep) for step in dag.steps.values()):
            return None
        if dag.answer is None:  # several parts: to a quantity question, the last one is the quantity (`last_part`)
            if len(dag.parts) < 2 or not is_number(value := last_part([as_value(outputs[p]) for p in dag.parts])):
                return None
        else:
            value = as_value(outputs[dag.answer])
        if _expression(value):
            return value.strip()
        if not is_number(value) or not asks_for_quantity(question):
            return None
        return abs(value) if asks_for_difference(question) else value

    def chosen(self, question: str, dag: Dag, outputs: dict[int, Any]) -> Answer | None:
        """The answer to a choice between options the question names ("which plan is cheaper, Oak or Pine?"), when
        the plan computed one number per option, under a name that says which (`oak = …`, `pine = …`), and the ask
        says which way to choose: the option with the smaller or larger number, stated with the numbers. Else None.
        (The small composer model, shown two named prices, has named the dearer one as the cheaper.)"""
        if self.always:
            return None
        ranked = ranked_options(question, [dag.steps[p].name for p in dag.parts],
                                [as_value(outputs[p]) for p in dag.parts])
        if ranked is None:
            return None
        (value, option), others = ranked[0], ranked[1:]
        against = " and ".join(f"{render(v)} for {o}" for v, o in others)
        return Answer(text=f"{option}, with {render(value)} against {against}.", uses=list(dag.parts))

    async def compose(self, question: str, dag: Dag, outputs: dict[int, Any], ctx: RunContext,
                      tools: Mapping[str, Tool]) -> Answer:
        """The answer to `question` from the plan's results; `tools` (the run's) say how their calls are shown."""
        computed = self.computed(question, dag, outputs)
        # `computed` is None without a final step; the second test only tells the type checker so.
        if computed is not None:
            return Answer(text=render(computed), uses=[dag.answer] if dag.answer is not None else [dag.parts[-1]],
                          value=computed)
        chosen = self.chosen(question, dag, outputs)
        if chosen is not None:
            return chosen
        messages = [
            Message("system", prompts.COMPOSE_SYSTEM),
            Message("user", prompts.COMPOSE_USER.format(question=question, results=results_text(dag, outputs, tools))),
        ]
        ids = sorted(dag.steps)
        constraint = JsonSchema("answer", answer_schema(ids, self.max_chars))
        # Every token is at least one character, so this many tokens always reach the end of the longest answer the
        # schema allows: the output cannot be cut off (a rambling model costs time, never a broken answer).
        sampling = Sampling(max_tokens=self.max_chars + 24 + 3 * len(ids))
        value = as_value(outputs[dag.answer]) if dag.answer is not None else None
        # What the text must state, each part being an answer by itself to fall back on: a quantity question's final
        # value, or every part of a question asking several things. A choice question's answer is a name, not the
        # price it was chosen by, so its final value is not required.
        parts = [as_value(outputs[p]) for p in dag.parts]
        if len(parts) > 1 and all(is_number(v) for v in parts) and chooses(question):
            # "which is cheaper, A or B?" ends `answer = a, b`: the answer names one, its price may go unsaid
            required = []
        elif len(parts) > 1:
            required = [v for v in parts if _statable(v)]
        elif value is not None and asks_for_quantity(question):
            required = [value]
        else:  # a name the result holds is stated as written (the composer model has shortened "Urbano" to "Urban")
            required = _names(value)
        # A single quantity is stated last: readers (and scorers) take an answer's last number as its result, and the
        # composer model has answered a canal's length by copying the passage that holds it ("It is 31 kilometres
        # long and was opened in 1851. …").
        last = (_single_number(value) if len(parts) <= 1 and asks_for_quantity(question)
                and not asks_for_difference(question) else None)
        known = _numbers(question) | _numbers(messages[1].content)
        for _attempt in (1, 2):
            _, answer = await self.router.call(
                self.target, messages, ctx, purpose="compose", constraint=constraint, sampling=sampling,
                output_type=Answer,
            )
            # The model has begun an answer with the punctuation that would follow a name (", Engineering has …").
            answer.text = answer.text.lstrip(" ,;:") or answer.text
            problem = ungrounded(answer.text, known, required, last)
            if problem is None or not required:  # without final values to fall back on, a retry is all cost
                break
            messages = [*messages, Message("assistant", answer.text),
                        Message("user", prompts.COMPOSE_REJECTED.format(problem=problem))]
        else:  # still ungrounded: the plan's own values are the answer, stated plainly
            answer = Answer(text="; ".join(render(v) for v in required), uses=list(dag.parts))
            problem = None
        answer.ungrounded = problem
        if dag.answer is not None:
            answer.value = value
        answer.uses += [part for part in dag.parts if part not in answer.uses]
        cited = sources(dag, outputs, answer.text)
        if cited and not any(c in answer.text for c in cited):
            # First, not last: readers (and scorers) take an answer's last number as its result, and `file:3` has one.
            answer.text = f"[{', '.join(cited)}] {answer.text.strip()}"
        return answer


def ranked_options(question: str, names: list[Any], values: list[Any]) -> list[tuple[Any, str]] | None:
    """The options of a choice the question offers ("which plan is cheaper, Oak or Pine?"), each with its number,
    best first, when the results are one number per option under names that say which (`oak = …`, `pine = …`, or
    `cost_a`, `cost_b` in the order the question names them) and the ask says which way to choose; None otherwise,
    and for a tie at the top (for the model to say)."""
    if len(names) < 2 or not chooses(question) or (way := direction(question)) is None:
        return None
    if len(offered := options(question)) < 2:
        return None
    named = _match(offered, names) or _lettered(offered, names, question)
    if named is None and len(names) > len(offered):
        # One result per option beside others naming none (`heron, ibis, difference`: the worked examples' form
        # for "by how much"); the composer model, shown such three, has answered that the documents do not say.
        kept = [i for i, name in enumerate(names) if _refers_to(name, offered)]
        if len(kept) == len(offered) and (named := _match(offered, [names[i] for i in kept])) is not None:
            values, names = [values[i] for i in kept], [names[i] for i in kept]
    if named is None or not all(is_number(v) for v in values):
        return None
    if _SPEED.search(ask(question)) and all(_timed(name) for name in names):
        way = "min" if way == "max" else "max"  # the faster route is the one of less time
    ranked = sorted(zip(values, named, strict=True), key=lambda pair: pair[0], reverse=way == "max")
    return None if _equal(ranked[0][0], ranked[1][0]) else ranked


# A comparison of speed ("Which route is faster?"), which results naming times ("time_1", "hours_oak") answer the
# other way round: the faster takes less time.
_SPEED = re.compile(r"\b(faster|fastest|quicker|quickest|slower|slowest)\b", re.IGNORECASE)
_TIME_WORDS = frozenset("time hours hour minutes minute mins seconds duration journey trip".split())
# Words of a rate (`km_per_hour`, `speed_a`, `words_per_minute`), which is larger for the faster.
_RATE_WORDS = frozenset("per speed speeds rate rates kmh mph kph wpm velocity".split())


def _timed(name: Any) -> bool:
    """Whether a result's name says it is a time taken (`time1`, `hours_oak`), not a rate (`km_per_hour`)."""
    tokens = set(_tokens(name)) if isinstance(name, str) else set()
    return bool(tokens & _TIME_WORDS) and not tokens & _RATE_WORDS


def _tokens(name: str) -> list[str]:
    """A result's name in its parts: words and numbers, split at `_` and where a number follows a word (`time1`)."""
    return re.findall(r"[a-z]+|\d+", name.lower())


def _match(offered: list[str], names: list[Any]) -> list[str] | None:
    """Each named result's option, when every result names exactly one option and every option is named once:
    `monthly_cost_oak` is Oak's, and so are `alders_monthly` (a possessive without its apostrophe) and `plan_ald`
    (an abbreviation of three letters or more) Alder's. Words all the options share ("plan A", "plan B") tell
    nothing."""
    matched = []
    words = _option_words(offered)
    for name in names:
        hits = _refers_to(name, offered, words)
        if len(hits) != 1:
            return None
        matched.append(hits[0])
    return matched if len(set(matched)) == len(offered) == len(names) else None


def _option_words(offered: list[str]) -> list[set[str]]:
    return [set(re.findall(r"[a-z0-9]+", re.sub(r"'s\b", "", o.lower()))) for o in offered]


def _refers_to(name: Any, offered: list[str], words: list[set[str]] | None = None) -> list[str]:
    """The options a result's name refers to best (none, one, or several equally); `words`: `_option_words(offered)`,
    made once for many names."""
    if not isinstance(name, str):
        return []
    words = _option_words(offered) if words is None else words
    shared = set.intersection(*words) if words else set()
    tokens = _tokens(name)
    # A word itself first: `per_pen_marlow` is Marlow's, though "pen" begins "Pendle".
    scores = [max(_refers(t, w - shared) for t in tokens) for w in words]
    return [o for o, score in zip(offered, scores, strict=True) if score and score == max(scores)]


def _refers(token: str, words: set[str]) -> int:
    """How a part of a result's name refers to one of an option's words: 2 by being it, 1 by the word with an `s`
    after it (`alders`) or its first three letters or more (`ald`), else 0."""
    if token in words:
        return 2
    return int(any(token == word + "s" or (len(token) >= 3 and word.startswith(token)) for word in words))


def _lettered(offered: list[str], names: list[Any], question: str) -> list[str] | None:
    """Each named result's option when the names differ only in one part, a, b, c… or 1, 2, 3… (`cost_a`,
    `cost_b`, as a worked example names two shops A and B; `plan_a_cost`, `plan_b_cost`; `time1`, `time2`): the
    options in the order the question first mentions them. (The composer model, shown `monthly_cost_a` = 1012 and
    `monthly_cost_b` = 20, called Alder the cheaper.)"""
    if len(names) != len(offered) or not all(isinstance(n, str) for n in names):
        return None
    split = [_tokens(n) for n in names]
    if len({len(parts) for parts in split}) != 1:
        return None
    differing = [i for i in range(len(split[0])) if len({parts[i] for parts in split}) > 1]
    if len(differing) != 1:
        return None
    tags = [parts[differing[0]] for parts in split]
    for labels in ("abcdefghij"[:len(names)], "".join(str(i) for i in range(1, len(names) + 1))):
        if len(labels) == len(names) and sorted(tags) == list(labels):
            positions = [question.lower().find(o.lower()) for o in offered]
            if min(positions) < 0:
                return None
            mentioned = [o for _, o in sorted(zip(positions, offered, strict=True))]
            return [mentioned[labels.index(tag)] for tag in tags]
    return None


def sources(dag: Dag, outputs: dict[int, Any], text: str, limit: int = 2) -> list[str]:
    """The `file:line` of the passages (results shaped `[{"source", "text"}, …]`, as document searches return them)
    that hold what the answer rests on: an expert step's answer that the text states, found verbatim in a passage."""
    passages = [p for out in outputs.values() if isinstance(out, list)
                for p in out
                if isinstance(p, dict) and isinstance(p.get("source"), str) and isinstance(p.get("text"), str)]
    if not passages:
        return []
    found: list[str] = []
    for sid, step in dag.steps.items():
        said = outputs.get(sid)
        if not isinstance(step, ExpertStep) or not isinstance(said, str) or not 2 <= len(said.strip(" .")) <= 80:
            continue
        fact = re.compile(rf"(?<!\w){re.escape(said.strip(' .'))}(?!\w)", re.IGNORECASE)  # "25", not "250"
        if not fact.search(text):
            continue
        found += [p["source"] for p in passages if fact.search(p["text"]) and p["source"] not in found][:1]
    return found[:limit]


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _numbers(text: str) -> set[float]:
    found = set()
    for token in _NUMBER.findall(text):
        try:
            found.add(round(float(token.replace(",", "")), 6))
        except ValueError:
            continue
    return found


def _statable(value: Any) -> bool:
    """A value an answer can be checked to state: a number, or a short text that is not a search coming up empty."""
    if is_number(value):
        return True
    return isinstance(value, str) and 0 < len(value.strip(" .")) <= 60 and NOT_IN_DOCUMENTS not in value.lower()


def _names(value: Any) -> list[str]:
    """The names a final value holds: itself if a short text, else the short texts of a one-row table ("which model
    was ridden most?" is answered by a row of the model and its minutes)."""
    if isinstance(value, str):
        return [value] if _statable(value) else []
    if is_table(value) and len(value["rows"]) == 1 and isinstance(value["rows"][0], list):
        return [cell for cell in value["rows"][0] if isinstance(cell, str) and _statable(cell)]
    return []


def ungrounded(text: str, known: set[float], required: list[Any], last: float | None = None) -> str | None:
    """Why an answer is not grounded in the results, or None: every number it states must appear in the question or
    the results (rounded to 2 decimals, as people write money), each required value (a number, or a short text
    such as a name) must be stated, and `last`, if given, must be the last number stated."""
    stated = _numbers(text)
    for value in required:
        if is_number(value):
            if not any(abs(n - value) <= max(0.005, abs(value) * 1e-6) for n in stated):
                return f"it does not state the result {render(value)}"
        elif isinstance(value, str) and value.strip(" .").lower() not in text.lower():
            return f"it does not state the result {value.strip(' .')}"
    stray = [n for n in stated if not any(abs(n - k) <= 0.005 or abs(n - round(k, 2)) < 1e-9 for k in known)]
    if stray:
        return f"{', '.join(format(n, 'g') for n in stray[:3])} appear in no result"
    ordered = _NUMBER.findall(text)
    if last is not None and ordered and abs(float(ordered[-1].replace(",", "")) - last) > max(0.005, abs(last) * 1e-6):
        return f"it states {ordered[-1]} after the result {render(last)}; state the result alone"
    return None


def _single_number(value: Any) -> float | None:
    """The number a final value is: itself, or the one number a short text states ("31", "31 kilometres")."""
    if is_number(value):
        return float(value)
    if isinstance(value, str) and len(value) <= 60 and len(found := _numbers(value)) == 1:
        return next(iter(found))
    return None
