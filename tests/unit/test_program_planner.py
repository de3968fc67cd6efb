"""The program planner samples several programs in one call, computes those it can, and runs the majority's:
every sample, its value and the vote are recorded."""

from __future__ import annotations

from pathlib import Path

import msgspec

from stepwise.reasoning import events as ev
from stepwise.reasoning.composer import Composer
from stepwise.reasoning.errors import BackendError
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.program import compile_program
from stepwise.reasoning.program_planner import ProgramPlanner, _Rules, _vote
from stepwise.reasoning.report import fold
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import Completion, Expert, Grammar, Usage
from stepwise.tools import default_tools
from stepwise.tools.docs import DocSearch
from tests.doubles import engine_with

DOCS = Path(__file__).resolve().parent.parent / "fixtures" / "docs"


class Samples:
    """A backend double: the first reply is n programs (one call, as llama.cpp's n_cmpl returns them); then answers."""

    provider, model = "test", "test"

    def __init__(self, programs: list[str], *answers: str) -> None:
        self.programs = programs
        self.answers = list(answers)
        self.calls: list[dict] = []

    async def generate(self, messages, **kwargs):
        self.calls.append(kwargs)
        n = kwargs["sampling"].n
        if isinstance(kwargs.get("constraint"), Grammar):
            return Completion(self.programs[0], Usage(10, 5, 0), 1.0, "test", alternatives=self.programs[1:n])
        texts = [self.answers.pop(0) for _ in range(n)]
        return Completion(texts[0], Usage(10, 5, 0), 1.0, "test", alternatives=texts[1:])


class Lookup:
    """A tool free of side effects (as sql and python are): a one-cell table of the number it is asked."""

    name, description, deterministic, side_effect_free = "lookup", "looks a number up", False, True

    class args_type(msgspec.Struct):
        query: str

    async def run(self, args):
        return {"columns": ["n"], "rows": [[int(args.query)]], "truncated": False}


async def run(backend: Samples, question: str, samples: int = 5, always: bool = False, worked: bool = False,
              worked_samples: int = 0):
    tools = default_tools()
    engine = engine_with(backend, tools, planner=lambda router: ProgramPlanner(router, tools, samples=samples,
                                                                                worked=worked,
                                                                                worked_samples=worked_samples),
                         composer=lambda router: Composer(router, always=always))
    recorder = ev.Recorder()
    await engine.run(question, RunOptions(deadline_s=10), sink=recorder)
    return fold(recorder.events), recorder.events


async def test_the_majority_value_wins_and_every_sample_is_recorded():
    """Three of five programs compute 70: the one of fewest steps among them runs, and the sampled event lists all
    five with their values."""
    programs = ["a = 12 * 2\nanswer = a + 46", "answer = 12 + 24 + 34", "b = 1 +\nanswer = b", "answer = 5 * 5",
                "x = 35\nanswer = x * 2"]
    report, events = await run(Samples(programs, '{"text":"70 students","uses":[1]}'), "How many students?")
    sampled = next(e for e in events if isinstance(e, ev.ProgramsSampled))
    assert sampled.values == [70, 70, None, 25, 70] and sampled.votes == 3 and sampled.chosen == 1
    assert sampled.errors[2] is not None and "line 1" in sampled.errors[2]
    assert report.status == "finished" and report.answer.value == 70
    assert [s.input["expression"] for s in report.plan.steps] == ["12 + 24 + 34"]


async def test_the_planner_asks_for_all_samples_in_one_call_under_the_program_grammar():
    """One model call with n samples at temperature; the grammar lists the calls the tools allow."""
    backend = Samples(["answer = 2 + 2"] * 3, '{"text":"4","uses":[1]}')
    await run(backend, "What is 2+2?", samples=3)
    plan_call = backend.calls[0]
    assert plan_call["sampling"].n == 3 and plan_call["sampling"].temperature > 0
    assert "answer = " in plan_call["constraint"].text and '"ask(f\\"" STR' in plan_call["constraint"].text


async def test_when_no_sample_compiles_the_model_writes_it_once_more_told_why():
    """All samples broken: one greedy try with the first problem named; broken again, the run fails as plan_invalid."""
    backend = Samples(["x = 1"] * 5)
    report, _ = await run(backend, "What?")
    assert len(backend.calls) == 2 and backend.calls[1]["sampling"].n == 1
    assert (report.status == "failed" and report.error.type == "plan_invalid"
            and "never sets `answer`" in report.error.detail)


async def test_a_sample_the_calculator_refuses_loses_its_vote():
    """A program whose arithmetic the calculator refuses is not chosen, though it came first."""
    programs = ["answer = 1 / 0", "answer = 6 * 7"]
    report, _ = await run(Samples(programs, '{"text":"42","uses":[1]}'), "What is 6*7?", samples=2)
    assert report.answer.value == 42


def test_worked_examples_of_a_data_source_are_shown_only_for_questions_about_it():
    """A question naming the database's words gets an sql example; a word problem gets none of sql or read."""
    from stepwise.reasoning.examples import ExampleBank

    bank = ExampleBank.default()
    calls = {"sql", "read", "ask", "python"}
    about_db = bank.retrieve("How many rentals did members in Calder make?", calls, 3, prefer={"sql"},
                             data={"sql", "read"})
    word_problem = bank.retrieve("Tom buys 3 boxes of 12 muffins and eats 5. How many are left?", calls, 3,
                                 data={"sql", "read"})
    assert any("sql" in e.calls for e in about_db)
    assert not any({"sql", "read"} & set(e.calls) for e in word_problem) and len(word_problem) == 3


def test_an_answer_read_from_the_documents_cites_the_passage_it_came_from():
    """The file:line of the passage holding the reader's answer is added to the answer's text."""
    from pathlib import Path

    from stepwise.reasoning.composer import sources
    from stepwise.reasoning.plan import validate_plan
    from stepwise.reasoning.program import compile_program
    from stepwise.tools.calculator import Calculator
    from stepwise.tools.docs import DocSearch

    tools = {"calculator": Calculator(),
             "docs": DocSearch(Path(__file__).resolve().parent.parent / "fixtures" / "docs")}
    program = compile_program('answer = read("Who built it?")', tools, "general")
    dag = validate_plan(program.plan, tools, ["general"])
    outputs = {1: [{"source": "a.md:3", "text": "Built by Orrin Works."},
                   {"source": "b.md:5", "text": "Orrin Works was founded in 1890."}],
               2: "Orrin Works"}
    assert sources(dag, outputs, "It was built by Orrin Works.") == ["a.md:3"]
    assert sources(dag, outputs, "The documents do not say.") == []
    days = {1: [{"source": "h.md:5", "text": "Every employee has 250 points and 25 vacation days."}], 2: "25"}
    assert sources(dag, days, "They get 25 days.") == ["h.md:5"] and sources(dag, days, "They get 250 points.") == []


def test_a_question_fits_the_database_when_it_names_two_of_its_words_or_one_of_its_values():
    """`sql` fits a question sharing two words with the database, or naming one of its values (a department called
    Research); `read` fits one naming something the documents mention; a word problem fits neither."""
    from stepwise.tools.docs import Passage

    class Database:
        description = ("runs one query.\nTables: departments(id, name e.g. 'Research', 'Sales'); "
                       "employees(id, name, salary)")

    class Documents:
        passages = [Passage("handbook.md:3", "Research staff may work remotely four days a week.")]

    router = Router({"general": Expert(name="general", backend=Samples([]))}, "general")
    planner = ProgramPlanner(router, {"sql": Database(), "docs": Documents()})
    allowed = ("sql", "docs")
    assert planner.fitting("How many people work in Research, and how many days may they work remotely?",
                           allowed) == {"sql", "read"}
    assert planner.fitting("What is the average salary of the employees?", allowed) == {"sql"}
    assert planner.fitting("Tom buys 3 boxes of 12 muffins and eats 5. How many are left?", allowed) == set()


def test_a_question_fits_the_database_when_it_names_a_row_by_a_name_of_several_words():
    """A person the database holds, named whole ("Hugo Wolff's"), makes `sql` fit though no schema word is asked
    about; one word of such a name alone ("Hugo") does not, nor does a name the database lacks."""
    from stepwise.reasoning.program_planner import name_phrases

    class Database:
        description = "runs one query.\nTables: employees(id, name, manager_id)"
        names = frozenset({"hugo wolff", "cora rowe"})

    router = Router({"general": Expert(name="general", backend=Samples([]))}, "general")
    planner = ProgramPlanner(router, {"sql": Database()})
    assert name_phrases("Who is Hugo Wolff’s manager?") == {"hugo wolff"}
    assert planner.fitting("Who is Hugo Wolff's manager?", ("sql",)) == {"sql"}
    assert planner.fitting("Whom did Hugo meet?", ("sql",)) == set()
    assert planner.fitting("Who is Ida Brandt's manager?", ("sql",)) == set()
    assert planner._rules("Who is Hugo Wolff's manager?", ("sql",)).queries
    assert not planner._rules("Who is Ida Brandt's manager?", ("sql",)).queries


