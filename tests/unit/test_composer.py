"""The composer: a number the tools computed for a quantity question is the answer as it is; anything else is
written by the composer model from the results."""

from __future__ import annotations

import msgspec
import pytest

from stepwise.reasoning import events as ev
from stepwise.reasoning.composer import Composer, ranked_options, results_text, ungrounded
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.plan import validate_plan
from stepwise.reasoning.program_planner import ProgramPlanner
from stepwise.reasoning.questions import asks_for_quantity
from stepwise.reasoning.report import fold
from stepwise.reasoning.types import Plan, ToolStep
from stepwise.tools import default_tools
from tests.doubles import StubTool, engine_with
from tests.unit.test_program_planner import Samples, run


@pytest.mark.parametrize(("question", "quantity"), [
    ("A baker sells 42 muffins a day at $3. How much does she earn in a week?", True),
    ("How many passengers does the ferry carry in one week?", True),
    ("What is (17*23)+(45*12)?", True),
    ("Pens cost 9 euros at one shop. Which shop is cheaper per pen, Corder's or Dunn's?", False),
    ("Who founded the town?", False),
    ("Is 91 a prime number?", False),
    ("Does the tank hold more than 40 litres?", False),
    ("She saves 5 a week. When will she have 100?", False),
    ("How many people work in Research, and how many vacation days do they get?", False),
    ("Ann has 3 pens. How many pens do 4 Anns have? Give the result as your final answer. Do not include units.", True),
    ("Which costs less, tea or coffee? Give the result as your final answer.", False),
    ("Mix 3:5. If she used 150 in all, calculate the number of spoons of sugar she used. Give the result as your "
     "final answer. Do not include units.", True),
    ("Two shops sell pens. Find which shop is cheaper per pen, Corder's or Dunn's. Do not include units.", False),
    ("Rhea walks 15 km and Sven 24 km. How many kilometres farther does the one who goes farther travel?", True),
    ("In which year was the teacher of the engineer born?", False),
    ("How many appointments did the surgery have in April, including any that were cancelled or that the owner "
     "missed?", True),
    ("How many members joined in 2024 or later?", True),
    ("How much does the cheaper plan cost, Alder or Birch?", False),
])
def test_a_question_asks_for_one_quantity_unless_its_last_sentence_offers_a_choice_or_asks_for_more(question, quantity):
    """The ask is the last sentence that is a question (instructions may follow it), else the last sentence: choice
    words (which, who, or …), a leading auxiliary verb or two things asked mean not one number; an ask opening "how
    many" or "how much" asks for a number whatever "or" it holds, unless the question names options."""
    assert asks_for_quantity(question) is quantity


async def test_a_computed_number_answers_a_quantity_question_without_a_composer_call():
    """The plan's final number is the answer's text and value; the model is called once, for the plan."""
    backend = Samples(["a = 42 * 3\nanswer = a * 7"])
    report, _ = await run(backend, "A baker sells 42 muffins a day at $3 each. How much does she earn in a week?",
                          samples=1)
    assert report.status == "finished"
    assert report.answer.text == "882" and report.answer.value == 882 and report.answer.uses == [2]
    assert len(backend.calls) == 1


async def test_a_quantity_question_answered_in_several_parts_is_answered_by_the_last_part_without_a_composer_call():
    """`answer = field, courtyard, difference` to "by how many square metres does the larger exceed the smaller?"
    is the difference's size, 9, however the program subtracted."""
    backend = Samples(["field = 18 * 12\ncourtyard = 15 ** 2\ndifference = field - courtyard\n"
                       "answer = field, courtyard, difference"])
    report, _ = await run(backend, "A field is 18 m by 12 m; a courtyard is a square with 15 m sides. By how many "
                                   "square metres does the larger area exceed the smaller?", samples=1)
    assert report.answer.text == "9" and report.answer.value == 9 and report.answer.uses == [3]
    assert len(backend.calls) == 1


