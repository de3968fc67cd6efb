"""How a question asks: the sentence that asks, and whether it asks for one quantity, for the size of a difference,
or to choose. The planner (how samples vote) and the composer (when a number is the whole answer) read a question by
these rules, so they live in one place."""

from __future__ import annotations

import re

# The question's last sentence asks to choose, or for yes or no, when it has one of these words or starts so.
# A choice: the ask opens with a question word that names rather than counts ("Who has read more?"), or offers one
# anywhere ("…, Corder's or Dunn's?", "which"). Mid-sentence "who" is a relative ("the one who goes farther").
_CHOICE = re.compile(r"^((in|on|at|by|from|to|for|with) )?(which|who|whom|whose|where|when|why)\b"
                     r"|\b(which|whether|or)\b", re.IGNORECASE)
# An ask opening so asks for a number, whatever choice word follows ("… cancelled or missed?", "… in 2024 or
# later?"), unless the question offers options (`options`).
_HOW_MUCH = re.compile(r"(?:(?:by|in) )?how (many|much|long|far|old|often|tall|high|heavy|big|wide|deep)\b",
                       re.IGNORECASE)
# A difference asked as "how much more", "by how much does the larger exceed …": a magnitude, never negative.
_COMPARATIVE = re.compile(r"\b(more|less|fewer|farther|further|longer|shorter|larger|smaller|bigger|greater|higher|"
                          r"lower|older|younger|exceeds?|cheaper|dearer|heavier|lighter|faster|slower|earlier|later)\b",
                          re.IGNORECASE)
_BY_HOW = re.compile(r"\bby how (much|many)\b", re.IGNORECASE)  # "Which is larger, …? By how much?"
_ASKS = re.compile(r"\b(how|what)\b", re.IGNORECASE)  # two in one sentence: two things asked, not one number
_YES_NO = re.compile(r"^(is|are|was|were|do|does|did|can|could|will|would|should|has|have|had)\b(?! not\b)",
                     re.IGNORECASE)
# "How many ogres/plates/students …" counts things, which come whole; "how many hours/metres/dollars …" measures, and
# a measure may well be fractional.
_HOW_MANY = re.compile(r"\bhow many\b((?:\s+\w+){0,3})", re.IGNORECASE)
_MEASURES = re.compile(r"\b(hours?|minutes?|seconds?|days?|weeks?|months?|years?|miles?|kilomet(er|re)s?|km|"
                       r"met(er|re)s?|feet|foot|inch(es)?|yards?|lit(er|re)s?|gallons?|cups?|ounces?|pounds?|kilograms?|kg|grams?|tons?|"
                       r"percent|degrees?|dollars?|euros?|square|cubic|times)\b", re.IGNORECASE)
_TASK = re.compile(r"\b(how|what|which|who|calculate|compute|find|determine|work out)\b", re.IGNORECASE)


def ask(question: str) -> str:
    """The sentence that asks: the last one that is a question; instructions may follow it ("Do not include
    units."). Without one, the last sentence that asks something ("Calculate the number of …")."""
    sentences = [s.strip() for s in re.split(r"(?<=[.?!])\s+", question.strip()) if s.strip()]
    asking = next((s for s in reversed(sentences) if s.endswith("?")), None)
    if asking is None:
        asking = next((s for s in reversed(sentences) if _TASK.search(s)), sentences[-1] if sentences else "")
    return asking


def chooses(question: str) -> bool:
    """Whether the question asks to choose ("Which shop is cheaper, Corder's or Dunn's?"): its answer is a name."""
    return bool(_CHOICE.search(ask(question)))


def asks_for_quantity(question: str) -> bool:
    """Whether the question asks for a number, so a number answers it: its ask (the last sentence that is a question,
    else the last sentence) neither offers a choice (a "how many/much" ask only by naming options) nor asks for yes
    or no, and asks one thing ("How much does she earn?", not "Which shop is cheaper?" or "How many work there, and
    how many days off do they get?")."""
    asking = ask(question)
    # "How many appointments …, cancelled or missed?" asks a number; "How much does the cheaper plan cost, Alder or
    # Birch?" offers options, and its answer names one.
    offered = _CHOICE.search(asking) if not _HOW_MUCH.match(asking) or len(options(question)) > 1 else None
    return not offered and not _YES_NO.match(asking) and len(_ASKS.findall(asking)) < 2