def test_a_name_the_database_holds_fits_it_though_the_documents_use_one_of_its_words():
    """"Ashby Road Surgery", a name the database holds, fits `sql` alone though the documents write "road" (in lower
    case) and "Ashby" (capitalised, but never the surgery's name): the documents' names are their capitalised words,
    months and weekdays aside, and a name the database holds whole is not theirs. A name the documents hold whole
    still fits `read`."""
    from stepwise.tools.docs import Passage

    class Database:
        description = "runs one query.\nTables: clinic(clinic_code, clinic_name); appointment(clinic_code, status)"
        names = frozenset({"ashby road surgery", "lantern hall"})

    class Documents:
        passages = [Passage("roads.md:3", "The old road ran from Ashby to the mine."),
                    Passage("hall.md:1", "Lantern Hall was built in 1851 and opened in March 1852.")]

    router = Router({"general": Expert(name="general", backend=Samples([]))}, "general")
    planner = ProgramPlanner(router, {"sql": Database(), "docs": Documents()})
    allowed = ("sql", "docs")
    assert planner.fitting("How many appointments did Ashby Road Surgery cancel?", allowed) == {"sql"}
    assert planner._rules("How many appointments did Ashby Road Surgery cancel?", allowed).queries
    assert planner.fitting("Who owned Lantern Hall before the war?", allowed) == {"sql", "read"}
    # a month is no name: the documents' "March" does not make a database question theirs
    assert planner.fitting("How much did Ashby Road Surgery charge from 1 January to 31 March?", allowed) == {"sql"}


def test_a_one_word_name_the_database_holds_fits_it_only_without_numbers_or_the_documents_naming_it():
    """"Bramble" and "Whitfield", single words the database holds, make `sql` fit a question sharing a word with its
    schema ("breed"), stating no number and naming nothing the documents do; beside numbers they are a word problem's
    people, without a word of the schema a general question's, and a name the documents write capitalised is
    theirs."""
    from stepwise.tools.docs import Passage

    class Database:
        description = "runs one query.\nTables: pet(pet_name, breed, owner_surname)"
        names = frozenset()
        words = frozenset({"bramble", "whitfield", "tomas"})

    class Documents:
        passages = [Passage("mine.md:3", "Tomas Rudd sank the first shaft.")]

    router = Router({"general": Expert(name="general", backend=Samples([]))}, "general")
    planner = ProgramPlanner(router, {"sql": Database(), "docs": Documents()})
    allowed = ("sql", "docs")
    assert planner.fitting("What breed is the Whitfield family's dog Bramble?", allowed) == {"sql"}
    assert planner.fitting("The Whitfields' dog Bramble eats 3 tins a day. How many tins does she eat in 7 days?",
                           allowed) == set()
    assert planner.fitting("When did Tomas Whitfield become a sailor?", ("sql",)) == set()  # no word of the schema
    assert planner.fitting("Which shaft did Tomas sink?", allowed) == {"read"}


def test_a_name_of_several_words_is_read_with_accents_apostrophes_hyphens_and_particles():
    """Names written as people write them are found whole: capitals of any script, O'Neil, Anna-Lena, "van", "de la"."""
    from stepwise.reasoning.program_planner import name_phrases

    assert name_phrases("Where does Seán O'Neil work?") == {"seán o'neil"}
    assert name_phrases("What does Éva Müller earn?") == {"éva müller"}
    assert "anna-lena roth" in name_phrases("Which projects does Anna-Lena Roth lead?")
    assert "ludwig van beethoven" in name_phrases("Is Ludwig van Beethoven a member?")
    assert name_phrases("Who hired Maria de la Cruz?") == {"maria de la cruz"}
    assert name_phrases("Ask Tom. Ben Lee came.") == {"ask tom", "ben lee"}
    assert name_phrases("Tom met van Beethoven.") == set()  # a particle neither starts nor ends a name


async def test_a_program_answering_two_things_votes_by_both_values_and_the_composer_states_both():
    """`answer = a, b`: samples vote on the pair, and with no single final value the composer writes the answer."""
    programs = ["a = 6 * 10\nb = 5 * 5\nanswer = a, b", "a = 60\nb = 25\nanswer = a * b",
                "x = 6 * 10\ny = 25 * 1\nanswer = x, y"]
    backend = Samples(programs, '{"text":"60 people, 25 days each.","uses":[1,2]}')
    report, events = await run(backend, "How many people work there, and how many days off do they get?", samples=3)
    sampled = next(e for e in events if isinstance(e, ev.ProgramsSampled))
    assert sampled.values == [[60, 25], 1500, [60, 25]] and sampled.votes == 2 and sampled.chosen == 0
    assert report.answer.text == "60 people, 25 days each." and report.answer.value is None


async def test_programs_of_side_effect_free_tools_vote_by_value_and_ties_go_to_the_shortest():
    """A tool that says it is free of side effects (as sql and python do) is run for each sample: samples agreeing on
    its value outvote a lone computed one; with no majority, the program of fewest steps wins."""
    programs = ['a = lookup("7")\nanswer = a * 2', 'answer = lookup("14")', 'answer = 3 * 5',
                'b = lookup("14")\nanswer = b']
    backend = Samples(programs)
    tools = {**default_tools(), "lookup": Lookup()}
    engine = engine_with(backend, tools, planner=lambda router: ProgramPlanner(router, tools, samples=4, worked=False),
                         composer=lambda router: Composer(router))
    recorder = ev.Recorder()
    await engine.run("How many?", RunOptions(deadline_s=10), sink=recorder)
    sampled = next(e for e in recorder.events if isinstance(e, ev.ProgramsSampled))
    assert sampled.values == [14, 14, 15, 14] and sampled.votes == 3 and sampled.chosen == 1
    _, events = await run(Samples(["a = 2 * 3\nanswer = a + 1", "answer = 9 * 1", "b = 1 + 1\nc = b * 2\nanswer = c"]),
                          "How many?", samples=3)
    sampled = next(e for e in events if isinstance(e, ev.ProgramsSampled))
    assert sampled.values == [7, 9, 4] and sampled.chosen == 1


class Column:
    """A query tool free of side effects: one column of the ids 1 to n, or the count alone when asked for it."""

    name, description, deterministic, side_effect_free = "lookup", "looks ids up", False, True

    class args_type(msgspec.Struct):
        query: str

    async def run(self, args):
        n = int(args.query.split()[-1])
        if args.query.startswith("count"):
            return {"columns": ["count"], "rows": [[n]], "truncated": False}
        if args.query.startswith("names"):
            return {"columns": ["name"], "rows": [[f"Member {i}"] for i in range(1, n + 1)], "truncated": False}
        return {"columns": ["id"], "rows": [[i] for i in range(1, n + 1)], "truncated": False}


async def test_a_program_counting_a_column_with_len_votes_with_one_counting_in_the_query():
    """`len(ids)` of a one-column result, of ids or of names, is the number of its values: it agrees with a query
    that counts."""
    programs = ['ids = lookup("ids 12")\nanswer = len(ids)', 'answer = lookup("count 12")',
                'who = lookup("names 12")\nanswer = len(who)']
    tools = {**default_tools(), "lookup": Column()}
    engine = engine_with(Samples(programs), tools,
                         planner=lambda router: ProgramPlanner(router, tools, samples=3, worked=False),
                         composer=lambda router: Composer(router))
    recorder = ev.Recorder()
    await engine.run("How many different members?", RunOptions(deadline_s=10), sink=recorder)
    sampled = next(e for e in recorder.events if isinstance(e, ev.ProgramsSampled))
    assert sampled.values == [12, 12, 12] and sampled.votes == 3


class Batches(Samples):
    """Each program call gets the next batch of samples."""

    def __init__(self, batches: list[list[str]], *answers: str) -> None:
        super().__init__(batches[0], *answers)
        self.batches = batches

    async def generate(self, messages, **kwargs):
        if isinstance(kwargs.get("constraint"), Grammar):
            self.programs = self.batches[min(len([c for c in self.calls if isinstance(c.get("constraint"), Grammar)]),
                                             len(self.batches) - 1)]
        return await super().generate(messages, **kwargs)


async def test_without_a_majority_more_programs_are_sampled_and_all_of_them_vote():
    """Five samples computing 4, 5, 6, 6, 7 have no majority: five more are drawn, and 6 wins among the ten."""
    first = ["answer = 2 + 2", "answer = 2 + 3", "answer = 3 + 3", "answer = 2 * 3", "answer = 3 + 4"]
    second = ["answer = 1 + 5", "answer = 6 * 1", "answer = 9 - 1", "answer = 4 + 4", "answer = 8 * 1"]
    backend = Batches([first, second])
    tools = default_tools()
    engine = engine_with(backend, tools,
                         planner=lambda router: ProgramPlanner(router, tools, samples=5, more=5, worked=False),
                         composer=lambda router: Composer(router))
    recorder = ev.Recorder()
    await engine.run("What is the number?", RunOptions(deadline_s=10), sink=recorder)
    sampled = [e for e in recorder.events if isinstance(e, ev.ProgramsSampled)]
    assert fold(recorder.events).answer.text == "6"
    assert len(sampled) == 1 and len(sampled[0].programs) == 10 and sampled[0].votes == 4
    assert [c["sampling"].n for c in backend.calls] == [5, 5]


async def test_a_majority_of_the_first_samples_draws_no_more():
    """Three of five agree: one program call, however many more samples a weak vote would draw."""
    backend = Samples(["answer = 3 + 3", "answer = 2 * 3", "answer = 6", "answer = 2 + 3", "answer = 3 + 4"])
    tools = default_tools()
    engine = engine_with(backend, tools,
                         planner=lambda router: ProgramPlanner(router, tools, samples=5, more=5, worked=False),
                         composer=lambda router: Composer(router))
    await engine.run("What is the number?", RunOptions(deadline_s=10), sink=ev.Recorder())
    assert len(backend.calls) == 1


