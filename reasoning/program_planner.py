"""The program planner: the model writes the plan as a straight-line program (reasoning/program.py) under a grammar,
several samples of it at once, and the samples vote.

Why programs: the default model is a coder model, and a program names each quantity once, so it cannot refer to a
step that does not exist, to itself, or read `$57` as a reference; a plan compiles by construction or is one of
the few samples discarded. Why samples: a 1.5B model's single plan is often wrong, but its wrong plans disagree
with each other more than its right ones do (self-consistency). Programs whose steps are all deterministic tools
are computed before anything runs and vote by value; others vote by their text. Every sample, its value and the
vote are recorded (ProgramsSampled)."""

from __future__ import annotations

import ast
import asyncio
import functools
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from stepwise.reasoning import prompts
from stepwise.reasoning.composer import ranked_options
from stepwise.reasoning.context import RunContext
from stepwise.reasoning.errors import PlanInvalid, ReasoningError
from stepwise.reasoning.events import PlanProgress, PlanPurpose, ProgramsSampled
from stepwise.reasoning.examples import ExampleBank
from stepwise.reasoning.plan import as_value, is_number, is_table, last_part, number_text, substitute
from stepwise.reasoning.program import ANSWER, ASK, READ, Program, compile_program, program_grammar
from stepwise.reasoning.questions import (
    IMPLIED,
    asks_for_difference,
    asks_for_name,
    asks_for_quantity,
    counts_periods,
    counts_things,
    counts_up,
    final_number,
    given_numbers,
    numbers_in,
    numbers_used,
    options,
    rounding,
)
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import (
    MAX_TOOL_RESULT_BYTES,
    NOT_IN_DOCUMENTS,
    ExpertStep,
    Grammar,
    Message,
    Plan,
    Sampling,
    Step,
    Tool,
    ToolStep,
    bounded,
)
from stepwise.tools.source import parse_module

_Compiled = tuple[list[Program | None], list[str | None], list[Any]]  # programs, compile errors, computed values