def asks_who(question: str) -> bool:
    """Whether the question asks who someone is ("Who does Aino Virtanen report to?", "To whom …?"): a person, whom
    a name answers, never a number (a manager's id is no answer to whom someone reports to)."""
    return bool(re.match(r"\s*(?:(?:in|on|at|by|from|to|for|with|under) )?(?:who|whom)\b", ask(question),
                         re.IGNORECASE))


def asks_for_name(question: str) -> bool:
    """Whether a name answers the question: it asks who (`asks_who`), or which or what thing ("Which department runs
    the most projects?", "In what office does …?"), not which quantity, time or choice of options ("In which year
    …?", "What percentage …?", "Which is cheaper …?"): a row's id is no answer to it."""
    found = _WHICH.match(ask(question))
    return asks_who(question) or (found is not None and found.group(1).lower() not in _NOT_NAMED)


# "(In) which/what <noun> …": the noun says what the answer names.
_WHICH = re.compile(r"\s*(?:(?:in|on|at|by|from|to|for|with|under|of) )?(?:which|what)\s+([a-z]+)\b",
                    re.IGNORECASE)
# Words after "which"/"what" that ask no name: verbs ("What is …"), a choice among options ("which one", "which of"),
# and quantities, times and measures, answered by a number or a date.
_NOT_NAMED = frozenset("""is was are were be has have had does did do will would can could should may might must
    one ones of kind kinds type sort year years month months week weeks day days date dates decade century time times
    hour hours minute minutes age floor number numbers amount amounts percentage percent share fraction proportion
    ratio price prices cost costs fee size level grade score rate total sum average value difference speed distance
    length weight height width depth area volume temperature profit income salary pay balance budget discount
    quantity interest minimum maximum population revenue tax wage capacity duration""".split())


def rounding(question: str) -> int | None:
    """The decimal places the question asks its answer rounded to ("to one decimal place": 1; "to the nearest cent":
    2, or 0 asked in cents; "to the nearest whole number", "… minute": 0; "to the nearest hundred": -2), or None: no
    rounding asked, one up or down, or "the nearest" something that is no unit ("the nearest station")."""
    if _ROUNDED_WAY.search(question):
        return None
    found = _DECIMALS.search(question)
    if found:
        return _COUNTS[found.group(1).lower()]
    found = _NEAREST.search(question)
    if not found:
        return None
    word = found.group(1).lower()
    if word.endswith("s") and (word[:-1] in _PLACES or word[:-1] in _WHOLE_UNITS or word[:-1] == "cent"):
        word = word[:-1]  # "to the nearest tenths", "… cents"
    if word in ("cent", "penny"):
        return 0 if _IN_CENTS.search(question) else 2
    return _PLACES.get(word, 0 if word in _WHOLE_UNITS else None)


_COUNTS = {"one": 1, "two": 2, "three": 3, "1": 1, "2": 2, "3": 3}
_DECIMALS = re.compile(r"\bto (one|two|three|[123]) decimal places?\b", re.IGNORECASE)
_NEAREST = re.compile(r"\bto the nearest ((?:ten |hundred )?[a-z]+)", re.IGNORECASE)
_PLACES = {"tenth": 1, "hundredth": 2, "thousandth": 3, "ten": -1, "hundred": -2, "thousand": -3,
           "ten thousand": -4, "hundred thousand": -5, "million": -6}
_WHOLE_UNITS = frozenset("""whole integer unit one dollar euro pound yen franc rupee minute hour second day week month
    year metre meter kilometre kilometer mile foot inch yard gram kilogram kilo ounce litre liter gallon degree
    percent person""".split())
_ROUNDED_WAY = re.compile(r"\bround(?:ed|ing)? (?:it |the \w+ )?(?:up|down)\b", re.IGNORECASE)
_IN_CENTS = re.compile(r"\b(?:in|how many) (?:cents|pence)\b", re.IGNORECASE)