def test_a_program_that_sends_the_whole_question_to_its_first_read_is_a_copy():
    """A two-hop question passed whole to the read whose answer the next line looks up is flagged with its line; the
    whole question as the program's last (only) read is a one-hop question's plan and is not."""
    from stepwise.reasoning.program_planner import copied_question

    question = "Who founded the company that built the Kell Viaduct?"
    assert copied_question('maker = read("Who founded the company that built the Kell Viaduct?")\n'
                           'answer = read(f"Who founded {maker}?")', question) == 1
    assert copied_question('maker = read("Which company built the Kell Viaduct?")\n'
                           'answer = read(f"Who founded {maker}?")', question) is None
    assert copied_question('answer = read("Who founded the company that built the Kell Viaduct?")', question) is None


def test_the_whole_question_read_once_and_only_passed_on_is_not_a_copy():
    """A whole-question read only renamed or put in the answer is no copy; one that arithmetic or a read uses is."""
    from stepwise.reasoning.program_planner import copied_question

    question = "In which year was the Kell Viaduct opened?"
    assert copied_question(f'year = read("{question}")\nanswer = year', question) is None
    assert copied_question(f'year = read("{question}")\nanswer = year - 10', question) == 1
    assert copied_question(f'year = read("{question}")\nwhen = year\nanswer = read(f"Who ruled in {{when}}?")',
                           question) == 1
    both = "When did the Kell Viaduct open? Who designed it?"
    assert copied_question('opened = read("When did the Kell Viaduct open?")\nby = read("Who designed the Kell '
                           'Viaduct?")\nanswer = opened, by', both) is None


async def test_a_copied_question_that_names_its_first_hop_as_the_thing_that_did_something_is_asked_that_hop():
    """Every sample reads "Who founded the company that built the bridge?" first, then "Who founded {x}?": the first
    read becomes "Which company built the bridge?", with no second planner call."""
    from stepwise.reasoning.program_planner import first_hops

    question = "Who founded the company that built the bridge?"
    copy = f'x = ask("{question}")\nanswer = ask(f"Who founded {{x}}?")'
    backend = Samples([copy] * 5, "Orrin Works", "Tamsin Vey", '{"text":"Tamsin Vey.","uses":[2]}')
    report, _ = await run(backend, question)
    assert [s.input for s in report.steps] == ["Which company built the bridge?", "Who founded Orrin Works?"]
    assert len([c for c in backend.calls if isinstance(c.get("constraint"), Grammar)]) == 1
    assert first_hops('y = ask("In which town was the mill that made the sails founded?")\nanswer = ask(f"In which '
                      'town was {y} founded?")', "In which town was the mill that made the sails founded?") == (
        'y = ask("Which mill made the sails?")\nanswer = ask(f"In which town was {y} founded?")')
    assert first_hops('y = ask("Who founded the bridge\'s builder?")\nanswer = ask(f"Who is the founder of {y}?")',
                      "Who founded the bridge's builder?") is None


def test_each_first_hop_asks_for_the_thing_the_next_hop_puts_its_answer_in_place_of():
    """A first hop asking for a year, or for a town, where the next read needs the question's person or academy asks
    for that thing by the question's own description; a first hop asking for just that thing, or a later read not
    fitting the question, stays."""
    from stepwise.reasoning.program_planner import first_hops

    born = "In which year was the first keeper of the Tor lighthouse born?"
    assert first_hops('k = read("What year was the first keeper of the Tor lighthouse?")\nanswer = read(f"In which '
                      'year was {k} born?")', born) == ('k = read("What is the name of the first keeper of the Tor '
                                                       'lighthouse?")\nanswer = read(f"In which year was {k} born?")')
    taught = "Who founded the academy where the painter Ada Lune taught?"
    assert first_hops('a = read("Where did Ada Lune teach?")\nanswer = read(f"Who founded {a}?")', taught) == (
        'a = read("What is the name of the academy where the painter Ada Lune taught?")\n'
        'answer = read(f"Who founded {a}?")')
    assert first_hops('m = read("Which company built the Kell Viaduct?")\nanswer = read(f"Who founded {m}?")',
                      "Who founded the company that built the Kell Viaduct?") is None
    assert first_hops('k = read("Who was the first keeper of the Tor lighthouse?")\nanswer = read(f"In which year was '
                      '{k} born?")', born) is None
    assert first_hops('k = read("When was the first keeper of the Tor lighthouse?")\nanswer = read(f"In which year '
                      'was {k} born?")', born) is not None
    assert first_hops('a = read("Where is the academy where the painter Ada Lune taught?")\nanswer = read(f"Who '
                      'founded {a}?")', taught) is not None
    assert first_hops('a = read("Where did Ada Lune teach?")\nanswer = read(f"Who started {a}?")', taught) is None
    assert first_hops('a = sql("SELECT name FROM academies")\nanswer = read(f"Who founded {a}?")', taught) is None


def test_a_first_hop_is_rewritten_where_it_stands():
    """Of two lines asking the same words, the one whose answer the next hop uses is rewritten; text beyond ASCII
    stays as written."""
    from stepwise.reasoning.program_planner import first_hops

    question = "Who founded the café that baked the cake?"
    copy = f'x = ask("{question}")\n'
    assert first_hops(f'{copy}y = ask("{question}")\nanswer = ask(f"Who founded {{y}}?")', question) == (
        f'{copy}y = ask("Which café baked the cake?")\nanswer = ask(f"Who founded {{y}}?")')


def test_for_a_question_naming_what_the_documents_hold_every_ask_reads_them():
    """`ask(…)` becomes `read(…)`, its argument and the rest of the program as written; a program asking nothing is
    left."""
    from stepwise.reasoning.program_planner import reading

    assert reading('d = ask("Who négotiated the Accord?")\nanswer = ask(f"When was {d} born?")') == (
        'd = read("Who négotiated the Accord?")\nanswer = read(f"When was {d} born?")')
    assert reading("answer = 3 + 4") is None


def test_a_question_names_what_the_documents_hold_by_a_name_they_hold_word_for_word():
    """A run of capitalised words the documents hold as it is ("the Tor lighthouse") counts; one word in common with
    them ("Prize") does not."""
    from stepwise.reasoning.program_planner import names_documented
    from stepwise.tools.docs import Passage

    class Docs:
        passages = [Passage("tor.md:3", "The Tor lighthouse was first lit in 1868. The Tor Prize is given yearly.")]

    assert names_documented("When was the Tor lighthouse first lit?", Docs())
    assert not names_documented("Who won the Nobel Prize in 1921?", Docs())


async def test_when_every_sample_copies_the_question_the_planner_is_told_to_ask_the_first_fact():
    """Five samples asking the whole question first, their second call not the question's own words (so no first hop
    is asked for in them): none runs; one greedy rewrite is asked for with the reason."""
    question = "Who founded the bridge's builder?"
    copy = f'x = ask("{question}")\nanswer = ask(f"Who is the founder of {{x}}?")'
    good = 'x = ask("Which company built the bridge?")\nanswer = ask(f"Who is the founder of {x}?")'
    backend = Batches([[copy] * 5, [good]], "Orrin Works", "Tamsin Vey", '{"text":"Tamsin Vey.","uses":[2]}')
    report, _ = await run(backend, question)
    grammar_calls = [c for c in backend.calls if isinstance(c.get("constraint"), Grammar)]
    assert [c["sampling"].n for c in grammar_calls] == [5, 1]
    assert report.answer.text == "Tamsin Vey." and report.steps[0].input == "Which company built the bridge?"


def test_a_first_read_that_already_asks_what_the_next_read_asks_about_its_answer_is_a_copy():
    """"Who is the founder of the company …?" then "Who founded {maker}?" asks the second hop twice; "What is the name
    of the company …?" then "Who founded {maker}?" does not."""
    from stepwise.reasoning.program_planner import copied_question

    question = "Who founded the company that built the Kell Viaduct?"
    assert copied_question('maker = read("Who is the founder of the company that built the Kell Viaduct?")\n'
                           'answer = read(f"Who founded {maker}?")', question) == 1
    assert copied_question('maker = read("What is the name of the company that built the Kell Viaduct?")\n'
                           'answer = read(f"Who founded {maker}?")', question) is None
    year = "In which year was the teacher of the engineer Tobias Reyne born?"
    assert copied_question('t = read("What is the name of the teacher of the engineer Tobias Reyne?")\n'
                           'answer = read(f"In which year was {t} born?")', year) is None


async def test_samples_differing_only_in_their_names_vote_together():
    """`maker` and `builder` name the same read: those two samples outvote a third plan written once."""
    a = 'maker = ask("Which company built the bridge?")\nanswer = ask(f"Who founded {maker}?")'
    b = 'builder = ask("Which company built the bridge?")\nanswer = ask(f"Who founded {builder}?")'
    c = 'who = ask("Who designed the bridge?")\nanswer = ask(f"Who taught {who}?")'
    backend = Samples([c, a, b], "Orrin Works", "Tamsin Vey", '{"text":"Tamsin Vey.","uses":[2]}')
    report, events = await run(backend, "Who founded the company that built the bridge?", samples=3)
    sampled = next(e for e in events if isinstance(e, ev.ProgramsSampled))
    assert sampled.chosen == 1 and sampled.votes == 2 and report.steps[0].input == "Which company built the bridge?"