class ProgramPlanner:
    def __init__(self, router: Router, tools: Mapping[str, Tool], *, target: str | None = None, samples: int = 5,
                 temperature: float = 0.7, examples: int = 3, arithmetic: str = "calculator",
                 bank: ExampleBank | None = None, more: int = 0, worked: bool = True, worked_samples: int = 0,
                 max_result_bytes: int = MAX_TOOL_RESULT_BYTES):
        self.router = router
        self.tools = tools
        self.target = target or router.default
        self.samples = samples
        self.temperature = temperature
        self.examples = examples
        self.more = more  # samples drawn once more when no value has a majority (0: never)
        self.worked = worked  # a worked solution in words votes when no value of a word problem has a majority
        self.worked_samples = worked_samples  # more worked solutions beside it, sampled at the programs' temperature
        self.max_result_bytes = max_result_bytes  # a sample's tool result over it is refused, as a step's would be
        self.arithmetic = arithmetic
        self.bank = bank or ExampleBank.default()
        self._prefix: dict[tuple[str, ...], tuple[Message, str]] = {}

    def calls_for(self, allowed: tuple[str, ...]) -> list[str]:
        """What a program may call with these tools: the tools (not the arithmetic one), `read` with docs, `ask`."""
        calls = [name for name in allowed if name != self.arithmetic]
        if "docs" in allowed:
            calls.append(READ)
        return [*calls, ASK]

    def prompt_for(self, allowed: tuple[str, ...]) -> tuple[Message, str]:
        """The static system prompt and the grammar for a set of tools, built once per set (byte-identical across
        runs, for the prefix cache)."""
        if allowed not in self._prefix:
            calls = self.calls_for(allowed)
            lines = [prompts.PROGRAM_CALLS[name] if name in prompts.PROGRAM_CALLS
                     else prompts.PROGRAM_TOOL_CALL.format(name=name, description=self.tools[name].description)
                     for name in calls]
            listed = prompts.PROGRAM_CALLS_HEADING + prompts.PROGRAM_CALLS_JOIN.join(lines)
            system = prompts.PROGRAM_SYSTEM.format(functions=prompts.PROGRAM_ARITHMETIC, calls=listed)
            if "sql" in allowed:
                system += prompts.PROGRAM_DATABASE + self.tools["sql"].description.split("\n", 1)[-1]
            grammar_tools = {name: self.tools[name] for name in allowed if name != self.arithmetic}
            self._prefix[allowed] = Message("system", system), program_grammar(calls, grammar_tools)
        return self._prefix[allowed]

    def fitting(self, question: str, allowed: tuple[str, ...]) -> set[str]:
        """The data calls the question seems to be about: `sql` when it names at least two words of the database
        (tables, columns, listed values) or a row (`names_row`), `read` when it names something the documents name
        (`_documented`). Their worked examples are then shown; other data calls' are not."""
        fit = set()
        known = _vocabulary(self.tools["sql"]) if "sql" in allowed else frozenset()
        if len(_stems(question) & known) >= 2 or self.names_row(question, allowed):
            fit.add("sql")
        if self._documented(question, allowed):
            fit.add(READ)
        return fit

    def _doc_names(self, question: str, allowed: tuple[str, ...]) -> set[str]:
        """The question's names (`_names`) but the words of a name of several words the database holds and the
        documents do not name whole: "Ashby Road Surgery" is the database's, whatever Ashby the documents name."""
        held = name_phrases(question) & getattr(self.tools["sql"], "names", frozenset()) if "sql" in allowed else set()
        text = _document_text(self.tools["docs"])
        theirs = {word for name in held if not re.search(rf"\b{re.escape(name)}\b", text, re.IGNORECASE)
                  for word in name.split()}
        return _names(question) - theirs

    def names_row(self, question: str, allowed: tuple[str, ...]) -> bool:
        """Whether the question names something the database holds: a name among its listed values (a department
        "Research") or a name of several words one of its rows holds ("Hugo Wolff"), where one word alone ("Jonas")
        may well be a coincidence — unless the question also shares a word with the schema, states no number and
        names nothing the documents name ("What breed is the Whitfield family's dog Bramble?", `breed` a column: a
        word problem names its people beside numbers, and "When did Elizabeth become queen?" shares no word with a
        staff table holding an Elizabeth). Two shared words are no name ("hours" and "budget" in a word problem)."""
        if "sql" not in allowed:
            return False
        sql = self.tools["sql"]
        names = _names(question)
        if names & _vocabulary(sql) or name_phrases(question) & getattr(sql, "names", frozenset()):
            return True
        return bool(names & getattr(sql, "words", frozenset()) and _stems(question) - names & _vocabulary(sql)
                    and not given_numbers(question) and not self._documented(question, allowed))

    def _documented(self, question: str, allowed: tuple[str, ...]) -> bool:
        """Whether the question names something the documents name (`_doc_names`, their capitalised words)."""
        return "docs" in allowed and bool(self._doc_names(question, allowed) & _capitalised(self.tools["docs"]))

    def _messages(self, question: str, allowed: tuple[str, ...]) -> list[Message]:
        system, _ = self.prompt_for(allowed)
        turns = [system]
        examples = self.bank.retrieve(question, set(self.calls_for(allowed)), self.examples,
                                      prefer=self.fitting(question, allowed), data=("sql", READ, "docs"))
        for example in examples:
            turns += [Message("user", example.question), Message("assistant", example.program)]
        return [*turns, Message("user", question)]

    async def plan(self, question: str, ctx: RunContext, allowed: tuple[str, ...] | None = None,
                   on_step: Callable[[Step], None] | None = None) -> Plan:
        """A plan for `question` using only the `allowed` tools: the winning sample's program, compiled. `on_step`
        gets its steps once the vote is in (programs are short; they are not streamed step by step)."""
        allowed = tuple(self.tools) if allowed is None else allowed
        plan = await self._sample(self._messages(question, allowed), ctx, allowed, purpose="plan", question=question)
        if on_step is not None:
            for step in plan.steps:
                on_step(step)
        return plan

    async def replan(self, question: str, ctx: RunContext, allowed: tuple[str, ...], done: list[tuple[Step, Any]],
                     failed: Step, reason: str, *, invalid: bool = False) -> Plan:
        """A repaired program: the model sees the failed line's step and why it failed, and writes the program again."""
        messages = self._messages(question, allowed)
        shown = failed.name if failed.name is not msgspec.UNSET else prompts.PROGRAM_STEP.format(id=failed.id)
        what = prompts.PROGRAM_BROKE_RULE if invalid else prompts.PROGRAM_FAILED
        messages.append(Message("user", prompts.PROGRAM_REPLAN.format(shown=shown, what=what, reason=reason[:300])))
        return await self._sample(messages, ctx, allowed, purpose="replan", samples=1, about=question)

    async def _sample(self, messages: list[Message], ctx: RunContext, allowed: tuple[str, ...], *, purpose: PlanPurpose,
                      samples: int | None = None, question: str | None = None, about: str | None = None) -> Plan:
        """`question`: the question being planned, whose rules the samples vote by; `about` (default: `question`),
        the question whose names the program's calls must be about (a replan's too)."""
        samples = samples or self.samples
        about = about or question
        _, grammar = self.prompt_for(allowed)
        tools = {name: self.tools[name] for name in allowed}
        temperature = self.temperature if samples > 1 else 0.0
        # The call lasts as long as its longest sample: a sample repeating itself is cut here (programs are far
        # shorter).
        sampling = Sampling(max_tokens=300, temperature=temperature, n=samples)
        completion, _ = await self.router.call(self.target, messages, ctx, purpose=purpose,
                                               constraint=Grammar(grammar), sampling=sampling,
                                               on_progress=PlanProgress(ctx.sink, ctx.run_id, purpose))
        texts = self._rewritten([completion.text, *completion.alternatives][:samples], about, allowed)
        programs, errors, values = await self._compiled(texts, tools, question, about)
        rules = self._rules(question, allowed)
        chosen, votes = _vote(programs, values, rules, texts)
        # Whether the samples agree is asked before those using fewer of the question's numbers lose their votes: a
        # majority outvoted by one sample using every number is no reason to wait for more (13 of 100 gsm_symbolic
        # items would have, which the re-vote that chose the rule did not do).
        _, agreed = _vote(programs, values, rules)
        worked: list[float | None] = []
        if purpose == "plan" and chosen is not None and _shown(values[chosen]) is not None and 2 * agreed <= samples:
            # No majority among computed values: the vote is a guess (right on 9 of 39 such gsm_symbolic items, against
            # 47 of 61 with a majority), and more samples, and a solution worked out in words, make it less of one
            # (re-voted over the same samples: 11 with five more, 13 with the worked solution, 14 with both). Both at
            # once: the wait is the longer of the two, not their sum.
            (more_texts, more), worked = await asyncio.gather(
                self._more(messages, ctx, purpose, grammar, sampling, tools, question),
                self._worked(question, ctx)
                if self.worked and question is not None and _word_problem(programs, values, self.arithmetic)
                else _none())
            texts += more_texts
            programs, errors, values = programs + more[0], errors + more[1], values + more[2]
            chosen, votes = _vote(programs, values, rules, texts, worked=worked)
        if chosen is not None and question is not None and self._unread(question, allowed, programs, values):
            texts.append(f"{ANSWER} = {READ}({json.dumps(question, ensure_ascii=False)})")
            program, error = self._compile(texts[-1], tools)
            programs.append(program)
            errors.append(error)
            values.append(None)
            if program is not None:
                chosen, votes = len(texts) - 1, 0
        if (chosen is not None and (rules.whole or rules.periods) and is_number(values[chosen]) and values[chosen] > 0
                and not _whole(values[chosen])
                and _word_problem(programs, values, self.arithmetic)):
            await self._count_whole(chosen, texts, programs, values, tools, up=rules.up or rules.periods)
        digits = rounding(about) if about is not None else None  # a replan's program answers the question too
        if (chosen is not None and digits is not None and is_number(values[chosen])
                and round(values[chosen], digits) != values[chosen]):
            await self._rounded(chosen, texts, programs, values, tools, digits)
        ctx.sink.emit(ProgramsSampled(run_id=ctx.run_id, at=time.time(), programs=texts,
                                      values=[_shown(v) for v in values], errors=errors,
                                      chosen=chosen if chosen is not None else -1, votes=votes,
                                      worked=worked[0] if worked else None, worked_sampled=worked[1:]))
        if chosen is None:
            if purpose == "plan":  # once more, greedy, told what was wrong: a program that compiles is the norm
                fix = Message("user", prompts.PROGRAM_INVALID.format(error=errors[0]))
                try:
                    return await self._sample([*messages, Message("assistant", texts[0]), fix], ctx, allowed,
                                              purpose="replan", samples=1, about=about)
                except PlanInvalid:
                    # The rewrite does not compile either: a sample set aside only for passing the question on still
                    # answers something, where no plan fails the run.
                    kept = next((p for p in (self._compile(text, tools)[0] for text in texts) if p is not None), None)
                    if kept is None:
                        raise
                    return kept.needed()
            raise PlanInvalid(f"no sampled program compiled: {errors[0]}")
        program = programs[chosen]
        assert program is not None
        if purpose == "plan" and rules.queries and _unqueried(program):
            # A question naming a row the database holds, answered by asking the general expert, which cannot know
            # the database: four samples of five did so in a probe's run ("In which office does Lotte van der
            # Heijden work?"), the fifth's query broken, and the expert made an office up; or by reading documents
            # that name nothing the question does (all five samples of "What breed is the Whitfield family's dog
            # Bramble?" in another's). Once more, told to query.
            queried = await self._queried([*messages, Message("assistant", texts[chosen])], ctx, allowed, about)
            if queried is not None:
                return queried
        return program.needed()

    async def _queried(self, messages: list[Message], ctx: RunContext, allowed: tuple[str, ...],
                       about: str | None) -> Plan | None:
        """A greedy program written again, told to query the database (its own `programs_sampled` event follows the
        first); None if it still does not query, or cannot be had (a backend's error, the run's budget spent): the
        chosen program then runs. A query it writes may still fail as a step, to be repaired and replanned as any:
        a made-up answer from the general expert is no better."""
        try:
            plan = await self._sample([*messages, Message("user", prompts.PROGRAM_QUERY)], ctx, allowed,
                                      purpose="replan", samples=1, about=about)
        except ReasoningError:
            return None
        return plan if any(isinstance(s, ToolStep) and s.target == "sql" for s in plan.steps) else None

    def _unread(self, question: str, allowed: tuple[str, ...], programs: list[Program | None],
                values: list[Any]) -> bool:
        """Whether the documents must be read though no sample reads them: the question names a thing they name
        (`names_documented`), not the database's words, and gives no number, and no sample found anything by a
        query or a search — so every sample with a value computed it from numbers it made up (asked how long a
        canal the documents describe is, all five samples of one run wrote a made-up length or a query of an
        unrelated table). Then the question is read whole, the plan recorded as one more sample with no vote."""
        if ("docs" not in allowed or given_numbers(question) or "sql" in self.fitting(question, allowed)
                or any(p is not None and _reads(p) for p in programs)):
            return False
        queried = any(p is not None and v is not None and v is not _REFUSED and not _arithmetic(p, self.arithmetic)
                      for p, v in zip(programs, values, strict=True))
        return not queried and names_documented(question, self.tools["docs"])

    async def _count_whole(self, chosen: int, texts: list[str], programs: list[Program | None], values: list[Any],
                           tools: Mapping[str, Tool], *, up: bool) -> None:
        """The chosen program, in place, with its answer rounded to a whole number: the question counts things and
        no sample computed a whole number (those that did would have won the vote), or it counts the periods until
        something is first reached (`counts_periods`, rounded up; there a fraction may win over a whole number). A
        part of a thing is no thing ("half as many tubes as 11"), unless the question counts what suffices
        (`counts_up`: rounded up); a negative difference is left to the composer, which states its size. Re-scoring
        one run's recorded samples of 100 gsm_symbolic items: 5 such answers (all wrong), 3 made right."""
        counted = whole_count(texts[chosen], up=up)
        program = None if counted is None else self._compile(counted, tools)[0]
        value = None if program is None else await self._value(program, tools)
        if counted is not None and program is not None and _whole(value):
            texts[chosen], programs[chosen], values[chosen] = counted, program, value

    async def _rounded(self, chosen: int, texts: list[str], programs: list[Program | None], values: list[Any],
                       tools: Mapping[str, Tool], digits: int) -> None:
        """The chosen program, in place, with its answer rounded as the question asks ("rounded to one decimal
        place": a probe's average speed answered 17.1428571429 for 17.1; a query's value rounded on a line of its
        own); left as it is if no rounded program computes a number."""
        for apart in (False, True):
            written = rounded_answer(texts[chosen], digits, apart=apart)
            program = None if written is None else self._compile(written, tools)[0]
            value = None if program is None else await self._value(program, tools)
            if written is not None and program is not None and is_number(value):
                texts[chosen], programs[chosen], values[chosen] = written, program, value
                return

    def _rewritten(self, texts: list[str], question: str | None, allowed: tuple[str, ...]) -> list[str]:
        """The sampled programs as they run and are recorded, a replan's too: for a question naming a thing the
        documents name (`names_documented`), asking the documents (`reading`), each first hop asking for the thing
        the next hop needs (`first_hops`), and no hop to a thing the question names (`unhopped`)."""
        if question is None:
            return texts
        if "docs" in allowed and names_documented(question, self.tools["docs"]):
            texts = [reading(text) or text for text in texts]
        texts = [first_hops(text, question) or text for text in texts]
        return [unhopped(text, question) or text for text in texts]

    async def _more(self, messages: list[Message], ctx: RunContext, purpose: PlanPurpose, grammar: str,
                    sampling: Sampling, tools: Mapping[str, Tool],
                    question: str | None) -> tuple[list[str], _Compiled]:
        """`more` programs sampled once more (none when `more` is 0), and what they compile to."""
        if not self.more:
            return [], ([], [], [])
        extra, _ = await self.router.call(self.target, messages, ctx, purpose=purpose, constraint=Grammar(grammar),
                                          sampling=msgspec.structs.replace(sampling, n=self.more))
        texts = self._rewritten([extra.text, *extra.alternatives][:self.more], question, tuple(tools))
        return texts, await self._compiled(texts, tools, question, question)

    async def _worked(self, question: str, ctx: RunContext) -> list[float | None]:
        """The final numbers of solutions the model works out in words (None for one stating none): the greedy one
        first, then `worked_samples` sampled at the programs' temperature, at once. Their mistakes differ from the
        programs': on the 39 gsm_symbolic items of 100 whose five programs had no majority, the greedy one was right
        on 9, and its number made the vote right on 4 more of them (13, not 9), wrong on none."""
        messages = [Message("system", prompts.WORKED_SYSTEM), Message("user", question)]
        greedy = Sampling(max_tokens=prompts.WORKED_MAX_TOKENS, temperature=0.0)
        calls = [self.router.call(self.target, messages, ctx, purpose="verify", sampling=greedy)]
        if self.worked_samples:
            sampled = msgspec.structs.replace(greedy, temperature=self.temperature, n=self.worked_samples)
            calls.append(self.router.call(self.target, messages, ctx, purpose="verify", sampling=sampled))
        texts: list[str] = []
        for completion, _ in await asyncio.gather(*calls):
            texts += [completion.text, *completion.alternatives]
        return [final_number(text) for text in texts[:1 + self.worked_samples]]

    def _rules(self, question: str | None, allowed: tuple[str, ...]) -> _Rules:
        """How the samples for this question vote (none of the question's rules for a replan, which has no question)."""
        if question is None:
            return _Rules()
        fit = self.fitting(question, allowed)
        queries = READ not in fit and self.names_row(question, allowed)
        return _Rules(magnitude=asks_for_difference(question), quantity=asks_for_quantity(question),
                      whole=counts_things(question), up=counts_up(question), periods=counts_periods(question),
                      stated=numbers_in(question), reads=READ in fit, queries=queries, named=asks_for_name(question),
                      options=len(offered := options(question)), asked=question if len(offered) > 1 else None,
                      words=_stems(question), arithmetic=self.arithmetic)

    async def _compiled(self, texts: list[str], tools: Mapping[str, Tool],
                        question: str | None = None, about: str | None = None) -> _Compiled:
        """Each sampled text compiled (or its compile error) and its value where it can be computed now. With the
        question, a program that passes the whole question to a call whose answer it then builds on is an error; with
        `about`, one whose read or ask is about something else the question does not name."""
        compiled = [self._compile(text, tools, question, about) for text in texts]
        programs = [program for program, _ in compiled]
        errors = [error for _, error in compiled]
        # At once: a sandboxed program may take seconds, and five of them one after another would add up.
        values = list(await asyncio.gather(*(self._value(p, tools) for p in programs)))
        return programs, errors, values

    def _compile(self, text: str, tools: Mapping[str, Tool], question: str | None = None,
                 about: str | None = None) -> tuple[Program | None, str | None]:
        """A sampled text compiled, or why it does not compile."""
        try:
            program = compile_program(text, tools, self.router.default, arithmetic=self.arithmetic)
        except PlanInvalid as exc:
            return None, str(exc)
        if question is not None and (line := copied_question(text, question)):
            return None, (f"line {line} passes the whole question on; a question about something named through "
                          "another thing asks the first fact alone, then uses its answer in the next call; a question "
                          "needing one fact is one call, on the `answer = ` line")
        if about is not None and (invented := elsewhere(text, about)):
            line, names = invented
            return None, (f"line {line} asks about {', '.join(sorted(names))}, which the question does not name; "
                          "ask about what the question names")
        return program, None

    async def _value(self, program: Program | None, tools: Mapping[str, Tool]) -> Any:
        """The program's answer computed now, if every step is a tool that may run again freely (deterministic, or
        free of side effects: arithmetic in microseconds, a read-only query or a sandboxed program in milliseconds);
        None if it cannot be (a model step, a tool with effects) or a tool refused (the sample loses its vote)."""
        if program is None:
            return None
        steps = program.needed().steps
        if not all(isinstance(s, ToolStep) and rerunnable(tools.get(s.target)) for s in steps):
            return None
        outputs: dict[int, Any] = {}
        for step in steps:
            tool = tools[step.target]
            try:
                ran = await tool.run(msgspec.convert(substitute(step.input, outputs), tool.args_type))
                outputs[step.id] = bounded(ran, self.max_result_bytes)
            except (ValueError, msgspec.ValidationError):
                return _REFUSED
        if program.answer is not None:
            return as_value(outputs[program.answer])
        return [as_value(outputs[i]) for i in program.parts]