async def test_a_choice_between_computed_numbers_is_still_written_by_the_composer():
    """Which-questions need the names the numbers belong to: the composer model writes the answer."""
    backend = Samples(["corder = 9 / 36\ndunn = 6 / 20\nanswer = min(corder, dunn)"],
                      '{"text":"Corder\'s is cheaper per pen.","uses":[1,2]}')
    report, _ = await run(backend, "Which shop is cheaper per pen, Corder's or Dunn's?", samples=1)
    assert report.answer.text.startswith("Corder's is cheaper") and len(backend.calls) == 2


async def test_a_composed_answer_never_starts_with_stray_punctuation():
    """The composer model has begun an answer ", Engineering has …": the text starts at its first word."""
    backend = Samples(["corder = 9 / 36\ndunn = 6 / 20\nanswer = min(corder, dunn)"],
                      '{"text":", Corder\'s is cheaper per pen.","uses":[1,2]}')
    report, _ = await run(backend, "Which shop is cheaper per pen, Corder's or Dunn's?", samples=1)
    assert report.answer.text == "Corder's is cheaper per pen."


async def test_the_composer_model_writes_every_answer_when_asked_to():
    """With always=True (STEPWISE_COMPOSE=always) a computed number is still composed into a sentence."""
    backend = Samples(["answer = 2 + 2"], '{"text":"Four apples: 4.","uses":[1]}')
    report, _ = await run(backend, "How many apples are there?", samples=1, always=True)
    assert report.answer.text == "Four apples: 4." and report.answer.value == 4 and len(backend.calls) == 2


async def test_a_single_quantity_is_stated_last_or_the_composer_is_asked_again():
    """An answer copying a passage ("It is 31 kilometres long and was opened in 1851.") ends with a number that is
    not the result: the composer is asked again; an answer stating the result last stands."""
    question = "In 2020 Ann had 2 apples and got 2 more. How many apples are there?"
    backend = Samples(["answer = 2 + 2"], '{"text":"There are 4 apples, as in 2020.","uses":[1]}',
                      '{"text":"There are 4 apples.","uses":[1]}')
    report, _ = await run(backend, question, samples=1, always=True)
    assert report.answer.text == "There are 4 apples." and len(backend.calls) == 3
    assert "states 2020 after the result 4" in ungrounded("4 apples, as in 2020.", {4.0, 2020.0}, [4], 4)
    assert ungrounded("In 2020 there were 4.", {4.0, 2020.0}, [4], 4) is None


def test_an_answer_is_ungrounded_when_it_leaves_out_a_required_value_or_states_a_number_no_result_has():
    """Each required value must be stated (numbers to 2 decimals, as money is written; names as written); every
    number must come from somewhere."""
    known = {12.0, 3.0, 36.0}
    assert ungrounded("She pays 36.", known, [36]) is None
    assert ungrounded("She pays 35.996 in all.", known | {35.996}, [35.996]) is None
    assert "does not state the result 36" in ungrounded("She pays a lot.", known, [36])
    assert "40 appear in no result" in ungrounded("She pays 36, or 40 with tax.", known, [36])
    assert ungrounded("Corder's is cheaper.", known, []) is None
    assert "does not state the result Ada Byron" in ungrounded("12 people; founded by someone.", known,
                                                               [12, "Ada Byron."])


async def test_an_answer_to_two_things_must_state_both_or_it_is_their_values():
    """A program answering `a, b`: the composer is asked again when its text leaves one out, then the values stand."""
    backend = Samples(["a = 6 * 10\nb = 5 * 5\nanswer = a, b"], '{"text":"25 days.","uses":[2]}',
                      '{"text":"Days: 25.","uses":[2]}')
    report, _ = await run(backend, "How many people work there, and how many days off do they get?", samples=1)
    assert report.answer.text == "60; 25" and report.answer.uses == [1, 2] and len(backend.calls) == 3


def test_the_composer_is_told_whose_value_a_chosen_minimum_is():
    """`answer = min(corder, dunn)` ends in a number; the results name the quantity it came from, so a "which"
    answer can name the shop rather than the price."""
    from stepwise.reasoning.composer import results_text
    from stepwise.reasoning.plan import validate_plan
    from stepwise.reasoning.program import compile_program
    from stepwise.tools.calculator import Calculator

    tools = {"calculator": Calculator()}
    program = compile_program("corder = 9 / 36\ndunn = 6 / 20\nanswer = min(corder, dunn)", tools, "general")
    text = results_text(validate_plan(program.plan, tools, ["general"]), {1: 0.25, 2: 0.3, 3: 0.25}, tools)
    assert text.splitlines()[-1] == "Final result (step 3): 0.25 (the value of corder)"