async def test_among_plans_with_as_many_votes_one_that_uses_every_step_wins():
    """A program whose first read nothing uses (it then asks the whole question) loses a tie to one that chains."""
    forgot = ('river = ask("Which river is it?")\nanswer = ask("On which river stands the town '
              'where the Accord was signed?")')
    chains = ('town = ask("What is the name of the town where the Accord was signed?")\nanswer = ask(f"On '
              'which river stands {town}?")')
    backend = Samples([forgot, chains], "Carrowdale", "Ferrin", '{"text":"Ferrin.","uses":[2]}')
    _, events = await run(backend, "On which river stands the town where the Accord was signed?", samples=2)
    assert next(e for e in events if isinstance(e, ev.ProgramsSampled)).chosen == 1


async def test_when_the_rewrite_does_not_compile_a_sample_set_aside_for_copying_the_question_runs():
    """Every sample copies the question and the greedy rewrite is invalid: the first copying sample runs rather than
    the run failing for want of a plan."""
    question = "Who founded the bridge's builder?"
    copy = f'x = ask("{question}")\nanswer = ask(f"Who is the founder of {{x}}?")'
    backend = Batches([[copy] * 5, ["answer = y + 1"]], "Orrin Works", "Tamsin Vey",
                      '{"text":"Tamsin Vey.","uses":[2]}')
    report, _ = await run(backend, question)
    assert report.status == "finished" and report.steps[0].input == question


async def test_a_rewrite_asking_about_something_the_question_does_not_name_is_refused_like_an_invalid_one():
    """The greedy rewrite answers another question (a worked example's call): refused, so the sample set aside for
    copying the question runs instead of a confident answer about Hamlet."""
    question = "Who founded the Orrin Works' parent firm?"
    copy = f'x = ask("{question}")\nanswer = ask(f"Who is the founder of {{x}}?")'
    backend = Batches([[copy] * 5, ['answer = ask("Who wrote Hamlet?")']], "Kell Holdings", "Tamsin Vey",
                      '{"text":"Tamsin Vey.","uses":[2]}')
    report, events = await run(backend, question)
    rewrite = [e for e in events if isinstance(e, ev.ProgramsSampled)][1]
    assert "asks about hamlet, which the question does not name" in rewrite.errors[0]
    assert report.status == "finished" and report.steps[0].input == question


def test_a_call_is_about_the_question_when_it_names_one_thing_the_question_names():
    """A read or ask naming only things the question does not name is about something else; one shared name is
    enough, a call naming nothing is never refused, and the other tools' text is not read."""
    from stepwise.reasoning.program_planner import elsewhere

    question = "What was the shipping firm of the man who founded the Lanthorn Academy?"
    assert elsewhere('answer = ask("Who wrote Hamlet?")', question) == (1, {"hamlet"})
    assert elsewhere('a = read("Who founded the Lanthorn Technical Academy?")\nanswer = read(f"Which firm did '
                     '{a} own?")', question) is None
    assert elsewhere('answer = ask("How many legs does a spider have?")', question) is None
    assert elsewhere('n = read(f"Where did {x} study?")\nanswer = read(f"Who taught at Varn College in {n}?")',
                     question) == (2, {"varn", "college"})


async def test_for_a_question_counting_things_a_fraction_votes_only_when_no_sample_computed_a_whole_number():
    """Three samples computing 8.67 friends lose to two computing 39; a measure ("how many hours") may be fractional."""
    wrong, right = "answer = 26 / 3", "dorothy = 26 / 2\nanswer = dorothy * 3"
    backend = Samples([wrong, wrong, wrong, right, right])
    report, _ = await run(backend, "Charlie has 2 times as many friends as Dorothy, who has a third as many as Emily. "
                                   "Charlie has 26 friends. How many friends does Emily have?", samples=5)
    assert report.answer.value == 39
    backend = Samples(["answer = 26 / 3", "answer = 26 / 3", "answer = 26 / 3", "answer = 9", "answer = 9"])
    report, _ = await run(backend, "A walk of 26 km at 3 km an hour. How many hours does it take?", samples=5)
    assert abs(report.answer.value - 26 / 3) < 1e-9


async def test_a_fraction_most_samples_computed_outvotes_a_lone_whole_number_and_is_rounded():
    """Four samples computing 1,351.5 books outvote one computing 1,590: a single whole number is no evidence of a
    count; the fraction is rounded down as it runs."""
    left = "books = 1250 + 340\ngiven = books * 15 / 100\nanswer = books - given"
    backend = Samples([left, left, "books = 1250 + 340\nanswer = books", left, left])
    report, _ = await run(backend, "A library had 1250 books. It bought 340 more, then gave away 15% of all its "
                                   "books. How many books does the library have now?")
    assert report.answer.value == 1351


def test_a_query_finding_a_row_by_an_id_the_question_does_not_state_loses_its_vote():
    """Two queries guessing the project's id lose to two finding it by its name, as do three writing the guessed id
    in quotes (`project_id = '3'`); an id the question states is no guess."""
    from stepwise.reasoning.program import compile_program
    from stepwise.reasoning.program_planner import _Rules, _vote

    class Sql:
        name, description, deterministic, side_effect_free = "sql", "runs one query", False, True

        class args_type(msgspec.Struct):
            query: str

    tools = {**default_tools(), "sql": Sql()}
    guessed = 'answer = sql("SELECT sum(hours) FROM assignments WHERE project_id = 8")'
    named = ('answer = sql("SELECT sum(hours) FROM assignments WHERE project_id = '
             '(SELECT id FROM projects WHERE name = \'Cobalt\')")')
    programs = [compile_program(text, tools, "general") for text in (guessed, guessed, named, named)]
    assert _vote(programs, [230, 230, 260, 260], _Rules()) == (2, 2)
    assert _vote(programs, [230, 230, 260, 260], _Rules(stated=frozenset({8.0}))) == (0, 2)
    quoted = 'answer = sql("SELECT count(*) FROM assignments WHERE project_id = \'3\' OR project_id IN (\'4\')")'
    programs = [compile_program(text, tools, "general") for text in (quoted, quoted, quoted, named)]
    assert _vote(programs, [5, 5, 5, 7], _Rules()) == (3, 1)  # three samples guessing, quoted, lose to one


def test_a_query_leaving_out_a_condition_the_question_states_loses_its_vote():
    """Four queries counting everyone in Field Operations lose to one also comparing a role with "Technician"; with
    no question words to match, when agreement is counted, or where the fifth only matches a LIKE pattern or bounds
    the role, the four win as before. A flag tested true (`billable = TRUE`) is a condition too; tested false, not."""
    from stepwise.reasoning.program import compile_program
    from stepwise.reasoning.program_planner import _Rules, _stems, _vote

    class Sql:
        name, description, deterministic, side_effect_free = "sql", "runs one query", False, True

        class args_type(msgspec.Struct):
            query: str

    tools = {**default_tools(), "sql": Sql()}
    everyone = ('answer = sql("SELECT count(*) FROM employees e JOIN departments d ON d.id = e.department_id '
                'WHERE d.name = \'Field Operations\'")')
    technicians = everyone[:-2] + ' AND e.role = \'Technician\'")'
    programs = [compile_program(text, tools, "general") for text in (everyone, everyone, technicians, everyone)]
    words = _stems("How many technicians work in Field Operations?")
    assert _vote(programs, [7, 7, 5, 7], _Rules(words=words), texts=[""] * 4) == (2, 1)
    assert _vote(programs, [7, 7, 5, 7], _Rules(words=words)) == (0, 3)  # samples' agreement, before the rule
    assert _vote(programs, [7, 7, 5, 7], _Rules(), texts=[""] * 4) == (0, 3)
    matched = technicians.replace("= 'Technician'", "ILIKE '%technician%'")
    programs[2] = compile_program(matched, tools, "general")
    assert _vote(programs, [7, 7, 5, 7], _Rules(words=words), texts=[""] * 4) == (0, 3)  # a pattern: no condition
    bounded = technicians.replace("= 'Technician'", ">= 'Technician'")
    programs[2] = compile_program(bounded, tools, "general")
    assert _vote(programs, [7, 7, 5, 7], _Rules(words=words), texts=[""] * 4) == (0, 3)  # nor a bound
    hours = 'answer = sql("SELECT sum(weekly_hours) FROM allocations WHERE client = \'Verdant Bank\'")'
    billable = hours[:-2] + ' AND a.billable = TRUE")'
    programs = [compile_program(text, tools, "general") for text in (hours, hours, billable)]
    asked = _stems("How many billable hours a week are booked on Verdant Bank's projects?")
    assert _vote(programs, [247, 247, 241], _Rules(words=asked), texts=[""] * 3) == (2, 1)  # a flag tested true
    unasked = billable.replace("TRUE", "FALSE")
    programs[2] = compile_program(unasked, tools, "general")
    assert _vote(programs, [247, 247, 241], _Rules(words=asked), texts=[""] * 3) == (0, 2)  # false: no condition