_REFUSED = object()


async def _none() -> list[float | None]:
    return []


def copied_question(text: str, question: str) -> int | None:
    """The line of a program whose call asks the question itself, or asks already what a later call asks about its
    answer, while a later line builds on that answer, if one does. A two-hop question sent whole to its first read
    ("Who founded the company that built the bridge?", or "Who is the founder of …") gets the whole question's answer
    (or a guess) back, which the second read ("Who founded {maker}?") then looks up as if it were the first hop's: the
    small planner does this with every sample when an example's first line resembles the question."""
    asked = {_normal(s) for s in _sentences(question)}
    if (body := _body(text)) is None:
        return None
    calls = _call_lines(body)
    for line, target, call in calls:
        first = call.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        if _normal(first.value) in asked and _built_on(body[line:], target):
            return line
        for _, _, later in calls:
            argument = later.args[0]
            if isinstance(argument, ast.JoinedStr) and any(
                    isinstance(v, ast.FormattedValue) and isinstance(v.value, ast.Name) and v.value.id == target
                    for v in argument.values):
                rest = _content(" ".join(str(v.value) for v in argument.values if isinstance(v, ast.Constant)))
                if rest and rest <= _content(first.value):
                    return line
    return None


def _built_on(later: list[ast.stmt], target: str | None) -> bool:
    """Whether a later line uses `target`'s value in more than passing it on, under another name (`answer = year`)
    or as a part of the answer (`answer = year, place`): the whole question read, then only passed on, is a one-hop
    plan (the program's last line reading it is one too: nothing follows)."""
    names = {target}
    for statement in later:
        if isinstance(statement, ast.Assign) and _passed_on(statement.value):
            if any(isinstance(node, ast.Name) and node.id in names for node in ast.walk(statement.value)):
                names |= {t.id for t in statement.targets if isinstance(t, ast.Name)}
            continue
        if any(isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in names
               for node in ast.walk(statement)):
            return True
    return False