def test_the_composer_is_told_which_of_several_compared_results_is_largest_and_smallest():
    """`answer = lena, milo` for "who has read more?": the results say by name which is the largest and which the
    smallest, so the choice is not left to the model's reading of two numbers."""
    from stepwise.reasoning.composer import results_text
    from stepwise.reasoning.plan import validate_plan
    from stepwise.reasoning.program import compile_program
    from stepwise.tools.calculator import Calculator

    tools = {"calculator": Calculator()}
    program = compile_program("lena = 35 * 12\nmilo = 48 * 9\nanswer = lena, milo", tools, "general")
    text = results_text(validate_plan(program.plan, tools, ["general"]), {1: 420, 2: 432}, tools)
    assert text.splitlines()[-1] == "Largest: milo (432); smallest: lena (420)."


async def test_a_difference_asked_as_how_much_more_is_its_size_and_samples_of_either_sign_vote_together():
    """"By how much does the larger exceed the smaller?": 9 and -9 are one answer; the answer is 9."""
    from stepwise.reasoning.questions import asks_for_difference

    question = ("A field is 18 m by 12 m; a courtyard is 15 m square. By how many square metres does the "
                "larger exceed the smaller?")
    assert asks_for_difference(question) and not asks_for_difference("How many eggs does the farm collect in a week?")
    backend = Samples(["answer = 15 * 15 - 18 * 12", "answer = 18 * 12 - 15 * 15", "answer = 15 * 15 - 216",
                       "answer = 100"])
    report, _ = await run(backend, question, samples=4)
    assert report.answer.text == "9" and report.answer.value == 9


async def test_a_choice_between_computed_values_named_after_the_options_is_decided_by_them_without_a_composer_call():
    """`answer = oak, pine` for "which plan is cheaper, Oak or Pine?": the option with the smaller number, stated
    with both numbers; "more" takes the larger; the model is called once, for the plan."""
    backend = Samples(["oak = 12 + 5 * 200 / 100\npine = 20\nanswer = oak, pine"])
    report, _ = await run(backend, "Oak costs 12 euros plus 5 cents a minute; Pine 20 euros. For 200 minutes, "
                                   "which plan is cheaper, Oak or Pine?", samples=1)
    assert report.answer.text == "Pine, with 20 against 22 for Oak." and len(backend.calls) == 1
    assert report.answer.uses == [1, 2]
    backend = Samples(["teal_goals = 7 * 3 + 5 * 2\nteam_wren = 8 * 4\nanswer = teal_goals, team_wren"])
    report, _ = await run(backend, "Which team scored more goals in total, Teal or Wren?", samples=1)
    assert report.answer.text == "Wren, with 32 against 31 for Teal."
    # A result naming no option beside one per option (the worked examples' `difference`) is left aside.
    backend = Samples(["teal = 7 * 3 + 5 * 2\nwren = 8 * 4\ndifference = abs(teal - wren)\n"
                       "answer = teal, wren, difference"])
    report, _ = await run(backend, "Which team scored more goals in total, Teal or Wren?", samples=1)
    assert report.answer.text == "Wren, with 32 against 31 for Teal." and len(backend.calls) == 1
    # A choice whose options are not names ("2 to the power 10 or 10 cubed") is the composer model's to state.
    question = "Which is larger, 2 to the power 10 or 10 cubed, and by how much? Give the difference."
    assert ranked_options(question, ["power", "cubed", "difference"], [1024, 1000, 24]) is None
    # A possessive without its apostrophe names an option, so does an abbreviation of three letters or more (a word
    # itself first: "pen" begins "Pendle", but `per_pen_alder` is Alder's); two letters do not, and the composer
    # model answers.
    for program, text in (("alders = 12 + 5 * 2\nbirchs = 20\nanswer = alders, birchs",
                           "Birch, with 20 against 22 for Alder."),
                          ("plan_ald = 12 + 5 * 2\nplan_bir = 20\nanswer = plan_ald, plan_bir",
                           "Birch, with 20 against 22 for Alder."),
                          ("plan_al = 12 + 5 * 2\nplan_bi = 20\nanswer = plan_al, plan_bi", "Neither.")):
        backend = Samples([program], '{"text":"Neither.","uses":[1,2]}')
        report, _ = await run(backend, "Which plan is cheaper, Alder or Birch?", samples=1)
        assert report.answer.text == text
    backend = Samples(["per_pen_alder = 22\nper_pen_pendle = 20\nanswer = per_pen_alder, per_pen_pendle"])
    report, _ = await run(backend, "Which shop is cheaper per pen, Alder or Pendle?", samples=1)
    assert report.answer.text == "Pendle, with 20 against 22 for Alder."