def test_a_query_finding_no_rows_has_no_vote():
    """Two queries finding nothing (no rows: `[]`, or a table without rows) do not tie two finding the department;
    where every query finds nothing, the plans vote (the first of two alike)."""
    from stepwise.reasoning.program import compile_program
    from stepwise.reasoning.program_planner import _Rules, _vote

    class Sql:
        name, description, deterministic, side_effect_free = "sql", "runs one query", False, True

        class args_type(msgspec.Struct):
            query: str

    tools = {**default_tools(), "sql": Sql()}
    texts = ['answer = sql("SELECT name FROM units")', 'answer = sql("SELECT name FROM teams")',
             'answer = sql("SELECT name FROM departments ORDER BY budget DESC LIMIT 1")',
             'answer = sql("SELECT name FROM departments ORDER BY budget DESC LIMIT 1")']
    programs = [compile_program(text, tools, "general") for text in texts]
    nothing = {"columns": ["name", "id"], "rows": []}
    assert _vote(programs, [nothing, nothing, "Research", "Research"], _Rules()) == (2, 2)
    assert _vote(programs, [[], [], "Research", "Research"], _Rules()) == (2, 2)
    assert _vote(programs, [[], [], [], []], _Rules()) == (2, 2)


async def test_a_count_no_sample_computed_whole_is_rounded_down_in_the_program_that_runs():
    """Every sample computing 5.5 tubes: the chosen program's answer becomes `floor(…)`, recorded as it runs."""
    backend = Samples(["ben = 11 / 2\nanswer = ben"] * 5)
    report, events = await run(backend, "Ana has 11 tubes of paint. Ben has half as many tubes as Ana. "
                                        "How many tubes does Ben have?")
    assert report.answer.value == 5
    sampled = next(e for e in events if isinstance(e, ev.ProgramsSampled))
    assert sampled.programs[sampled.chosen] == "ben = 11 / 2\nanswer = floor(ben)"
    assert sampled.values[sampled.chosen] == 5


async def test_a_count_of_what_suffices_is_rounded_up_and_a_measure_is_left_as_computed():
    """"How many vans are needed" for 4.5 vans' worth is 5 vans; "how many hours" stays 4.5."""
    backend = Samples(["answer = 27 / 6"] * 5)
    report, _ = await run(backend, "27 people travel in vans of 6 seats. How many vans are needed?")
    assert report.answer.value == 5
    backend = Samples(["answer = 27 / 6"] * 5)
    report, _ = await run(backend, "A walk of 27 km at 6 km an hour. How many hours does it take?")
    assert report.answer.value == 4.5


async def test_a_negative_fraction_of_a_difference_is_left_for_the_composer_to_state_its_size():
    """Rounding -3.5 down would state 4 as the difference's size: a negative value is not rounded."""
    backend = Samples(["answer = 5 / 2 - 6"] * 5)
    report, _ = await run(backend, "Ann has half of 5 apples. Ben has 6. How many more apples does Ben have than Ann?")
    assert report.answer.value == 3.5


def test_whole_count_rounds_the_answer_lines_value_and_leaves_a_list_of_parts_alone():
    """The `answer = …` line's expression is wrapped where it stands; `answer = a, b` has no one value to round."""
    from stepwise.reasoning.program_planner import whole_count

    assert whole_count("a = 15 * 6\nanswer = a / 24", up=False) == "a = 15 * 6\nanswer = floor(a / 24)"
    assert whole_count("answer = 27 / 6", up=True) == "answer = ceil(27 / 6)"
    assert whole_count("a = 1\nb = 2\nanswer = a, b", up=False) is None


async def test_only_the_samples_using_the_most_of_the_questions_numbers_vote_majority_or_not():
    """2-2-1 with the 4 grandchildren left out of one pair: the pair using every number wins; so does a single sample
    using every number against three that leave the Saturday out."""
    question = ("She knits for her 4 grandchildren: 5 skeins for a vest and 13 for a tunic each. How "
                "many skeins does she need?")
    backend = Samples(["answer = 5 + 13", "answer = 5 + 13", "answer = (5 + 13) * 4", "answer = 4 * (5 + 13)",
                       "answer = 5 * 13"])
    report, _ = await run(backend, question, samples=5)
    assert report.answer.value == 72
    question = "A shop sells 12 pens a day on 5 weekdays and 20 pens on Saturday. How many pens does it sell a week?"
    backend = Samples(["answer = 12 * 5", "answer = 12 * 5", "answer = 12 * 5", "answer = 12 * 5 + 20",
                       "answer = 12 + 20"])
    report, _ = await run(backend, question, samples=5, worked=True)
    assert report.answer.value == 80
    assert len(backend.calls) == 1  # three samples agreed: no solution worked out in words is waited for


async def test_a_number_only_on_a_line_the_answer_does_not_rest_on_is_not_used():
    """Two samples leave the 4 weeks out (81), one writes them on a line it never uses, one uses them (324): only
    the last uses every number, so it wins; the unused line's numbers count for nothing."""
    question = ("A van drives 18 km and 42 km back, six days a week. It burns 1 litre per 8 km at 1.80 euros a litre. "
                "How many euros does its diesel cost in 4 weeks?")
    programs = ["km = (18 + 42) * 6\nanswer = km / 8 * 1.80", "days = 6 * 4\nkm = 18 + 42\nanswer = km / 8 * 1.80",
                "km = (18 + 42) * 6\nanswer = km / 8 * 1.80",
                "week = (18 + 42) * 6\nkm = week * 4\nlitres = km / 8\nanswer = litres * 1.80"]
    report, _ = await run(Samples(programs, '{"text":"324","uses":[1]}'), question, samples=4)
    assert report.answer.value == 324


def test_the_lines_a_programs_answer_rests_on_are_kept_in_order_and_the_rest_dropped():
    """`live`: lines reached from `answer`, through names and f-strings; a text that does not parse stays whole."""
    from stepwise.reasoning.program_planner import live

    assert live("d = 6 * 4\nkm = 18 + 7\nl = km / 8\nanswer = l") == "km = 18 + 7\nl = km / 8\nanswer = l"
    assert live('p = read("x")\nq = 2\nanswer = read(f"{p} y")') == 'p = read("x")\nanswer = read(f"{p} y")'
    assert live("a = 2\nb = a * 3\nc = 9\nanswer = b, a") == "a = 2\nb = a * 3\nanswer = b, a"
    assert live("answer = 3 +") == "answer = 3 +"


def test_for_a_question_asking_who_a_value_naming_someone_outvotes_numbers():
    """Three samples answer "Who does Aino report to?" with the manager's id, two with a name: the name wins; asked
    how many, or who of two options, or against a date or "not in the documents", the numbers keep their votes."""
    texts = ['answer = sql("SELECT reports_to FROM staff")'] * 3 + ['answer = sql("SELECT first_name FROM staff")'] * 2
    programs = [compile_program(t, {**default_tools(), "sql": Lookup()}, "general") for t in texts]
    values = [10, 10, 10, {"columns": ["first_name", "last_name"], "rows": [["Kenji", "Watanabe"]]},
              {"columns": ["first_name", "last_name"], "rows": [["Kenji", "Watanabe"]]}]
    assert _vote(programs, values, _Rules(named=True)) == (3, 2)
    assert _vote(programs, values, _Rules()) == (0, 3)
    assert _vote(programs, values, _Rules(named=True, options=2)) == (0, 3)
    assert _vote(programs, [10, 10, 10, 11, 11], _Rules(named=True)) == (0, 3)
    dated = [10, 10, 10, "2021-03-08", "It is not in the documents."]  # a date or a refusal names no one
    assert _vote(programs, dated, _Rules(named=True)) == (0, 3)


async def test_the_weeks_until_something_is_first_afforded_round_up_and_a_fraction_keeps_its_vote():
    """11.87 weeks (two samples) against a loop's 0 and 16.98: the fraction wins (a period's fraction is no wrong
    program, as 8.67 friends would be) and is rounded up: the 12th week affords it."""
    question = ("Tomas has 230 euros and saves 45 euros a week. The bike costs 764.15 euros. After how many weeks "
                "of saving can he first afford it?")
    programs = ["weeks = 0\nanswer = weeks", "answer = (764.15 - 230) / 45", "answer = (764.15 - 230) / 45",
                "answer = 764.15 / 45"]
    report, _ = await run(Samples(programs, '{"text":"12","uses":[1]}'), question, samples=4)
    assert report.answer.value == 12


class StaffDatabase:
    """A stand-in for the sql tool over a staff table holding Lotte van der Heijden: a query of it finds Tallinn."""

    name, deterministic, side_effect_free = "sql", False, True
    description = "runs one read-only query:\n  table staff(first_name text, last_name text, office text)"
    names = frozenset({"lotte van der heijden"})

    class args_type(msgspec.Struct):
        query: str

    async def run(self, args):
        if "FROM staff" not in args.query:
            raise ValueError("syntax error at end of input")
        return {"columns": ["office"], "rows": [["Tallinn"]], "truncated": False}


class Requeried(Samples):
    """Samples, then the program written once more (told to query): a query of the staff table."""

    async def generate(self, messages, **kwargs):
        if isinstance(kwargs.get("constraint"), Grammar) and len(self.calls) == 1:
            self.calls.append(kwargs)
            self.told = messages[-1].content
            return Completion('answer = sql("SELECT office FROM staff WHERE last_name = \'van der Heijden\'")',
                              Usage(10, 5, 0), 1.0, "test")
        return await super().generate(messages, **kwargs)