def asks_for_difference(question: str) -> bool:
    """Whether the question asks for one quantity by comparing two ("How many more eggs does the larger farm
    collect?", "Which is larger, …? By how much?"): its answer is the size of the difference."""
    asking = ask(question)
    return asks_for_quantity(question) and bool(_COMPARATIVE.search(asking) or _BY_HOW.search(asking))


def counts_things(question: str) -> bool:
    """Whether the question asks how many of something countable ("How many ogres has Charles slain?"), whose
    answer is a whole number; not a measure ("How many hours does he spend?") nor something else."""
    found = asks_for_quantity(question) and _HOW_MANY.search(ask(question))
    return bool(found) and not _MEASURES.search(found.group(1))


# "After how many weeks can he first afford the bike?": the periods until something is first reached, each whole.
_PERIODS = re.compile(r"\bhow many (days|weeks|months|years)\b", re.IGNORECASE)
_FIRST = re.compile(r"\bafter how many\b|\bfirst (?:afford|reach|exceed|have|save|buy|pass|overtake|be able)\b"
                    r"|\bwill it take\b[^?]{0,80}?\b(?:afford|save|reach|buy|pay for|have enough)\b", re.IGNORECASE)


def counts_periods(question: str) -> bool:
    """Whether the question counts the days, weeks, months or years until something is first reached ("After how
    many weeks of saving can he first afford the bike?"): a whole number of them, a part of one counting as one
    more (11.87 weeks of saving afford it only in the 12th)."""
    asking = ask(question)
    return asks_for_quantity(question) and bool(_PERIODS.search(asking) and _FIRST.search(asking))


# "How many buses are needed", "enough boxes": a part of one more is one more, so a count rounds up; "need to share"
# is what someone must do, and "full boxes" counts only whole ones.
_ENOUGH = re.compile(r"\b(needed|required|enough)\b|\bneeds?\b(?!\s+to\b)", re.IGNORECASE)
_FULL = re.compile(r"\b(full|whole|complete)\b", re.IGNORECASE)


def counts_up(question: str) -> bool:
    """Whether the question counts what suffices ("How many vans are needed for 30 people?"): a fraction of a thing
    is then one thing more, where elsewhere it is no thing ("How many full boxes …", "How many tubes does he have?")."""
    asking = ask(question)
    return bool(_ENOUGH.search(asking)) and not _FULL.search(asking)


_NUMBER = re.compile(r"(?<![\w.])\d+(?:,\d{3})*(?:\.\d+)?(?!\w)")


# A number as a worked answer states it: "1,234.5" is one number, a minus sign belongs to it, "v2" is none. The eval
# scorer reads answers by the same rule (evals/scoring.py).
_STATED = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.])-?\d+(?:\.\d+)?")


def numbers_stated(text: str) -> list[float]:
    """The numbers a text states, in order."""
    return [float(m.replace(",", "")) for m in _STATED.findall(text)]


# A worked answer's marked result, as the model writes it in LaTeX: `\boxed{750}`, `\boxed{54 \text{ euros}}`.
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")


def final_number(text: str) -> float | None:
    """The number a worked answer ends on: the last in its last `\\boxed{…}` when it marks its result so (a sentence
    after it may restate the question's numbers: "… swim 750 metres on Sunday to bring his total to 4 kilometres"),
    else its last number; None if it states none."""
    boxed = _BOXED.findall(text)
    for source in (boxed[-1:] + [text]):
        if numbers := numbers_stated(source):
            return numbers[-1]
    return None


IMPLIED = frozenset({0.0, 1.0})  # numbers a program may well leave implied ("1/5 occupied" is `/ 5`)


def given_numbers(question: str) -> frozenset[float]:
    """The numbers the question states, but those a program may leave implied (`IMPLIED`)."""
    return numbers_in(question) - IMPLIED


# A comma between digits that does not open a thousands group (three digits, then no digit) separates a list: "5,10
# and 15" are three numbers, as `_NUMBER` reads them.
_LIST_COMMA = re.compile(r"(?<=\d),(?=\d)(?!\d{3}(?!\d))")


