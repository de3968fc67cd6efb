"""The deterministic verifiers: recomputation, declared result types, numeric sanity, non-empty expert answers."""

from __future__ import annotations

import msgspec
import pytest

from stepwise.reasoning.types import Expect, ExpertStep, Step, ToolStep
from stepwise.tools import default_tools, load_tools
from stepwise.verifiers import default_verifiers
from stepwise.verifiers.basic import ExpertAnswered, NumericSanity, ResultTyped, ToolRecomputed
from tests.fixtures import user_tools

STEP = ToolStep(1, "calculator", {"expression": "6*7"})


async def no_model(*args, **kwargs):
    raise AssertionError("deterministic verifiers make no model call")


async def test_a_correct_tool_result_passes():
    """Recomputing 6*7 gives the step's 42."""
    verdict = await ToolRecomputed(default_tools()).verify(STEP, {"expression": "6*7"}, 42, no_model)
    assert verdict.outcome == "pass"


async def test_a_tampered_tool_result_fails():
    """A result that recomputation does not reproduce fails, saying both values."""
    verdict = await ToolRecomputed(default_tools()).verify(STEP, {"expression": "6*7"}, 41, no_model)
    assert verdict.outcome == "fail" and "42" in verdict.reason and "41" in verdict.reason


async def test_a_result_must_have_the_type_its_tool_declares():
    """The calculator returns numbers; a @tool function its return annotation; anything else fails."""
    tools = load_tools(["tests.fixtures.user_tools"])
    check = ResultTyped(tools)
    assert (await check.verify(STEP, {}, 42, no_model)).outcome == "pass"
    assert (await check.verify(STEP, {}, "42 apples", no_model)).outcome == "fail"
    shout = ToolStep(2, "shout", {"text": "x"})
    assert (await check.verify(shout, {}, {"text": "X"}, no_model)).outcome == "pass"
    assert (await check.verify(shout, {}, ["X"], no_model)).outcome == "fail"
    assert user_tools.convert.result_type is float


async def test_numbers_must_be_finite_and_a_step_expecting_a_number_must_get_one():
    """NaN or infinity anywhere in a result fails; an expert step expecting a number alone, answered in words, is
    retried, with the reason as feedback."""
    sanity = NumericSanity()
    assert (await sanity.verify(STEP, {}, float("inf"), no_model)).outcome == "fail"
    assert (await sanity.verify(STEP, {}, {"a": [1, float("nan")]}, no_model)).outcome == "fail"
    ask_number = ExpertStep(3, "general", "How many legs does a spider have?", expect=Expect(number=True))
    verdict = await sanity.verify(ask_number, ask_number.input, "eight", no_model)
    assert (verdict.outcome, verdict.reason) == ("retry", "asked for a number, got 'eight'")
    assert (await sanity.verify(ask_number, ask_number.input, "8", no_model)).outcome == "pass"


async def test_a_verifier_checks_what_a_step_states_never_how_its_question_is_worded():
    """A question saying "Reply with a number." without `expect` states nothing: an answer in words passes."""
    worded = ExpertStep(3, "general", "How many legs does a spider have? Reply with a number.")
    assert (await NumericSanity().verify(worded, worded.input, "eight", no_model)).outcome == "pass"


async def test_an_empty_expert_answer_asks_for_a_retry():
    """Whitespace is not an answer."""
    step = ExpertStep(2, "general", "Who wrote Hamlet?")
    assert (await ExpertAnswered().verify(step, step.input, "  ", no_model)).outcome == "retry"
    assert (await ExpertAnswered().verify(step, step.input, "Shakespeare", no_model)).outcome == "pass"
    assert (await ExpertAnswered().verify(step, step.input, 42, no_model)).outcome == "fail"


def test_model_verifiers_are_chosen_by_name():
    """self_consistency and llm_judge join on request; an unknown name is refused."""
    names = [v.name for v in default_verifiers(default_tools(), ("self_consistency", "llm_judge"))]
    assert names[-2:] == ["self_consistency", "llm_judge"]
    with pytest.raises(ValueError, match="unknown verifiers \\['oracle'\\]"):
        default_verifiers(default_tools(), ("oracle",))


def expecting(kind: str, target: str, expect: dict) -> Step:
    wanted = msgspec.convert(expect, Expect)
    return ExpertStep(1, target, "q", expect=wanted) if kind == "expert" else ToolStep(1, target, {"expression": "1"},
                                                                                        expect=wanted)