async def test_a_choice_whose_results_are_lettered_takes_the_options_in_the_order_the_question_mentions_them():
    """`plan_a`/`plan_b` (or `plan_a_cost`/`plan_b_cost`) are the first and second option the question mentions
    (Pine first here), decided without a composer call; names that neither name nor letter the options leave the
    answer to the composer model."""
    for program in ("plan_a = 6 / 20\nplan_b = 9 / 36\nanswer = plan_a, plan_b",
                    "plan_a_cost = 6 / 20\nplan_b_cost = 9 / 36\nanswer = plan_a_cost, plan_b_cost"):
        backend = Samples([program])
        report, _ = await run(backend, "Pine charges 6 euros for 20 minutes and Oak 9 euros for 36. Which plan is "
                                       "cheaper per minute, Oak or Pine?", samples=1)
        assert report.answer.text == "Oak, with 0.25 against 0.3 for Pine." and len(backend.calls) == 1
    backend = Samples(["first = 9 / 36\nsecond = 6 / 20\nanswer = first, second"], '{"text":"Oak.","uses":[1,2]}')
    report, _ = await run(backend, "Which plan is cheaper per minute, Oak or Pine?", samples=1)
    assert report.answer.text == "Oak." and len(backend.calls) == 2


def test_a_choice_of_speed_answered_with_times_goes_to_the_option_of_less_time():
    """"Which route is faster?" with `time1`, `time2` (a number glued to a word is a part of the name, matched to
    the option of that number): the faster is the one taking less time, beside a difference too; with speeds or
    rates (`km_per_hour_1`), the larger; with prices asked cheaper, the smaller."""
    question = "Route 1 is 18 km at 90 km/h. Route 2 is 22 km at 50 km/h. Which route is faster, Route 1 or Route 2?"
    assert [o for _, o in ranked_options(question, ["time1", "time2"], [0.47, 0.44])] == ["Route 2", "Route 1"]
    assert [o for _, o in ranked_options(question, ["speed_1", "speed_2"], [40, 50])] == ["Route 2", "Route 1"]
    assert ranked_options("Who runs faster, Lena or Omar?", ["lena_minutes", "omar_minutes"],
                          [5.4, 5.25])[0][1] == "Omar"
    assert ranked_options("Which is cheaper, A or B?", ["cost1", "cost2"], [3, 4])[0][1] == "A"
    backwards = "Route 2 is 22 km at 50 km/h. Route 1 is 18 km at 90 km/h. Which route is faster, Route 1 or Route 2?"
    assert ranked_options(backwards, ["time1", "time2"], [0.2, 0.44])[0][1] == "Route 1"  # by number, not order
    assert ranked_options(question, ["km_per_hour_1", "km_per_hour_2"], [40, 50])[0][1] == "Route 2"  # a rate
    assert ranked_options(question, ["route_1_minutes", "route_2_minutes", "difference"],
                          [30, 20, 10])[0][1] == "Route 2"  # the times beside a difference
    assert ranked_options("Which is quicker, Oak or Pine?", ["oak_hours", "pine_hours"], [3, 2])[0][1] == "Pine"


def _lookup() -> StubTool:
    """A tool without `show`: its calls are shown as their arguments."""
    return StubTool("lookup", "looks a word up.", "LookupArgs", "word", 1)