def _passed_on(value: ast.expr) -> bool:
    """A name, or a tuple of names: a value handed on as it is."""
    return isinstance(value, ast.Name) or isinstance(value, ast.Tuple) and all(
        isinstance(e, ast.Name) for e in value.elts)


def elsewhere(text: str, question: str) -> tuple[int, set[str]] | None:
    """The first line whose read or ask names things (capitalised words past its first) none of which the question
    names, and those names: a worked example's call written into a program for another question. Told its first
    program was invalid, or that a step failed, the small planner has answered a question about an academy with the
    example's `ask("Who wrote Hamlet?")`, and one about a mathematician with another example's bell founders. One name
    in common is enough: a call may well name more than the question does ("the Lanthorn Technical Academy")."""
    said = set(re.findall(r"[a-z0-9]+", question.lower()))
    if (body := _body(text)) is None:
        return None
    for line, _, call in _call_lines(body):
        if not (isinstance(call.func, ast.Name) and call.func.id in (READ, ASK)):
            continue
        argument = call.args[0]
        if isinstance(argument, ast.JoinedStr):
            pieces = [v.value for v in argument.values if isinstance(v, ast.Constant)]
        else:
            pieces = [argument.value] if isinstance(argument, ast.Constant) else []
        named = set().union(*(_names(str(piece)) for piece in pieces))
        if named and not named & said:
            return line, named
    return None


def _call_lines(body: list[ast.stmt]) -> list[tuple[int, str | None, ast.Call]]:
    """Each line `name = f(…)` calling with an argument: its number (from 1), the name it sets, the call."""
    found = []
    for line, statement in enumerate(body, 1):
        if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call) and statement.value.args:
            target = statement.targets[0]
            found.append((line, target.id if isinstance(target, ast.Name) else None, statement.value))
    return found


def first_hops(text: str, question: str) -> str | None:
    """The program with each first hop (a read or an ask) asking for just the thing its answer stands for in a later
    call, when that later call is one of the question's sentences with the answer in place of a description ("Who
    founded {maker}?" over "Who founded the shipyard that built the ship Tern?" leaves "the shipyard that built the
    ship Tern"): that thing asked for as "Which shipyard built the ship Tern?" ("the … that/which/who …"), otherwise
    as "What is the name of the first keeper of the Tor lighthouse?". A first hop asking for just that thing already
    stays (`_asks_for`); None when no first hop changes. The small planner writes the second read right and words the
    first hop wrong: it copies the whole question (with every sample, for some questions), asks for a year where the
    next read needs a person (which then asks when a year was born), or for a town where it needs the academy in that
    town."""
    source = text.strip()
    if (body := _body(source)) is None:
        return None
    sentences = _sentences(question)
    calls = [(name, call) for _, name, call in _call_lines(body) if name is not None]
    edits: list[tuple[ast.expr, str]] = []
    for position, (name, call) in enumerate(calls[:-1]):
        first = call.args[0]
        if not (isinstance(call.func, ast.Name) and call.func.id in (READ, ASK)
                and isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        rests = [rest for _, later in calls[position + 1:] for sentence in sentences
                 if (rest := _hop_over(sentence, later.args[0], name)) is not None and _description(rest)]
        if not rests or _asks_for(first.value, rests[0]):
            continue
        shaped = re.fullmatch(r"the (.+?) (?:that|which|who) (.+)", rests[0], re.IGNORECASE)
        if shaped and not _description(f"the {shaped.group(1)}"):  # not "the keeper of the lighthouse that …"
            asked = f"Which {shaped.group(1)} {shaped.group(2)}?"
        else:
            asked = f"What is the name of {rests[0]}?"
        if _normal(asked) != _normal(first.value):
            edits.append((first, json.dumps(asked, ensure_ascii=False)))
    return _spliced(source, edits) if edits else None


def reading(text: str) -> str | None:
    """The program with each `ask(…)` a `read(…)`, None if it asks nothing: for a question naming a thing the
    documents name, the general expert answers from what it imagines (a year of birth for a person only the
    documents know), and the small planner still writes `ask` in every sample for some such questions."""
    source = text.strip()
    if (body := _body(source)) is None:
        return None
    asks = [(node.func, READ) for statement in body for node in ast.walk(statement)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == ASK]
    return _spliced(source, asks) if asks else None


def whole_count(text: str, *, up: bool) -> str | None:
    """The program with the value of its `answer = …` line rounded to a whole number, down (`floor`) or `up`
    (`ceil`); None if it does not parse or its answer lists several parts."""
    return _answer_wrapped(text, "ceil({})" if up else "floor({})")


def rounded_answer(text: str, digits: int, *, apart: bool = False) -> str | None:
    """The program with the value of its `answer = …` line rounded to `digits` decimal places (negative: to tens,
    hundreds, …); `apart`, the value first given a line of its own (a tool's call, which arithmetic does not take
    inside it: `unrounded = sql(…)`, `answer = round(unrounded, 2)`); None as for `whole_count`."""
    return _answer_wrapped(text, f"round({{}}, {digits})", apart=apart)


def _answer_wrapped(text: str, form: str, *, apart: bool = False) -> str | None:
    """The program with its `answer = …` line's value written into `form` ("ceil({})"), or with the value on a line
    of its own before and its name written into `form` (`apart`); None if it does not parse or its answer lists
    several parts."""
    source = text.strip()
    body = _body(source)
    last = body[-1] if body else None
    if not (isinstance(last, ast.Assign) and isinstance(last.targets[0], ast.Name) and last.targets[0].id == ANSWER
            and not isinstance(last.value, ast.Tuple)):
        return None
    written = ast.get_source_segment(source, last.value)
    if apart:
        return _spliced(source, [(last, f"{_UNROUNDED} = {written}\n{ANSWER} = {form.format(_UNROUNDED)}")])
    return _spliced(source, [(last.value, form.format(written))])


_UNROUNDED = "unrounded"  # the answer's value before rounding, on its own line (`rounded_answer`)


def names_documented(question: str, docs: Tool) -> bool:
    """Whether the question names (a run of capitalised words past a sentence's first word) a thing the documents
    name, word for word: "the Saltmarsh Accord", "Ilse Varga". A word in common is not enough: "Nobel Prize" shares
    "prize" with documents about another prize, and a general question then read them."""
    text = _document_text(docs)
    return any(re.search(rf"\b{re.escape(name)}\b", text) for sentence in _sentences(question)
               for name in re.findall(r"(?<=\s)[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*", sentence)
               if name.lower() not in _CALENDAR)


@functools.lru_cache(maxsize=8)
def _document_text(docs: Tool) -> str:
    """The documents' passages as one text, joined once per tool (their capitalised words and `names_documented`
    read it)."""
    return " ".join(p.text for p in getattr(docs, "passages", ()))


def _spliced(source: str, edits: Sequence[tuple[ast.expr | ast.stmt, str]]) -> str:
    """`source` with each node's text replaced by the given text, by its position (the same words may stand at two
    places; ast counts columns in UTF-8 bytes), from the end so that no replacement moves another."""
    data = source.encode()
    starts = [0]
    for line in data.split(b"\n"):
        starts.append(starts[-1] + len(line) + 1)
    for node, new in sorted(edits, key=lambda edit: (edit[0].lineno, edit[0].col_offset), reverse=True):
        assert node.end_lineno is not None and node.end_col_offset is not None
        begin = starts[node.lineno - 1] + node.col_offset
        end = starts[node.end_lineno - 1] + node.end_col_offset
        data = data[:begin] + new.encode() + data[end:]
    return data.decode()


def _body(text: str) -> list[ast.stmt] | None:
    """A program's statements, None if it does not parse (a sample is checked before it is compiled)."""
    try:
        return parse_module(text.strip()).body
    except SyntaxError:
        return None


def _sentences(question: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.?!])\s+", question.strip()) if s.strip()]