@pytest.mark.parametrize(
    ("kind", "expect", "output", "outcome"),
    [
        ("tool", {"min": 0, "max": 100}, 42, "pass"),
        ("tool", {"min": 0, "max": 100}, 420, "replan"),
        ("tool", {"min": 0}, -3.5, "replan"),
        ("expert", {"max": 10, "unit": "km"}, "About 12 km.", "retry"),
        ("expert", {"max": 20, "unit": "km"}, "About 12 km.", "pass"),
        ("expert", {"unit": "km"}, "About 12 miles.", "retry"),
        ("expert", {"min": 1}, "between 3 and 4", "retry"),
        ("expert", {"number": True}, "8 legs", "retry"),
        ("expert", {"number": True}, "1,200.", "pass"),
        ("tool", {"number": True}, 42, "pass"),
        ("tool", {"number": True}, {"rows": [[42]]}, "replan"),
    ],
)
async def test_numeric_sanity_holds_a_step_to_the_range_and_unit_its_plan_states(kind, expect, output, outcome):
    """`expect` in the plan: a number outside [min, max], text without the unit, or anything but a number alone where
    one is expected is refused — a tool step needs a new plan, an expert step another try; text with no single number
    cannot meet a range."""
    target = "calculator" if kind == "tool" else "general"
    verdict = await NumericSanity().verify(expecting(kind, target, expect), None, output, ask=None)
    assert verdict.outcome == outcome, verdict.reason


def test_a_step_without_expect_encodes_as_before():
    """`expect` is left out of a step's JSON when the plan does not state it (traces and replies keep their shape)."""
    assert b"expect" not in msgspec.json.encode(ToolStep(1, "calculator", {"expression": "1"}))
    assert msgspec.json.decode(b'{"id":1,"kind":"expert","target":"g","input":"q","expect":{"unit":"km"}}',
                               type=Step).expect == Expect(unit="km")


class PowerArgs(msgspec.Struct):
    exponent: int


class PowerOfTen:
    """A deterministic tool whose results reach past a float's range and past Python's 4,300-digit text limit."""

    name = "power"
    description = "10 to a power"
    args_type = PowerArgs
    result_type = int
    deterministic = True

    async def run(self, args: PowerArgs) -> int:
        return 10**args.exponent


@pytest.mark.parametrize("exponent", [400, 5000])
async def test_no_verifier_raises_on_an_int_too_large_for_a_float_or_for_text(exponent):
    """10**400 is past a float (math.isfinite, float() and :g raise on it), 10**5000 past repr() as well: each is
    finite and of its type — recomputed, typed and sane, every verdict a pass with a reason."""
    tools = {"power": PowerOfTen()}
    step = ToolStep(1, "power", {"exponent": exponent})
    for verifier in (ToolRecomputed(tools), ResultTyped(tools), NumericSanity()):
        verdict = await verifier.verify(step, {"exponent": exponent}, 10**exponent, no_model)
        assert verdict.outcome == "pass" and verdict.reason, verifier.name
    inside = await NumericSanity().verify(STEP, {}, {"rows": [[-(10**exponent), 1.5]]}, no_model)
    assert inside.outcome == "pass"


async def test_a_huge_int_compared_with_a_float_or_a_range_gives_a_verdict_not_an_error():
    """Recomputing 10**400 where the step said 1e308 fails; a huge int outside an expected range asks for a replan,
    saying how many digits it has; a NaN next to a 5,000-digit int still fails, with a reason that can be printed."""
    tools = {"power": PowerOfTen()}
    step = ToolStep(1, "power", {"exponent": 400})
    assert (await ToolRecomputed(tools).verify(step, {"exponent": 400}, 1e308, no_model)).outcome == "fail"
    huge_step = ToolStep(1, "power", {"exponent": 5000})
    tampered = await ToolRecomputed(tools).verify(huge_step, {"exponent": 5000}, 10**5000 + 1, no_model)
    assert tampered.outcome == "fail" and "too long to show" in tampered.reason
    above = await NumericSanity().verify(expecting("tool", "calculator", {"max": 100}), None, 10**400, no_model)
    assert above.outcome == "replan" and above.reason == "a 401-digit number is above the expected maximum 100"
    below = await NumericSanity().verify(expecting("tool", "calculator", {"min": 0}), None, -(10**400), no_model)
    assert below.outcome == "replan" and "below the expected minimum 0" in below.reason
    nan = await NumericSanity().verify(STEP, {}, [10**5000, float("nan")], no_model)
    assert nan.outcome == "fail" and "too long to show" in nan.reason
    typed = await ResultTyped({"calculator": PowerOfTen()}).verify(STEP, {}, [10**5000], no_model)
    assert typed.outcome == "fail" and "too long to show" in typed.reason