def spaced_lists(text: str) -> str:
    """The text with a space after each list comma between numbers ("5,10 and 15" → "5, 10 and 15"; "15,000"
    stays): read unspaced, the default model wrote 510 and 15 for "5,10 and 15" in every one of six samples."""
    return _LIST_COMMA.sub(", ", text)


def numbers_in(text: str) -> frozenset[float]:
    """Every number the text states, 0 and 1 too."""
    return frozenset(float(n.replace(",", "")) for n in _NUMBER.findall(text))


# A range's stop: "the whole numbers from 1 to 20" is `range(1, 21)`, which uses the 20 the question gives.
_RANGE_STOP = re.compile(r"\brange\(\s*[^,()]*,\s*(\d+)\s*[,)]")


def numbers_used(text: str, given: frozenset[float]) -> float:
    """The share of the given numbers a text (a program) uses, as written, or a percent as its fraction (80 as 0.8)
    or as the factor of a rise or a fall by it (25 as 1.25 or 0.75: "rises 25%" is `* 1.25`), in a unit a hundred
    or a thousand times larger or smaller (750 ml as 0.75 litres, 1.50 euros as 150 cents), or as the last number
    counted to by a range's stop (20 as `range(1, 21)`)."""
    if not given:
        return 1.0
    written = {round(float(n.replace(",", "")), 9) for n in _NUMBER.findall(text)}
    written |= {float(stop) - 1 for stop in _RANGE_STOP.findall(text)}
    return sum(any(round(form, 9) in written for form in (n, n / 100, 1 + n / 100, 1 - n / 100, n / 1000, n * 100,
                                                           n * 1000))
               for n in given) / len(given)


# Which way a choice goes: "which plan is cheaper" wants the smallest value, "who has read more" the largest.
_LEAST = re.compile(r"\b(cheaper|cheapest|less|least|fewer|fewest|smaller|smallest|lower|lowest|shorter|shortest|"
                    r"younger|youngest|slower|slowest|earlier|earliest|lighter|lightest|nearer|nearest|closer|closest|"
                    r"narrower|narrowest|shallower|shallowest|weaker|weakest|colder|coldest)\b", re.IGNORECASE)
_MOST = re.compile(r"\b(more|most|larger|largest|bigger|biggest|greater|greatest|higher|highest|longer|longest|"
                   r"older|oldest|faster|fastest|quicker|quickest|later|latest|heavier|heaviest|farther|farthest|further|furthest|"
                   r"dearer|dearest|taller|tallest|wider|widest|deeper|deepest|richer|richest|stronger|strongest|"
                   r"warmer|warmest|hotter|hottest)\b", re.IGNORECASE)


def options(question: str) -> list[str]:
    """The options a choice offers at the end of its ask ("Which plan is cheaper, Oak or Pine?" → Oak, Pine;
    "Which is tallest: Ash, Beech, or Cedar?" → all three); none when the ask does not end with short names joined
    by "or"."""
    parts = [p.strip() for p in re.split(r"[,:]", ask(question).strip().rstrip("?. "))]
    if len(parts) < 2 or not re.search(r"(^|\s)or\s", parts[-1]):
        return []
    listed = [o.strip() for o in re.split(r"(?:^|\s+)or\s+", parts[-1]) if o.strip()]
    for part in reversed(parts[:-1]):  # "Ash, Beech, or Cedar": earlier names, up to the words that ask
        if len(part.split()) > 3 or _ASKING_WORD.match(part):
            break
        listed.insert(0, part)
    return listed if len(listed) >= 2 and all(0 < len(o.split()) <= 3 for o in listed) else []


_ASKING_WORD = re.compile(r"(which|who|whom|whose|what|how|where|when|is|are|does|do)\b", re.IGNORECASE)


def direction(question: str) -> str | None:
    """`min` when the ask chooses the smaller (cheaper, fewer …), `max` the larger (more, older …), else None."""
    asking = ask(question)
    least, most = bool(_LEAST.search(asking)), bool(_MOST.search(asking))
    return "min" if least and not most else "max" if most and not least else None