def _asks_for(asked: str, thing: str) -> bool:
    """Whether a hop asks for just the thing ("Who was the first keeper of the Tor lighthouse?"): the same content
    words, and not a time, a place or an amount. When every first hop was rewritten (the dev set's document questions,
    eval run 3 of 3 December), one of the ten rewritten to "What is the name of …?" drew a sentence from the reader
    ("The name of the … is …"), which the next read then asked about."""
    return _content(asked) == _content(thing) and not re.match(r"\s*(?:when|where|how)\b", asked, re.IGNORECASE)


def _description(phrase: str) -> bool:
    """Whether a phrase names a thing through another: "the founder of …", "the company that built …", "the
    bridge's builder" (a noun phrase relating its thing to another)."""
    words = _words_of(phrase)
    return bool(words) and words[0].lower() in ("the", "a", "an") and _relates(words)


def unhopped(text: str, question: str) -> str | None:
    """The program with each call that is one of the question's sentences, but for an earlier call's answer in place
    of a thing the sentence names plainly (no relation to anything else: "In which year was {x} first lit?" over "In
    which year was the Brannock lighthouse first lit?"), asking that sentence itself; None if none is. The question
    needs no hop to say what that thing is — unless the earlier call asked who or which is just that thing
    (`_asks_for`: "Who was the first Tor Prize winner?" before "When was {w} born?", a description written as a
    compound name; "What is the Tor lighthouse?" asks what it is like). The earlier call, now unused, is left out of
    the plan (`Program.needed`). Sampled for a one-fact question (two of five samples, three runs of the new-user
    test here on 3 December), such programs asked about the first read's answer ("In which year was 1868 first
    lit?"), which the documents do not hold: a CI run answered "not in the documents". Refusing such samples instead
    left a two-hop question with none when all five wrote its second read so ("Under whom did the maker of {x} …?"),
    and the replan asked about something else."""
    source = text.strip()
    if (body := _body(source)) is None:
        return None
    sentences = _sentences(question)
    calls = _call_lines(body)
    edits: list[tuple[ast.expr, str]] = []
    for position, (_, name, call) in enumerate(calls):
        if name is None:
            continue
        first = call.args[0]
        asked = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
        for _, _, later in calls[position + 1:]:
            sentence = next((sentence for sentence in sentences
                             if (rest := _hop_over(sentence, later.args[0], name)) is not None and _plain_name(rest)
                             and not (asked is not None and _asks_for(asked, rest)
                                      and re.match(r"\s*(?:who|which)\b", asked, re.I))), None)
            if sentence is not None and all(node is not later.args[0] for node, _ in edits):
                edits.append((later.args[0], json.dumps(sentence, ensure_ascii=False)))
    return _spliced(source, edits) if edits else None


def _plain_name(phrase: str) -> bool:
    """Whether a phrase names its thing (a capitalised name: "the Brannock lighthouse") without relating it to
    another ("the founder of …", "the company that built …", "the bridge's builder"), which a hop would look up; a
    pronoun ("it") points at something elsewhere in the question and is no name."""
    words = _words_of(phrase)
    return any(w[0].isupper() and w.lower() not in _POINTING for w in words) and not _relates(words)


def _words_of(phrase: str) -> list[str]:
    return re.findall(r"[A-Za-z]+(?:['’]s?)?", phrase)


def _relates(words: list[str]) -> bool:
    """Whether words relate a thing to another: a relating word ("of", "that", "where" …) or a possessive."""
    return any(w.lower() in _RELATING or w.endswith(("'s", "’s", "'", "’")) for w in words)


# Words by which a phrase names a thing through another ("the founder of …", "the company that built …", "the town
# where … was born"): a hop is needed to say what it is.
_RELATING = frozenset("of that which who whom whose where when by in at from for with on".split())
_POINTING = frozenset("it he she they them this that these those the a an its his her their".split())


def _hop_over(sentence: str, argument: ast.expr, name: str) -> str | None:
    """The part of `sentence` that a call's f-string `argument` puts `name`'s value in place of, keeping the rest of
    the sentence word for word ("the company that built the bridge" for "Who founded {maker}?" over "Who founded the
    company that built the bridge?"); None if the f-string does not fit the sentence so."""
    if not isinstance(argument, ast.JoinedStr):
        return None
    pieces = argument.values
    at = next((i for i, v in enumerate(pieces) if isinstance(v, ast.FormattedValue)
               and isinstance(v.value, ast.Name) and v.value.id == name), None)
    if at is None or not all(isinstance(v, ast.Constant) for i, v in enumerate(pieces) if i != at):
        return None
    before = "".join(str(v.value) for v in pieces[:at] if isinstance(v, ast.Constant))
    after = "".join(str(v.value) for v in pieces[at + 1:] if isinstance(v, ast.Constant))
    if len(before) + len(after) >= len(sentence) or not (
            sentence.lower().startswith(before.lower()) and sentence.lower().endswith(after.lower())):
        return None
    return sentence[len(before):len(sentence) - len(after)].strip()