async def test_an_expert_answer_that_only_repeats_a_name_from_its_question_is_retried():
    """"Which firm did Corwin Astley own?" → "Corwin Astley" is the subject echoed, not an answer (a reader's question
    follows "Question:", after its passages); a choice offered with "or" may be answered with one of its names, and
    a reader may always say the passages do not hold the answer."""
    reader = ("Answer from these passages only.\nPassages: [...Corwin Astley... Question: none]\nQuestion: What was "
              "the shipping firm of Corwin Astley?")
    step = ExpertStep(2, "general", reader)
    echoed = await ExpertAnswered().verify(step, reader, "Corwin Astley.", no_model)
    assert echoed.outcome == "retry" and "repeats 'Corwin Astley'" in echoed.reason
    assert (await ExpertAnswered().verify(step, reader, "the Marlin Line", no_model)).outcome == "pass"
    refusal = "Answer from these passages only.\nPassages: [...]\nQuestion: Who founded not in the documents?"
    assert (await ExpertAnswered().verify(step, refusal, "not in the documents", no_model)).outcome == "pass"
    choice = "Who is older, Ada or Grace?"
    assert (await ExpertAnswered().verify(ExpertStep(1, "general", choice), choice, "Ada",
                                          no_model)).outcome == "pass"


async def test_a_reader_asked_a_year_of_birth_or_death_answering_another_year_of_the_passages_is_retried():
    """"Ysolde Carrack (1836–1911) … She retired in 1890": asked the year she died, 1890 is retried with feedback
    naming 1911, and 1911 passes; a year no life's brackets decide (a founding) is the reader's to answer."""
    passages = ('[{"source":"y.md:3","text":"Ysolde Carrack (1836–1911) was a navigator. She retired in 1890."},'
                '{"source":"m.md:1","text":"The mill was founded in 1822 by Edda Voss."}]')

    def reader(question: str) -> str:
        return f"Answer from these passages only, as in (1790–1858).\nPassages: {passages}\nQuestion: {question}"

    died = reader("In which year did Ysolde Carrack die?")
    step = ExpertStep(2, "general", died)
    wrong = await ExpertAnswered().verify(step, died, "1890", no_model)
    assert wrong.outcome == "retry" and wrong.reason.endswith("so the year of death is 1911")
    assert (await ExpertAnswered().verify(step, died, "She died in 1911.", no_model)).outcome == "pass"
    born = reader("When was Ysolde Carrack born?")
    assert "the year of birth is 1836" in (await ExpertAnswered().verify(step, born, "1911", no_model)).reason
    son = reader("In which year did Ysolde Carrack's son die?")  # someone named through her
    assert (await ExpertAnswered().verify(step, son, "1899", no_model)).outcome == "pass"
    founded = reader("In which year was the mill founded?")
    assert (await ExpertAnswered().verify(step, founded, "1822", no_model)).outcome == "pass"


async def test_a_reader_asked_where_a_person_was_born_answering_another_place_of_the_passages_is_retried():
    """"Wendeline Orme (1851–1928) was a meteorologist, born in Windlestrand. She studied at the Arnsgate College":
    asked where she was born, Arnsgate is retried with feedback naming Windlestrand, which passes; passages naming
    two birthplaces for her, a question about someone named through her or about a year, another person's
    birthplace in her sentence and a month decide nothing."""
    orme = ("Wendeline Orme (1851–1928) was a meteorologist, born in Windlestrand. She studied at the Arnsgate "
            "College of Navigation.")
    village = "The shipbuilder Jorun Aske and the meteorologist Wendeline Orme were both born in Windlestrand."

    def reader(question: str, *texts: str) -> str:
        passages = ",".join(f'{{"source":"o.md:{i}","text":"{t}"}}' for i, t in enumerate(texts))
        return f"Answer from these passages only.\nPassages: [{passages}]\nQuestion: {question}"

    asked = reader("In which town was Wendeline Orme born?", orme, village)
    step = ExpertStep(2, "general", asked)
    wrong = await ExpertAnswered().verify(step, asked, "Arnsgate", no_model)
    assert wrong.outcome == "retry" and wrong.reason == "the passages say Wendeline Orme was born in Windlestrand"
    assert (await ExpertAnswered().verify(step, asked, "Windlestrand.", no_model)).outcome == "pass"
    where = reader("Where was Jorun Aske born?", village)
    assert (await ExpertAnswered().verify(step, where, "Caddermouth", no_model)).outcome == "retry"
    two = reader("Where was Wendeline Orme born?", orme, "Wendeline Orme was born in Lowenby.")
    assert (await ExpertAnswered().verify(step, two, "Arnsgate", no_model)).outcome == "pass"
    through = reader("In which town was the founder of the Herald born?", orme)
    assert (await ExpertAnswered().verify(step, through, "Arnsgate", no_model)).outcome == "pass"
    year = reader("In which year was Wendeline Orme born?", orme)
    assert (await ExpertAnswered().verify(step, year, "1851", no_model)).outcome == "pass"
    pupil = reader("Where was Ada Vell born?", "Ada Vell trained under Lucan Threlkeld, who was born in Arnsgate.")
    assert (await ExpertAnswered().verify(step, pupil, "Lowenby", no_model)).outcome == "pass"  # his, not hers
    dated = reader("Where was Ada Vell born?", "Ada Vell was born in March 1836 in Hemmingrove In the spring.")
    assert (await ExpertAnswered().verify(step, dated, "Hemmingrove", no_model)).outcome == "pass"