async def test_a_question_naming_a_database_row_answered_by_asking_is_planned_again_to_query():
    """Four samples ask the general expert where a person the database holds works, the fifth's query is broken:
    the planner writes the program once more, told to query, and that program's query answers."""

    asked = 'answer = ask("In which office does Lotte van der Heijden work?")'
    backend = Requeried([asked] * 4 + ['answer = sql("SELECT")'], '{"text":"Tallinn","uses":[1]}')
    tools = {**default_tools(), "sql": StaffDatabase()}
    engine = engine_with(backend, tools, planner=lambda router: ProgramPlanner(router, tools, samples=5),
                         composer=lambda router: Composer(router))
    recorder = ev.Recorder()
    await engine.run("In which office does Lotte van der Heijden work?", RunOptions(deadline_s=10), sink=recorder)
    report = fold(recorder.events)
    assert [s.target for s in report.plan.steps] == ["sql"] and report.answer.value == "Tallinn"
    assert "only a query of the database" in backend.told


async def test_a_replan_that_still_does_not_query_or_fails_leaves_the_chosen_program():
    """Told to query, the planner asks again, or its backend fails: the sampled program that asks runs."""

    class Again(Samples):
        def __init__(self, *args, fail: bool) -> None:
            super().__init__(*args)
            self.fail = fail

        async def generate(self, messages, **kwargs):
            if isinstance(kwargs.get("constraint"), Grammar) and len(self.calls) == 1:
                self.calls.append(kwargs)
                if self.fail:
                    raise BackendError("the model server went away")
                return Completion('answer = ask("Where does Lotte van der Heijden work?")', Usage(10, 5, 0), 1.0,
                                  "test")
            return await super().generate(messages, **kwargs)

    asked = 'answer = ask("In which office does Lotte van der Heijden work?")'
    tools = {**default_tools(), "sql": StaffDatabase()}
    for fail in (False, True):
        backend = Again([asked] * 5, "Leeds", '{"text":"Leeds","uses":[1]}', fail=fail)
        engine = engine_with(backend, tools, planner=lambda router: ProgramPlanner(router, tools, samples=5),
                             composer=lambda router: Composer(router))
        recorder = ev.Recorder()
        await engine.run("In which office does Lotte van der Heijden work?", RunOptions(deadline_s=10),
                         sink=recorder)
        report = fold(recorder.events)
        assert report.status == "finished" and [s.kind for s in report.plan.steps] == ["expert"]
        assert report.plan.steps[0].input == "In which office does Lotte van der Heijden work?"


def test_the_documents_passages_as_a_programs_answer_have_no_vote():
    """A sample answering with a search's passages (`docs("Lantern Fair")`) does not outvote samples that read or
    query without a value computed now: their plans vote."""
    texts = ['answer = read("When was the Lantern Fair first held?")', 'answer = docs("Lantern Fair")',
             'answer = read("When was the Lantern Fair first held?")']
    tools = {**default_tools(), "docs": DocSearch(DOCS)}
    programs = [compile_program(t, tools, "general") for t in texts]
    passages = [{"source": "a.md:3", "text": "The fair began in 1908.", "score": 2.0}]
    assert _vote(programs, [None, passages, None]) == (0, 2)


def test_a_negative_amount_loses_its_vote_to_a_sample_computing_one_that_is_not():
    """Word-problem programs computing -204, 42, 26, 1.5 and 10: the negative one loses its vote; with every sample
    negative, a difference's size asked (-204 and 204 one answer), or no word problem, nothing is taken away."""
    texts = ["answer = 6 - 210", "a = 40 + 1\nanswer = a + 1", "a = 20 + 5\nanswer = a + 1",
             "a = 3 / 1\nanswer = a / 2", "a = 5 * 1\nanswer = a * 2"]
    programs = [compile_program(t, default_tools(), "general") for t in texts]
    rules = _Rules(arithmetic="calculator")
    assert _vote(programs, [-204, 42, 26, 1.5, 10], rules) == (1, 1)
    assert _vote(programs, [-204, 42, 26, 1.5, 10]) == (0, 1)  # the shortest, earliest: without the rule
    assert _vote(programs, [-204, -42, -26, -1.5, -10], rules) == (0, 1)
    assert _vote(programs, [-204, 42, 26, 1.5, 10], _Rules(magnitude=True, arithmetic="calculator")) == (0, 1)
    assert _vote(programs, [-204, 42, 26, 1.5, 10], _Rules(arithmetic="lookup")) == (0, 1)


async def test_a_sample_leaving_a_number_out_keeps_its_vote_when_a_worked_solution_reached_its_value():
    """Two samples leave the 2 spare pens out (6 * 5 = 30) and one uses it (32): with no majority the worked
    solution also reaches 30, so 30's two samples and the worked number outvote the one sample using every number."""
    question = "A box holds 6 rows of 5 pens. Tom has 2 spare pens in a drawer. How many pens are in the box?"
    programs = ["answer = 6 * 5", "answer = 5 * 6", "answer = 6 * 5 + 2", "answer = 6 + 5", "answer = 6 * 2"]
    report, events = await run(Samples(programs, "Six rows of five pens make 30."), question, worked=True)
    sampled = next(e for e in events if isinstance(e, ev.ProgramsSampled))
    assert report.answer.value == 30 and sampled.votes == 3
    _, events = await run(Samples(programs, "So 6 * 5 + 2 = 32 pens."), question, worked=True)
    assert next(e for e in events if isinstance(e, ev.ProgramsSampled)).chosen == 2


def test_for_a_question_naming_what_the_documents_hold_a_program_that_reads_them_outvotes_any_that_does_not():
    """Two samples asking the general expert lose to one reading the documents, when the question names something
    in them; without such a name the plain majority stands."""
    from pathlib import Path

    from stepwise.reasoning.program import compile_program
    from stepwise.reasoning.program_planner import _Rules, _vote
    from stepwise.tools.docs import DocSearch

    tools = {**default_tools(), "docs": DocSearch(Path(__file__).resolve().parent.parent / "fixtures" / "docs")}
    asking = 'who = ask("Who negotiated the accord?")\nanswer = ask(f"When was {who} born?")'
    reading = 'who = read("Who negotiated the accord?")\nanswer = read(f"When was {who} born?")'
    programs = [compile_program(text, tools, "general") for text in (asking, asking, reading)]
    assert _vote(programs, [None] * 3, _Rules(reads=True)) == (2, 1)
    assert _vote(programs, [None] * 3, _Rules()) == (0, 2)


def test_for_a_question_about_the_database_alone_a_program_querying_it_outvotes_those_reading_the_documents():
    """Three samples reading the documents lose to one querying the database when the question fits the database and
    names nothing the documents hold; a program doing arithmetic alone keeps its vote, and without the rule the
    readers' majority stands."""
    from pathlib import Path

    from stepwise.reasoning.program import compile_program
    from stepwise.reasoning.program_planner import _Rules, _vote
    from stepwise.tools.docs import DocSearch

    class Sql:
        name, description, deterministic, side_effect_free = "sql", "runs one query", False, True

        class args_type(msgspec.Struct):
            query: str

    tools = {**default_tools(), "sql": Sql(),
             "docs": DocSearch(Path(__file__).resolve().parent.parent / "fixtures" / "docs")}
    reading = 'answer = read("Who is Hugo Wolff\'s manager?")'
    querying = ('answer = sql("SELECT m.name FROM employees e JOIN employees m ON m.id = e.manager_id '
                'WHERE e.name = \'Hugo Wolff\'")')
    programs = [compile_program(text, tools, "general") for text in (reading, reading, reading, querying)]
    assert _vote(programs, [None] * 4, _Rules(queries=True)) == (3, 1)
    assert _vote(programs, [None] * 4, _Rules()) == (0, 3)
    sums = [compile_program(text, tools, "general") for text in ("answer = 2 + 3", "answer = 2 + 3", querying)]
    assert _vote(sums, [5, 5, 7], _Rules(queries=True)) == (0, 2)


async def test_for_a_choice_between_options_a_program_with_one_value_per_option_outvotes_a_single_number():
    """Two samples summing both warehouses tie two computing each: for "which holds more, Ash or Yew?" the pair wins
    and the answer names the larger."""
    each = "ash = 14 * 36\nyew = 19 * 27\nanswer = ash, yew"
    total = "answer = 14 * 36 + 19 * 27"
    backend = Samples([each, total, each, total, "answer = 12"])
    report, _ = await run(backend, "Ash has 14 shelves of 36 boxes; Yew has 19 shelves of 27. Which warehouse holds "
                                   "more boxes, Ash or Yew?", samples=5)
    assert report.answer.text == "Yew, with 513 against 504 for Ash."