def _normal(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def rerunnable(tool: Tool | None) -> bool:
    """Whether running the tool's step one more time is harmless: it is deterministic, or says it has no side
    effects."""
    return tool is not None and (getattr(tool, "deterministic", False) or getattr(tool, "side_effect_free", False))


_COMMON = frozenset("""about after also and are before does each from have how into many more much than that the their
them then there these they this total what when where which while who will with year years""".split())
_ASKING = frozenset("""who whom whose what which when where how why was were is are did does do the a an of in on at to
by for and or its his her their that this name called""".split())


def _words(text: str, ignore: frozenset[str], *, pattern: str, ending: str, longer_than: int) -> frozenset[str]:
    """The text's words in lower case, ignored ones left out, each longer than `longer_than` letters cut to a rough
    stem by dropping `ending`."""
    return frozenset(re.sub(ending, "", w) if len(w) > longer_than else w
                     for w in re.findall(pattern, text.lower()) if w not in ignore) - ignore


def _stems(text: str) -> frozenset[str]:
    """Words of at least four letters, a plural's s dropped, common words left out: what a question and a data
    source share."""
    return _words(text, _COMMON, pattern=r"[a-z]{4,}", ending=r"s$", longer_than=4)


def _content(text: str) -> frozenset[str]:
    """A question's content words, each cut to a rough stem (founded, founder → found)."""
    return _words(text, _ASKING, pattern=r"[a-z0-9]+", ending=r"(ers|er|ed|ing|s)$", longer_than=5)


def _names(text: str) -> set[str]:
    """Capitalised words past a sentence's first word, lower case: the names a question mentions, not its months and
    weekdays ("from 1 January to 31 March 2024" named the documents' March to a database question in a probe's run,
    and its one sample reading them took the vote from four querying)."""
    return ({m.group(1).lower() for m in re.finditer(r"(?<![.?!]\s)(?<!^)\b([A-Z][a-z]{2,})", text.strip())}
            - _COMMON - _CALENDAR)


_CALENDAR = frozenset("""january february march april may june july august september october november december monday
tuesday wednesday thursday friday saturday sunday""".split())


def name_phrases(text: str) -> set[str]:
    """Every run of two to four words of a name in the text, lower case, a possessive's 's dropped: the names of
    several words it may mention ("hugo wolff" in "Who is Hugo Wolff's manager?"). A name's words are capitalised in
    any script ("Éva Müller"), may hold an apostrophe or a hyphen ("Seán O'Neil", "Anna-Lena Roth"), and may join
    through a lower-case particle ("Ludwig van Beethoven", "Maria de la Cruz"), which neither starts nor ends one."""
    found = set()
    words = [(m.start(), m.end(), m.group(0)) for m in _WORD.finditer(text)]
    run: list[str] = []
    for index, (start, _, word) in enumerate(words):
        joined = index > 0 and text[words[index - 1][1]:start].isspace()
        if not joined:
            _add_runs(run, found)
            run = []
        if word[0].isupper() or (run and word in _PARTICLES):
            run.append(word)
            if word[0].isupper() and re.search(r"['’]s$", word):  # a possessive ends the name
                _add_runs(run, found)
                run = []
        else:
            _add_runs(run, found)
            run = []
    _add_runs(run, found)
    return found


_WORD = re.compile(r"[^\W\d_][\w'’-]*")
# Lower-case words inside a name: "van", "de la", "bin".
_PARTICLES = frozenset("van von der den de del della di da du la le ten ter bin ibn al".split())


def _add_runs(run: list[str], found: set[str]) -> None:
    """The run's phrases of two to four words that start and end with a capitalised word, into `found`."""
    while run and not run[-1][0].isupper():  # a particle the name did not go on after
        run.pop()
    words = [re.sub(r"['’]s$", "", w).lower() for w in run]
    capital = [w[0].isupper() for w in run]
    found.update(" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 2, min(i + 4, len(words)) + 1)
                 if capital[i] and capital[j - 1])


@functools.lru_cache(maxsize=8)
def _capitalised(docs: Tool) -> frozenset[str]:
    """The capitalised words of the documents, lower case: the names they hold (a name in a question matches one of
    these, not a common word written in lower case: "Road" in "Ashby Road Surgery" is not the documents' "road")."""
    return frozenset(word.lower() for word in re.findall(r"\b[A-Z][a-z]{2,}", _document_text(docs)))


@functools.lru_cache(maxsize=64)
def _vocabulary(tool: Tool) -> frozenset[str]:
    """What the database knows about, as words: its description (tables, columns, values, sample rows). The
    documents' names are their capitalised words (`_capitalised`)."""
    return _stems(tool.description)


def _key(value: Any, magnitude: bool = False) -> Any:
    """Values that vote together: numbers equal to 9 significant digits (by size alone when the question asks for a
    difference's size: 9 and -9 are one answer written two ways), a number printed as text (a sandboxed program's
    output) as that number, text equal ignoring case and spaces, and the parts of a several-part answer each so, by
    size: a part that is a difference ("Which is larger, …, and by how much?") is the same part either way round
    (two samples' `1024, 1000, 24` and `1024, 1000, -24` lost, a vote each, to a third sample's one)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(f"{abs(value) if magnitude else value:.9g}")
    if isinstance(value, str):
        if (number := number_text(value)) is not None:
            return _key(number, magnitude)
        return " ".join(value.lower().split())
    if isinstance(value, list):
        return tuple(_key(part, magnitude=True) for part in value)
    return msgspec.json.encode(value)


def _empty(value: Any) -> bool:
    """A value that answers nothing: a sandboxed program printing nothing, `None` (a function it called returned
    nothing), a query finding no rows (`[]`, or a table without rows), or the documents' passages (`_passages`). It
    has no vote: one such sample won a tie of single votes over two that agreed but for a sign, and two queries
    finding nothing tied two finding the same department in a probe's run (the tie went to an empty one). Where every
    sample finds nothing, their plans vote."""
    if isinstance(value, str):
        return value.strip().lower() in ("", "none")
    if isinstance(value, list):
        return not value or _passages(value)
    return isinstance(value, dict) and is_table(value) and value["rows"] == []


def _passages(value: list[Any]) -> bool:
    """Whether a value is the documents' passages as a search returns them (`{"source", "text"}` each): what to
    read an answer from, not one. A probe's sample wrote `docs("Lantern Fair")` as its answer, which outvoted four
    samples that read or queried (no computed value), and the composer model then made a year up from the passages."""
    return all(isinstance(p, dict) and "source" in p and "text" in p for p in value)


class _Rules(msgspec.Struct, frozen=True):
    """What the question says about its answer, for the vote: a difference's size (`magnitude`: 9 and -9 are one
    answer), a count (`whole`; of what suffices, `up`), periods until something is first reached (`periods`), the
    numbers it states (`stated`; `given`, those but 0 and 1), names the documents hold (`reads`), a thing the database
    holds and none the documents name (`queries`), how many options it offers to choose from (`options`); and the
    arithmetic tool (`arithmetic`), whose programs alone make a word problem (None, as for a replan: no word-problem
    rule)."""

    magnitude: bool = False
    quantity: bool = False  # one quantity asked: a several-part answer votes by its last part (`last_part`)
    whole: bool = False
    up: bool = False  # a count of what suffices: a fraction rounds up (`counts_up`)
    # The periods until something is first reached (`counts_periods`): the chosen fraction rounds up, but fractions
    # keep their votes (11.87 weeks is the program's right answer before rounding; a loop's 0 weeks is not).
    periods: bool = False
    stated: frozenset[float] = frozenset()  # every number the question states, 0 and 1 too
    reads: bool = False
    queries: bool = False
    options: int = 0
    named: bool = False  # a name answers the question (`asks_for_name`), a number (an id) does not
    asked: str | None = None  # the question, when it offers options: each sample's choice votes (`_by_choice`)
    words: frozenset[str] = frozenset()  # the question's words (`_stems`), which queries' compared texts may hold
    arithmetic: str | None = None

    @property
    def given(self) -> frozenset[float]:
        """The numbers a program is expected to use (`questions.given_numbers`: 0 and 1 may stay implied)."""
        return self.stated - IMPLIED


def _vote(programs: list[Program | None], values: list[Any], rules: _Rules = _Rules(),
          texts: list[str] | None = None, worked: Sequence[float | None] = ()) -> tuple[int | None, int]:
    """The index of the winning sample and how many agreed with it.

    Samples with a computed value vote by value, ties going to the program of fewest steps (a step the others did
    without is more often an invented one), then to the earliest. Some samples lose their vote first:
    - for a question offering options to choose from (`options`), a program not ending with one value per option,
      when another does: a single number (a sum of both) cannot say which;
    - for a question naming what the documents hold (`reads`), a program that does not read them, when another
      does: the general-knowledge expert would answer from what it imagines (it named a famous real person for a
      fact only the documents hold);
    - for a question about the database alone (`queries`), a program reading the documents, when another sample
      queries the database: the reader finds nothing about a row only the database holds, or something else (a
      probe's "Who is Hugo Wolff's manager?" was read from the documents by 4 of 5 samples);
    - a query finding a row by an id the question does not state (`WHERE project_id = 8` for "the Cobalt
      project"), when another sample's query does not: the id is a guess, however many samples made it (a probe's
      sql question tied 2-2 between two guessed ids and two subqueries finding the project by its name, and the tie
      went to a guess);
    - for a question counting things (`whole`), a fraction, when some sample computed a whole number: 8.67 friends
      is a wrong program however many samples wrote it, when two others agree on 39 — but not when most samples
      computed that fraction and no two agree on a whole number (the fraction is then rounded: `_count_whole`): four
      of five computing 1,351.5 books lost to a fifth's 1,590 in a probe's run;
    - for a word problem (every computed sample arithmetic alone) not asking a difference's size, a negative number,
      when another sample computed one that is not: the amount a word problem asks for is not below zero, and a
      sample reaching one subtracted the wrong way round (re-voting three runs' recorded samples of gsm_symbolic
      items, 100, 56 and 100: +1 -0, +0 -0 and +0 -0, and the dev set's arithmetic kind: +0 -0; a negative majority
      is then no majority, so the run waits for a worked solution, which those re-votes could not measure);
    - for a question choosing between options (`asked`), a sample choosing another option than the one at least
      two samples and more than any other choose (`_by_choice`): its numbers may differ from theirs, its choice not;
    - a sample using fewer of the question's numbers (`given`) than another: leaving a given number out usually
      means leaving a step out, even when most samples leave it out (re-voting recorded samples: +2 −0 on 100
      gsm_symbolic items and +1 −0 on the dev set's computed numbers, against applying it only without a majority),
      unless a worked solution reached its value;
    - likewise, a sample whose queries compare columns with texts holding fewer of the question's words (`words`)
      than another's: a query leaving out a condition the question states ("How many technicians work in Field
      Operations?" counted everyone in Field Operations in four samples of five, `role = 'Technician'` in one). A
      LIKE's pattern does not count (`role ILIKE '%lead%'` would outvote `is_lead = TRUE`).
    - for a question a name answers (`named`: who, or which thing, not offering options), a sample whose value
      holds no text, when another's does: a person is named, and three samples of five answered "Who does Aino
      Virtanen report to?" with the manager's id in a probe's run (and "Which department runs projects with the
      largest combined budget?" with a department's id in another's).
    A question asking one quantity answered in several parts (`a, b, difference`) votes by the last part, which
    the composer answers with (`plan.last_part`): the same quantity as another sample's single value.
    Each worked solution's number (`worked`) is one more vote, for the value it equals, if a sample computed it; of
    values tied on votes, the one more worked solutions reached wins.
    If no sample has a value, compiled samples vote by their plan, ties to the plan of the form most samples took
    (not to the shortest: a plan that reads the documents once is not better than one that reads them twice, when a
    two-hop question needs both), then to the earliest."""
    magnitude = rules.magnitude
    if rules.quantity:
        values = [last_part(v) if p is not None and len(p.parts) > 1 else v
                  for p, v in zip(programs, values, strict=True)]
    eligible = set(range(len(programs)))
    if rules.reads and any(p is not None and _reads(p) for p in programs):
        eligible = {i for i, p in enumerate(programs) if p is not None and _reads(p)}
    if rules.queries and any(p is not None and _queries(p) for p in programs):
        eligible = {i for i in eligible if (p := programs[i]) is not None and not _reads(p)}
    if rules.options > 1 and any(i in eligible and p is not None and len(p.parts) == rules.options
                                 for i, p in enumerate(programs)):
        eligible = {i for i in eligible if len(getattr(programs[i], "parts", ())) == rules.options}
    computed = [i for i, v in enumerate(values)
                if i in eligible and v is not None and v is not _REFUSED and not _empty(v)]
    guessed = {i for i in computed if _guesses_id(programs[i], rules.stated)}
    if len(guessed) < len(computed):
        computed = [i for i in computed if i not in guessed]
    if rules.whole and any(_whole(values[i]) for i in computed) and not _fraction_agreed(values, computed, magnitude):
        computed = [i for i in computed if not is_number(values[i]) or _whole(values[i])]
    if (rules.arithmetic is not None and not magnitude
            and len({values[i] >= 0 for i in computed if is_number(values[i])}) == 2
            and _word_problem(programs, values, rules.arithmetic)):
        computed = [i for i in computed if not is_number(values[i]) or values[i] >= 0]
    computed = _by_choice(programs, values, computed, rules.asked)
    if rules.named and rules.options <= 1 and any(_holds_text(values[i]) for i in computed):
        computed = [i for i in computed if _holds_text(values[i])]
    if computed:
        reached = {i: _reached_by(values[i], worked, magnitude) for i in computed}
        computed = _most_complete(programs, computed, rules, texts, reached)
        counts = _counts(values, computed, magnitude, worked)
        # A tie worked solutions take part in goes to the value more of them reached (with the greedy one alone,
        # re-voting two runs' recorded samples of 100 gsm_symbolic items: +2 -0 and +0 -0 against the tie going to the
        # shorter program).
        best = max(computed, key=lambda i: (counts[_key(values[i], magnitude)], reached[i], -_length(programs[i]), -i))
        return best, counts[_key(values[best], magnitude)]
    compiled = [i for i, p in enumerate(programs) if i in eligible and p is not None and values[i] is not _REFUSED]
    if not compiled:
        compiled = [i for i, p in enumerate(programs) if i in eligible and p is not None]
    if not compiled:
        return None, 0
    counts = Counter(_shape(programs[i]) for i in compiled)
    forms = Counter(_shape(programs[i], worded=False) for i in compiled)
    # Among plans with as many votes (each plan's own words usually differ: one vote each), one of the form most
    # samples took (one read, or a read whose answer the next one asks about), then one whose every step is used: a
    # read nothing uses was a first hop the program then forgot, asking the whole question in its last line instead.
    best = max(compiled, key=lambda i: (counts[_shape(programs[i])], forms[_shape(programs[i], worded=False)],
                                        not _unused(programs[i]), -i))
    return best, counts[_shape(programs[best])]


def _most_complete(programs: list[Program | None], computed: list[int], rules: _Rules, texts: list[str] | None,
                   reached: Mapping[int, int]) -> list[int]:
    """The samples using as many of the question's numbers as any (unless a worked solution reached their value),
    then of those, the ones whose queries compare columns with texts holding as many of its words as any
    (`_compared_words`; see `_vote`)."""
    if texts is None:  # the agreement count, before these rules (see `_sample`)
        return computed
    used = {i: numbers_used(live(texts[i]), rules.given) for i in computed}
    # A value a solution worked out in words also reached keeps its votes: two ways of working agreeing
    # say the number left out was not needed (re-voting two runs' recorded samples of 100 gsm_symbolic items
    # with the greedy solution alone: +1 -0 and +2 -2; with two sampled beside it, the first run: +2 -1).
    computed = [i for i in computed if used[i] == max(used.values()) or reached[i]]
    if any(_queries(p) for i in computed if (p := programs[i]) is not None):
        matched = {i: len(_compared_words(programs[i]) & rules.words) for i in computed}
        computed = [i for i in computed if matched[i] == max(matched.values())]
    return computed


def live(text: str) -> str:
    """The lines of a program its answer rests on, however indirectly (the text itself if it does not parse): a
    number on a line nothing uses is not used. A probe's sample wrote `days = 6 * 4` for a van's four weeks of six
    working days, never used it, and outvoted, with every number of the question, the one sample that did use them."""
    body = _body(text)
    if not body:
        return text
    wanted, kept = {ANSWER}, []
    for statement in reversed(body):
        targets = {t.id for t in getattr(statement, "targets", ()) if isinstance(t, ast.Name)}
        if targets & wanted:
            wanted |= {node.id for node in ast.walk(statement) if isinstance(node, ast.Name)}
            kept.append(ast.get_source_segment(text.strip(), statement) or "")
    return "\n".join(reversed(kept))


def _by_choice(programs: list[Program | None], values: list[Any], computed: list[int],
               question: str | None) -> list[int]:
    """For a question choosing between options ("Which café is cheapest: A, B or C?"), the samples whose numbers
    choose the option at least two samples and more than any other choose (`composer.ranked_options`, as the answer
    will be made; a sample whose choice cannot be told is not among them); else all. Samples that differ in their
    numbers may agree on the choice, which is what the question asks: three of five samples' different prices made
    one café cheapest in a probe's run, and the tie of single votes by value went to a fourth's."""
    if question is None:
        return computed
    choices = {}
    for i in computed:
        program = programs[i]
        if program is not None and isinstance(values[i], list) and len(values[i]) == len(program.parts):
            names = {step.id: step.name for step in program.plan.steps}
            ranked = ranked_options(question, [names.get(p) for p in program.parts], values[i])
            if ranked is not None:
                choices[i] = ranked[0][1]
    ranking = Counter(choices.values()).most_common(2)
    if not ranking or ranking[0][1] < 2 or len(ranking) > 1 and ranking[1][1] == ranking[0][1]:
        return computed
    return [i for i in computed if choices.get(i) == ranking[0][0]]


def _fraction_agreed(values: list[Any], computed: list[int], magnitude: bool) -> bool:
    """Whether more than half of all the samples computed one and the same fraction, and no two samples one and the
    same whole number: a lone whole number may be any other program's, two agreeing are evidence of a count."""
    counted = Counter(_key(values[i], magnitude) for i in computed if is_number(values[i]))
    fractions = [n for value, n in counted.items() if not float(value).is_integer()]
    return bool(fractions) and 2 * max(fractions) > len(values) and all(
        n == 1 for value, n in counted.items() if float(value).is_integer())


# An id column compared with a number, quoted or not: `project_id = 8`, `project_id = '3'`, `p.id IN (3, 4)`.
_ID_NUMBER = re.compile(r"\b(?:\w*_)?id\s*(?:=\s*(?:'(\d+(?:\.\d+)?)'|(\d+(?:\.\d+)?))(?![\w'-])"
                        r"|in\s*\(([\d\s,.']+)\))", re.IGNORECASE)


def _guesses_id(program: Program | None, stated: frozenset[float]) -> bool:
    """Whether a query of the program compares an id with a number the question does not state."""
    if program is None:
        return False
    for step in program.plan.steps:
        if isinstance(step, ToolStep) and step.target == "sql" and isinstance(query := step.input.get("query"), str):
            for quoted, one, listed in _ID_NUMBER.findall(query):
                if any(float(n) not in stated for n in re.findall(r"\d+(?:\.\d+)?", quoted or one or listed)):
                    return True
    return False


def _counts(values: list[Any], computed: list[int], magnitude: bool,
            worked: Sequence[float | None]) -> Counter[Any]:
    """The votes for each value the `computed` samples have, each worked solution's added to the value it equals."""
    counts = Counter(_key(values[i], magnitude) for i in computed)
    for number in worked:
        if number is not None and _key(number, magnitude) in counts:
            counts[_key(number, magnitude)] += 1
    return counts


def _reached_by(value: Any, worked: Sequence[float | None], magnitude: bool) -> int:
    """How many of the worked solutions reached a sample's value (0: none, or none asked for)."""
    return sum(number is not None and _key(value, magnitude) == _key(number, magnitude) for number in worked)


def _word_problem(programs: list[Program | None], values: list[Any], arithmetic: str) -> bool:
    """Whether the samples with a number computed it by arithmetic alone: a word problem, which a solution in words
    can check (a query's or a search's number it cannot)."""
    numeric = [p for p, v in zip(programs, values, strict=True) if p is not None and is_number(v)]
    return bool(numeric) and all(_arithmetic(p, arithmetic) for p in numeric)


def _arithmetic(program: Program, arithmetic: str) -> bool:
    """Whether every step of the program is arithmetic."""
    return all(isinstance(step, ToolStep) and step.target == arithmetic for step in program.plan.steps)


def _length(program: Program | None) -> int:
    """A computed sample's number of steps (a sample with a value always compiled)."""
    assert program is not None
    return len(program.plan.steps)


def _calls(program: Program, tool: str) -> bool:
    """Whether a step of the program calls the tool."""
    return any(isinstance(step, ToolStep) and step.target == tool for step in program.plan.steps)


# A text a query compares a column with: `= 'Technician'`, `IN ('active', 'planned')` (not a LIKE's pattern, which
# may match a question's word where the right query tests a flag: `role ILIKE '%lead%'` for `is_lead = TRUE`; nor
# `<=`, `>=` or `!=`).
_EQUALS_TEXT = re.compile(r"(?<![<>!])=\s*'((?:[^']|'')*)'")
_IN_LIST = re.compile(r"\bin\s*\(((?:\s*'(?:[^']|'')*'\s*,?)+)\)", re.IGNORECASE)
_QUOTED = re.compile(r"'((?:[^']|'')*)'")
# A flag a query tests true (`a.billable = TRUE`, `is_lead = true`): its column's name says the condition.
_FLAG_TRUE = re.compile(r"'(?:[^']|'')*'|(?<![\w.])(?:\w+\.)?(\w+)\s*=\s*true\b", re.IGNORECASE)


def _compared_words(program: Program | None) -> frozenset[str]:
    """The words (`_stems`) of the texts the program's queries compare columns with, and of the flags they test true
    (`billable = TRUE`: "How many billable hours …?" in a probe's run, two samples leaving the flag out outvoted it)."""
    assert program is not None
    compared = [text for step in program.plan.steps
                if isinstance(step, ToolStep) and step.target == "sql" and isinstance(q := step.input.get("query"), str)
                for text in [*_EQUALS_TEXT.findall(q), *(t for listed in _IN_LIST.findall(q)
                                                          for t in _QUOTED.findall(listed)),
                             *(flag.replace("_", " ") for flag in _FLAG_TRUE.findall(q) if flag)]]
    return _stems(" ".join(compared))


def _unqueried(program: Program) -> bool:
    """Whether the program asks the general expert or reads the documents, and does not query the database."""
    return any(isinstance(step, ExpertStep) for step in program.plan.steps) and not _queries(program)


def _reads(program: Program) -> bool:
    return _calls(program, "docs")


def _queries(program: Program) -> bool:
    return _calls(program, "sql")


def _holds_text(value: Any) -> bool:
    """Whether a value says something in words: a text that is no number, no date and no refusal to answer, or a
    list or table holding one."""
    if isinstance(value, str):
        return (number_text(value) is None and not re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}.*", value)
                and NOT_IN_DOCUMENTS not in value.lower())
    if isinstance(value, list):
        return any(_holds_text(part) for part in value)
    return isinstance(value, dict) and is_table(value) and any(_holds_text(cell) for row in value["rows"]
                                                                for cell in row)


def _whole(value: Any) -> bool:
    return is_number(value) and float(value).is_integer()


def _unused(program: Program | None) -> bool:
    """Whether a step's result is used by no later step and answers nothing."""
    assert program is not None
    used = {need for step in program.plan.steps for need in step.depends_on} | set(program.parts)
    return any(step.id not in used for step in program.plan.steps)


def _shape(program: Program | None, *, worded: bool = True) -> bytes:
    """What a plan does, without the names its program gave its lines: two samples differing only in a name
    (`maker` or `builder`) are the same plan and vote together. Not `worded`, its form alone: which steps call what,
    on which earlier steps, whatever they ask."""
    assert program is not None
    plan = program.plan
    steps = [[step.kind, step.target, step.input if worded else None, step.depends_on] for step in plan.steps]
    return msgspec.json.encode([*steps, plan.answer])


def _shown(value: Any) -> Any:
    return None if value is _REFUSED else value