class _Quoted(StubTool):
    """A tool that shows its own calls."""

    def __init__(self) -> None:
        super().__init__("quoted", "looks a word up.", "LookupArgs", "word", 1)

    def show(self, args):
        return f"«{args['word']}»"


def test_each_step_is_shown_to_the_composer_as_its_tool_shows_its_calls():
    """The calculator's call is its expression (references substituted), a tool with `show` is shown its way, one
    without by its arguments as JSON; the core names no tool."""
    tools = {**default_tools(), "lookup": _lookup(), "quoted": _Quoted()}
    plan = Plan(steps=[ToolStep(1, "lookup", {"word": "ox"}), ToolStep(2, "quoted", {"word": "ox"}),
                       ToolStep(3, "calculator", {"expression": "$1*3"}, [1])], answer=3)
    text = results_text(validate_plan(plan, tools, ["general"]), {1: 2, 2: 2, 3: 6}, tools)
    assert text.splitlines()[:3] == ['[1] lookup({"word":"ox"}) = 2', "[2] quoted(«ox») = 2", "[3] calculator(2*3) = 6"]


@pytest.mark.parametrize(("value", "expression"), [
    ("12 * ((2 + 11) - 11)", True), ("(8 - 3) * 8 / 3", True), (" 6/(1-3/4) ", True), ("12 * (", False),
    ("Mirela Dunstan", False), ("3 apples + 4", False),
])
async def test_an_expression_a_tool_built_is_the_answer_as_it_is(value, expression):
    """A tool's puzzle solution is the answer (text and value) without a composer call; other text is composed."""
    tools = {"python": StubTool("python", "runs a program", "PyArgs", "code", value)}
    composed = msgspec.json.encode({"text": f"It is {value}.", "uses": [1]}).decode()
    backend = Samples(['answer = python("print(1)")'], composed)
    engine = engine_with(backend, tools, planner=lambda router: ProgramPlanner(router, tools, samples=1),
                         composer=lambda router: Composer(router))
    recorder = ev.Recorder()
    await engine.run("Using each of 2, 11, 11, 12 once, write an expression equal to 24.", RunOptions(deadline_s=10),
                     sink=recorder)
    report = fold(recorder.events)
    assert report.status == "finished"
    if expression:
        assert (report.answer.text, report.answer.value, len(backend.calls)) == (value.strip(), value.strip(), 1)
    else:
        assert report.answer.text == f"It is {value}." and len(backend.calls) == 2


@pytest.mark.parametrize("question", [
    "Which is larger, the sum of 3 and 4, or 2 times 5? By how much?",
    "The old bridge is 40 m long and the new one 52 m. By how many metres do they differ?",
])
def test_a_difference_asked_by_how_much_is_a_difference_whatever_the_sentence_before(question):
    """"By how much?" after a choice asks the difference's size, like "how much more"."""
    from stepwise.reasoning.questions import asks_for_difference

    assert asks_for_difference(question)


async def test_a_name_in_a_one_row_result_is_stated_as_written():
    """The composer's answer must state the text cells of a one-row result; one that shortens a name is asked again,
    and the name itself answers when the retry does not state it either."""
    table = {"columns": ["model", "minutes"], "rows": [["Urbano", 3881]], "truncated": False}
    tools = {"sql": StubTool("sql", "runs a query", "SqlArgs", "query", table)}
    backend = Samples(['answer = sql("SELECT model, sum(minutes) FROM rides GROUP BY 1 ORDER BY 2 DESC LIMIT 1")'],
                      '{"text":"The Urban model, with 3881 minutes.","uses":[1]}',
                      '{"text":"Urban it is.","uses":[1]}')
    engine = engine_with(backend, tools, planner=lambda router: ProgramPlanner(router, tools, samples=1),
                         composer=lambda router: Composer(router))
    recorder = ev.Recorder()
    await engine.run("Which model was ridden for the most minutes?", RunOptions(deadline_s=10), sink=recorder)
    report = fold(recorder.events)
    assert report.answer.text == "Urbano" and len(backend.calls) == 3