async def test_for_a_choice_the_samples_vote_by_the_option_their_numbers_choose():
    """Five samples price three cafés five ways (no two agree by value), but three of them make Kettle the cheapest:
    Kettle is the answer, from one of those three, where the vote by value goes to the first sample's Brewhouse."""
    samples = ["brew = 3.2\nday = 60 * 2.9\nkettle = 60 * 33\nanswer = brew, day, kettle",
               "brew = 60 * 3.2 - 6 * 3.2\nday = 60 * 2.9\nkettle = 33 * 5\nanswer = brew, day, kettle",
               "brew = 60 / 10 * 3.2\nday = 60 * 2.9\nkettle = 33 / 12\nanswer = brew, day, kettle",
               "brew = 60 * 3.2\nday = 2.9\nkettle = 33\nanswer = brew, day, kettle",
               "brew = 60 * 3.2\nday = 60 * 2.9\nkettle = 33 * 60 / 12\nanswer = brew, day, kettle"]
    question = ("Brewhouse charges 3.20 a cup, every 10th cup free; Daybreak 2.90 a cup; Kettle 33 for a card of 12 "
                "cups. Sanna drinks 60 cups a month. Which café is cheapest for her: Brewhouse, Daybreak or Kettle?")
    report, events = await run(Samples(samples), question, samples=5)
    sampled = next(e for e in events if isinstance(e, ev.ProgramsSampled))
    assert sampled.chosen in (1, 2, 4) and report.answer.text.startswith("Kettle, with")
    programs = [compile_program(text, default_tools(), "general") for text in samples]
    values = sampled.values
    assert _vote(programs, values, _Rules(options=3)) == (0, 1)
    assert _vote(programs, values, _Rules(options=3, asked=question)) == (1, 1)
    split = [*values[:4], [1, 9, 9]]  # Brewhouse 2, Kettle 2, Daybreak 1: a tie of choices decides nothing
    assert _vote(programs, split, _Rules(options=3, asked=question)) == _vote(programs, split, _Rules(options=3))


async def test_without_a_majority_a_worked_solution_votes_for_the_value_it_reaches():
    """Five word-problem programs computing 4, 5, 6, 7, 9 have no majority: the model works the problem out in words
    (greedy, unconstrained), and its final number, 7, is one more vote for the program computing it."""
    programs = ["answer = 2 + 2", "answer = 2 + 3", "answer = 3 + 3", "answer = 3 + 4", "answer = 3 * 3"]
    backend = Samples(programs, "Each box holds 3 and 4 more come, so 3 + 4 = 7. The answer is 7.")
    report, events = await run(backend, "How many are there?", worked=True)
    sampled = next(e for e in events if isinstance(e, ev.ProgramsSampled))
    assert sampled.worked == 7 and sampled.chosen == 3 and sampled.votes == 2
    assert report.answer.value == 7
    worked_call = backend.calls[1]
    assert worked_call.get("constraint") is None and worked_call["sampling"].temperature == 0
    assert [e.purpose for e in events if isinstance(e, ev.ModelCalled)] == ["plan", "verify"]


async def test_sampled_worked_solutions_each_vote_beside_the_greedy_one():
    """With two worked solutions sampled beside the greedy one (at the programs' temperature, one call of two
    completions, at the same time), each final number is a vote: greedy 7, sampled 5 and 5 make 5 three votes against
    7's two; the event records the greedy number and the sampled ones."""
    programs = ["answer = 2 + 2", "answer = 2 + 3", "answer = 3 + 3", "answer = 3 + 4", "answer = 3 * 3"]
    backend = Samples(programs, "So it is 7.", "Then 2 + 3 = 5.", "It makes 5 in all.")
    report, events = await run(backend, "How many are there?", worked=True, worked_samples=2)
    sampled = next(e for e in events if isinstance(e, ev.ProgramsSampled))
    assert sampled.worked == 7 and sampled.worked_sampled == [5, 5]
    assert sampled.chosen == 1 and sampled.votes == 3 and report.answer.value == 5
    greedy, drawn = backend.calls[1]["sampling"], backend.calls[2]["sampling"]
    assert (greedy.temperature, greedy.n) == (0, 1) and (drawn.temperature, drawn.n) == (0.7, 2)


def test_of_values_tied_on_votes_the_one_more_worked_solutions_reached_wins():
    """4 (two samples, one worked solution) and 5 (one sample, two worked solutions) have three votes each: five,
    which more worked solutions reached, wins; with one of those two stating no number, four has the most votes."""
    programs = [compile_program(f"answer = {v}", default_tools(), "general") for v in (4, 4, 5, 6)]
    chosen, votes = _vote(programs, [4, 4, 5, 6], worked=[4, 5, 5])
    assert (chosen, votes) == (2, 3)
    assert _vote(programs, [4, 4, 5, 6], worked=[4, None, 5]) == (0, 3)


async def test_a_worked_solution_wins_a_tie_it_takes_part_in():
    """4, 4, 5, 6, 7 with a worked 5: five has two votes as four has, and the worked solution's value wins the tie
    (re-voting two runs' recorded gsm_symbolic samples: +2 -0 and +0 -0 against the tie going to the shorter or
    earlier program)."""
    programs = ["answer = 2 + 2", "answer = 1 + 3", "answer = 2 + 3", "answer = 3 + 3", "answer = 3 + 4"]
    report, events = await run(Samples(programs, "So it is 5."), "How many are there?", worked=True)
    sampled = next(e for e in events if isinstance(e, ev.ProgramsSampled))
    assert sampled.worked == 5 and sampled.chosen == 2 and sampled.votes == 2
    assert report.answer.value == 5


async def test_a_worked_solution_reaching_no_sampled_value_changes_nothing():
    """The worked number votes only for a value some program computed: reaching 8, it leaves the tie to the usual rules
    (the earliest of fewest steps)."""
    programs = ["answer = 2 + 2", "answer = 2 + 3", "answer = 3 + 3"]
    _, events = await run(Samples(programs, "So it is 8."), "How many are there?", samples=3, worked=True)
    sampled = next(e for e in events if isinstance(e, ev.ProgramsSampled))
    assert sampled.worked == 8 and sampled.chosen == 0


async def test_a_majority_or_a_query_asks_for_no_worked_solution():
    """Three of five agreeing need no check; nor do numbers a query computed, which no solution in words can know."""
    agreeing = Samples(["answer = 3 + 3", "answer = 2 * 3", "answer = 6", "answer = 2 + 3", "answer = 3 + 4"])
    _, events = await run(agreeing, "How many are there?", worked=True)
    assert len(agreeing.calls) == 1 and next(e for e in events if isinstance(e, ev.ProgramsSampled)).worked is None

    tools = {**default_tools(), "lookup": Lookup()}
    queried = Samples(['answer = lookup("7")', 'answer = lookup("8")', 'answer = lookup("9")'])
    engine = engine_with(queried, tools, planner=lambda router: ProgramPlanner(router, tools, samples=3),
                         composer=lambda router: Composer(router))
    await engine.run("How many?", RunOptions(deadline_s=10), sink=ev.Recorder())
    assert len(queried.calls) == 1


def test_plans_voting_by_shape_tie_to_the_form_most_samples_took():
    """Five reading plans, each worded its own way (one vote each): the tie goes to the form three of them share (one
    read answering), not to the first sample, which reads and then asks a general expert about the answer."""
    texts = ['when = read("When was the mill built?")\nanswer = ask(f"What year is {when}?")',
             'answer = read("In which year was the mill built?")', 'answer = read("When was the mill first built?")',
             'answer = read("What year was the mill built?")',
             'a = read("Who built the mill?")\nanswer = read(f"When did {a} build the mill?")']
    tools = {"docs": DocSearch(DOCS)}
    programs = [compile_program(text, tools, "general") for text in texts]
    chosen, votes = _vote(programs, [None] * 5, texts=texts)
    assert (chosen, votes) == (1, 1)


async def test_a_sample_whose_tool_result_is_over_the_bound_loses_its_vote():
    """A program's tool result computed for the vote is held to the same bound as a step's (refused, not kept): the
    sample whose query returns more bytes than the bound loses its vote, and its value is not recorded."""
    class Rows:
        name, description, deterministic, side_effect_free = "rows", "returns rows", False, True

        class args_type(msgspec.Struct):
            query: str

        async def run(self, args):
            return {"columns": ["n"], "rows": [[7]] * int(args.query), "truncated": False}

    programs = ['answer = rows("5000")', 'answer = rows("1")']
    tools = {**default_tools(), "rows": Rows()}
    engine = engine_with(Samples(programs), tools,
                         planner=lambda router: ProgramPlanner(router, tools, samples=2, max_result_bytes=1000),
                         composer=lambda router: Composer(router))
    recorder = ev.Recorder()
    await engine.run("How many?", RunOptions(deadline_s=10), sink=recorder)
    sampled = next(e for e in recorder.events if isinstance(e, ev.ProgramsSampled))
    assert sampled.values == [None, 7] and sampled.chosen == 1


async def test_a_line_nothing_uses_neither_costs_a_sample_its_vote_nor_runs():
    """A sample whose unused first line the tool refuses still votes by its answer, and the plan that runs leaves
    that line out."""
    programs = ['spare = lookup("not a number")\nanswer = lookup("14")', 'answer = 3 * 5',
                'spare = lookup("no")\nanswer = lookup("14")']
    tools = {**default_tools(), "lookup": Lookup()}
    engine = engine_with(Samples(programs, '{"text":"14","uses":[2]}'), tools,
                         planner=lambda router: ProgramPlanner(router, tools, samples=3, worked=False),
                         composer=lambda router: Composer(router))
    recorder = ev.Recorder()
    await engine.run("How many?", RunOptions(deadline_s=10), sink=recorder)
    sampled = next(e for e in recorder.events if isinstance(e, ev.ProgramsSampled))
    assert sampled.values == [14, 15, 14] and sampled.votes == 2
    report = fold(recorder.events)
    assert report.status == "finished" and [s.input for s in report.plan.steps] == [{"query": "14"}]