async def test_a_reader_asked_who_held_a_post_answering_another_person_of_the_passages_is_retried():
    """"Its first director was Casimir Holt" in the observatory's own article, beside "… the first director of the
    Varnay Observatory, which Odile Marchetti had founded": asked the first director, Odile Marchetti is retried with
    feedback naming Casimir Holt, who passes; "<person> was the <post> of <thing>" says so too (a title or a
    sentence's first word before the name is no part of it); "Its <post>" in another thing's article, two holders,
    another post ("deputy director"), a possessive ("Casimir Holt's student") or a post the question does not ask
    decide nothing."""
    own = "Marchetti never ran it. Its first director was [Casimir Holt](casimir_holt.md), appointed in 1866."
    his = ("Casimir Holt (1833–1902) was an astronomer. In 1866 he was appointed the first director of the "
           "[Varnay Observatory](varnay_observatory.md), which [Odile Marchetti](odile_marchetti.md) had founded.")

    def reader(question: str, *passages: tuple[str, str]) -> str:
        listed = ",".join(f'{{"source":"{source}:3","text":"{text}"}}' for source, text in passages)
        return f"Answer from these passages only.\nPassages: [{listed}]\nQuestion: {question}"

    asked = reader("Who was the first director of the Varnay Observatory?", ("varnay_observatory.md", own),
                   ("casimir_holt.md", his))
    step = ExpertStep(2, "general", asked)
    wrong = await ExpertAnswered().verify(step, asked, "Odile Marchetti", no_model)
    assert wrong.outcome == "retry"
    assert wrong.reason == "the passages say the first director of Varnay Observatory was Casimir Holt"
    assert (await ExpertAnswered().verify(step, asked, "Casimir Holt.", no_model)).outcome == "pass"
    said = reader("Who was the captain of the Ottoline?", ("ness.md", "Bartholomew Ness was the captain of the "
                                                                      "[Ottoline](ottoline.md) in 1887."))
    assert (await ExpertAnswered().verify(step, said, "Mairead Quill", no_model)).outcome == "retry"
    elsewhere = reader("Who was the first director of the Varnay Observatory?", ("istrel_gazette.md", own))
    assert (await ExpertAnswered().verify(step, elsewhere, "Odile Marchetti", no_model)).outcome == "pass"
    two = reader("Who was the captain of the Ottoline?", ("ottoline.md", "Its captain was Bartholomew Ness."),
                 ("ottoline.md", "Its captain was Mairead Quill."))
    assert (await ExpertAnswered().verify(step, two, "Ann Lee", no_model)).outcome == "pass"
    founder = reader("Who was the founder of the Varnay Observatory?", ("varnay_observatory.md", own))
    assert (await ExpertAnswered().verify(step, founder, "Odile Marchetti", no_model)).outcome == "pass"
    director = "Who was the director of the Varnay Observatory?"
    later = reader(director, ("a.md", "Later Professor Casimir Holt was the director of the Varnay Observatory."))
    assert (await ExpertAnswered().verify(step, later, "Casimir Holt", no_model)).outcome == "pass"
    assert (await ExpertAnswered().verify(step, later, "Ann Lee", no_model)).reason.endswith("was Casimir Holt")
    deputy = reader(director, ("a.md", "The deputy director of the Varnay Observatory was Bob Lane."))
    assert (await ExpertAnswered().verify(step, deputy, "Ann Lee", no_model)).outcome == "pass"
    student = reader(director, ("a.md", "The director of the Varnay Observatory was Casimir Holt's student Ann Lee."))
    assert (await ExpertAnswered().verify(step, student, "Ann Lee", no_model)).outcome == "pass"


async def test_the_life_years_check_takes_only_the_name_right_before_the_brackets():
    """The name is looked for in a bounded window just before the years (a pattern anchored at the end of 60 KB of
    capitalised words took 24 s here): a name written further back, or one the question does not give, decides
    nothing."""
    far = ("x\nPassages: Ysolde Carrack" + " Of The Northern Sea" * 6 + " (1836–1911).\nQuestion: When did Ysolde "
           "Carrack die?")
    assert (await ExpertAnswered().verify(ExpertStep(1, "general", far), far, "1890", no_model)).outcome == "pass"
    long = "x\nPassages: " + "Aa " * 20_000 + "(1200–1300)\nQuestion: When was Aa Aa born?"
    assert (await ExpertAnswered().verify(ExpertStep(1, "general", long), long, "1", no_model)).outcome == "pass"