def test_a_second_read_about_a_thing_the_question_names_plainly_asks_the_question_itself():
    """A read asking the question with an earlier answer in place of a plainly named thing asks the question as it is;
    in place of a thing named through another ("the company that built …", "the bridge's builder") or of a pronoun,
    or after a call asking who is just that thing (a compound name), it is a hop and stays."""
    from stepwise.reasoning.program_planner import unhopped

    question = "In which year was the Kell Viaduct opened?"
    assert unhopped('v = read("When was the Kell Viaduct opened?")\n'
                    'answer = read(f"In which year was {v} opened?")', question) == (
        f'v = read("When was the Kell Viaduct opened?")\nanswer = read("{question}")')
    assert unhopped('v = read("Where is the Kell Viaduct?")\n'
                    'answer = read(f"In which year was the {v} Viaduct opened?")', question) == (
        f'v = read("Where is the Kell Viaduct?")\nanswer = read("{question}")')
    assert unhopped(f'answer = read("{question}")', question) is None
    assert unhopped('m = read("Which company built the Kell Viaduct?")\nanswer = read(f"Who founded {m}?")',
                    "Who founded the company that built the Kell Viaduct?") is None
    assert unhopped('m = read("Which company built the bridge?")\nanswer = read(f"Who founded {m}?")',
                    "Who founded the Kell bridge's builder?") is None
    assert unhopped('m = read("Which viaduct crosses the Kell?")\nanswer = read(f"When was {m} opened?")',
                    "A viaduct crosses the Kell. When was it opened?") is None
    assert unhopped('w = read("Who was the first Tor Prize winner?")\nanswer = read(f"When was {w} born?")',
                    "When was the first Tor Prize winner born?") is None


async def _with_docs(backend: Samples, question: str) -> tuple[ev.Recorder, ev.ProgramsSampled]:
    """A run of five samples with the fixture documents as the docs tool: its events and its sampled programs."""
    tools = {**default_tools(), "docs": DocSearch(DOCS)}
    engine = engine_with(backend, tools, planner=lambda router: ProgramPlanner(router, tools, samples=5, worked=False),
                         composer=lambda router: Composer(router))
    recorder = ev.Recorder()
    await engine.run(question, RunOptions(deadline_s=10), sink=recorder)
    return recorder, next(e for e in recorder.events if isinstance(e, ev.ProgramsSampled))


async def test_when_every_sample_hops_needlessly_the_question_is_read_once():
    """Five samples read the plainly named thing first and then ask the question about its answer: each is recorded
    and run asking the question itself, and the plan leaves the unused first read out."""
    question = "When was the Orrin expense policy last revised?"
    hop = 'p = read("What is the Orrin expense policy?")\nanswer = read(f"When was {p} last revised?")'
    backend = Samples([hop] * 5, "In 2021.", '{"text":"In 2021.","uses":[2]}')
    recorder, sampled = await _with_docs(backend, question)
    assert sampled.errors == [None] * 5 and all(f'read("{question}")' in text for text in sampled.programs)
    assert fold(recorder.events).steps[0].input["query"] == question
    assert [s.target for s in fold(recorder.events).steps] == ["docs", "general"]


async def test_a_question_naming_what_the_documents_hold_is_read_when_every_sample_made_its_numbers_up():
    """No number given and no sample reading: the question is read, recorded as one more sample with no vote."""
    question = "How many days a week may Research staff work remotely?"
    invented = ["answer = 5 - 2", "answer = 5 - 3", "answer = 5 - 2", "answer = 7 - 2", "answer = 2 + 1"]
    backend = Samples(invented, "Four days.", '{"text":"Four days a week.","uses":[2]}')
    recorder, sampled = await _with_docs(backend, question)
    assert sampled.programs[:5] == invented and sampled.programs[5] == f'answer = read("{question}")'
    assert sampled.chosen == 5 and sampled.votes == 0
    assert [s.target for s in fold(recorder.events).steps] == ["docs", "general"]


async def test_a_question_giving_numbers_or_naming_nothing_documented_keeps_its_computed_answer():
    """Numbers given are the samples' own to compute with; a question naming nothing documented is no reading."""
    for question in ("Research staff work 12 weeks on site, 3 days a week. How many days is that?",
                     "How many days are there in a leap year?"):
        _, sampled = await _with_docs(Samples(["answer = 12 * 3"] * 5, '{"text":"36.","uses":[1]}'), question)
        assert len(sampled.programs) == 5 and sampled.chosen == 0, question


def test_the_parts_of_a_several_part_answer_vote_by_their_size():
    """Two samples answering `1024, 1000, 24` and `1024, 1000, -24` agree (a difference written either way round)
    and outvote single samples, an output of `None` among them, which has no vote at all."""
    tools = default_tools()
    texts = ["a = 2 ** 10\nb = 10 ** 3\nd = a - b\nanswer = a, b, d", "answer = 7",
             "a = 2 ** 10\nb = 10 ** 3\nd = b - a\nanswer = b, d",
             "a = 2 ** 10\nb = 10 ** 3\nd = b - a\nanswer = a, b, d"]
    programs = [compile_program(text, tools, "general") for text in texts]
    chosen, votes = _vote(programs, [[1024, 1000, 24], "None", [1000, -24], [1024, 1000, -24]], _Rules())
    assert (chosen, votes) == (0, 2)
    assert _vote(programs[1:3], ["None", [1000, -24]], _Rules()) == (1, 1)


def test_a_number_printed_as_text_votes_with_the_same_number_computed():
    """A sandboxed program's printed `720` and the calculator's 720 are one answer, against a lone other value."""
    tools = default_tools()
    programs = [compile_program(text, tools, "general") for text in ("answer = 720", "answer = 700 + 20", "answer = 5")]
    assert _vote(programs, [5, "720", 720], _Rules())[1] == 2
    assert _vote(programs, ["Nan", "nan", 5], _Rules())[1] == 2  # a name, not a number that equals nothing


def test_to_a_question_asking_one_quantity_a_several_part_answer_votes_by_its_last_part():
    """`216, 225, 9` and a lone `9` are one answer to "by how much does the larger exceed the smaller?", against two
    samples' 441; a one-part list (a query's column) keeps its whole value."""
    tools = default_tools()
    texts = ["a = 18 * 12\nb = 15 ** 2\nd = b - a\nanswer = a, b, d", "answer = 225 - 216",
             "answer = 216 + 225", "answer = 225 + 216"]
    programs = [compile_program(text, tools, "general") for text in texts]
    values = [[216, 225, 9], 9, 441, 441]
    assert _vote(programs, values, _Rules(magnitude=True))[0] in (2, 3)
    assert _vote(programs, values, _Rules(magnitude=True, quantity=True))[1] == 2
    single = [compile_program("answer = 5 + 4", tools, "general")] * 3
    assert _vote(single, [[3, 9], [5, 9], 9], _Rules(quantity=True)) == (0, 1)


async def test_an_answer_is_rounded_as_the_question_asks():
    """Asked for an average speed rounded to one decimal place, the programs' 17.142857… is answered 17.1; a question
    asking no rounding keeps every digit."""
    program = "distance = 18 + 12\nhours = 18 / 24 + 12 / 16 + 15 / 60\nanswer = distance / hours"
    asked = "She rides 18 km and 12 km in 1.75 hours. What is her average speed, rounded to one decimal place?"
    report, _ = await run(Samples([program] * 3, '{"text":"17.1","uses":[1]}'), asked, samples=3)
    assert report.answer.value == 17.1
    report, _ = await run(Samples([program] * 3, '{"text":"17.1","uses":[1]}'), asked.split(", rounded")[0] + "?",
                          samples=3)
    assert abs(report.answer.value - 30 / 1.75) < 1e-9


async def test_a_tools_answer_is_rounded_on_a_line_of_its_own():
    """A query's value, which arithmetic does not take inside a call, is rounded on a line after it: 1,234 to the
    nearest hundred is 1,200."""
    tools = {**default_tools(), "lookup": Lookup()}
    backend = Samples(['answer = lookup("1234")'] * 3, '{"text":"1200","uses":[2]}')
    engine = engine_with(backend, tools, planner=lambda router: ProgramPlanner(router, tools, samples=3),
                         composer=lambda router: Composer(router))
    recorder = ev.Recorder()
    await engine.run("About how many people live there, to the nearest hundred?", RunOptions(deadline_s=10),
                     sink=recorder)
    report = fold(recorder.events)
    assert report.answer.value == 1200 and [s.name for s in report.plan.steps] == ["unrounded", "answer"]


async def test_a_question_naming_a_database_row_answered_by_reading_is_planned_again_to_query():
    """Every sample reads documents that name nothing the question does, for a person the database holds: the
    planner writes the program once more, told to query, and that program's query answers."""

    read = 'answer = read("In which office does Lotte van der Heijden work?")'
    backend = Requeried([read] * 5, '{"text":"Tallinn","uses":[1]}')
    tools = {**default_tools(), "sql": StaffDatabase(), "docs": DocSearch(DOCS)}
    engine = engine_with(backend, tools, planner=lambda router: ProgramPlanner(router, tools, samples=5),
                         composer=lambda router: Composer(router))
    recorder = ev.Recorder()
    await engine.run("In which office does Lotte van der Heijden work?", RunOptions(deadline_s=10), sink=recorder)
    report = fold(recorder.events)
    assert [s.target for s in report.plan.steps] == ["sql"] and report.answer.value == "Tallinn"
    assert "only a query of the database" in backend.told
