"""Every prompt the reasoning core and the verifiers send, pinned byte for byte: servers' prefix caches and the
measured eval numbers rest on their exact text, so changing one is a decision, made here by changing its hash."""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path

import msgspec
import pytest

from stepwise.reasoning import events as ev
from stepwise.reasoning.composer import Composer
from stepwise.reasoning.context import RunContext
from stepwise.reasoning.functions import function_messages
from stepwise.reasoning.options import RunOptions
from stepwise.reasoning.plan import validate_plan
from stepwise.reasoning.planner import Planner, example_turns, planner_prompt
from stepwise.reasoning.program import compile_program
from stepwise.reasoning.program_planner import ProgramPlanner
from stepwise.reasoning.repair import repair_messages
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import (
    EXPERT_SYSTEM,
    NOT_IN_DOCUMENTS,
    Expert,
    ExpertStep,
    Function,
    Message,
    Plan,
    ToolStep,
)
from stepwise.tools import default_tools
from stepwise.tools.docs import DocSearch
from stepwise.verifiers.model import Judge, SelfConsistency
from tests.doubles import Script, StubTool, engine_with

DOCS = DocSearch(Path(__file__).resolve().parent.parent / "fixtures" / "docs")


class QueryArgs(msgspec.Struct):
    query: str


class Database:
    """An sql tool as the prompts see it: a name, a description whose first line is its schema's heading."""

    name = "sql"
    description = "runs one read-only SELECT.\nTables:\n- orders(id integer, total numeric, shop text)"
    args_type = QueryArgs
    deterministic = False

    async def run(self, args):
        return {"columns": ["count"], "rows": [[3]]}


CALCULATOR = default_tools()
EVERY_TOOL = {**CALCULATOR, "sql": Database(), "docs": DOCS}
EXPERTS = {"general": Expert(name="general", backend=None, description="a small generalist", skills=["facts"]),
           "coder": Expert(name="coder", backend=None, description="writes code", skills=["code", "math"])}
ROUTER = Router(EXPERTS, "general")
FUNCTIONS = [Function(name, f"The {name} in a {what}.", {"type": "object", "properties": {what: {"type": "string"}}})
             for name, what in (("weather", "city"), ("time", "zone"))]


def _ctx() -> RunContext:
    return RunContext(uuid.uuid4(), ev.Recorder(), time.monotonic() + 60)


def _router(backend) -> Router:
    return Router({"general": Expert(name="general", backend=backend)}, "general")


async def planner_system():
    return [Message("system", planner_prompt(tools, ROUTER)) for tools in ({}, CALCULATOR, EVERY_TOOL)]


async def planner_examples():
    toolsets = (CALCULATOR, EVERY_TOOL, {**CALCULATOR, "sql": Database()}, {**CALCULATOR, "docs": DOCS})
    return [turn for tools in toolsets for turn in example_turns(ROUTER, tools)]


async def planner_plan_and_replan():
    plan = '{"steps":[{"id":1,"kind":"tool","target":"calculator","input":{"expression":"2*3"},"depends_on":[]}]}'
    backend = Script(plan, plan, plan)
    planner = Planner(_router(backend), CALCULATOR)
    await planner.plan("What is 2*3?", _ctx(), ("calculator",))
    done = [(ToolStep(1, "calculator", {"expression": "2*3"}), 6)]
    failed = ExpertStep(2, "general", "Who wrote $1?", [1])
    await planner.replan("What is 2*3?", _ctx(), ("calculator",), done, failed, "no such book")
    await planner.replan("What is 2*3?", _ctx(), ("calculator",), [], failed, "step 3 does not exist", invalid=True)
    return [m for seen in backend.seen for m in seen]


async def program_system():
    planner = ProgramPlanner(ROUTER, {**EVERY_TOOL, "python": _PYTHON, "convert": _CONVERT})
    return [planner.prompt_for(allowed)[0]
            for allowed in (("calculator",), ("calculator", "sql", "docs", "python", "convert"))]


# A caller's tool: the program planner describes it by its own description.
_CONVERT = StubTool("convert", "converts an amount between currencies.", "ConvertArgs", "amount", 1.0)
_PYTHON = StubTool("python", "runs a Python program.", "CodeArgs", "code", "", deterministic=False)


async def program_plan_fix_and_replan():
    backend = Script("b = 1 +", "answer = 2 * 3", "answer = 2 * 4", "answer = 2 * 5")
    planner = ProgramPlanner(_router(backend), CALCULATOR, samples=1)
    await planner.plan("What is 2 times 3?", _ctx(), ("calculator",))
    failed = ToolStep(1, "calculator", {"expression": "2*3"}, name="total")
    await planner.replan("What is 2 times 3?", _ctx(), ("calculator",), [], failed, "division by zero")
    unnamed = ToolStep(2, "calculator", {})
    await planner.replan("What is 2 times 3?", _ctx(), ("calculator",), [], unnamed, "a rule", invalid=True)
    return [m for seen in backend.seen for m in seen]


async def worked_solution():
    # Two samples asked, one returned: no majority, so the word problem is worked out in words as well.
    backend = Script("answer = 2 * 3", "Two rows of three make 6.")
    planner = ProgramPlanner(_router(backend), CALCULATOR, samples=2)
    await planner.plan("A box holds 2 rows of 3 cups. How many cups are in it?", _ctx(), ("calculator",))
    return backend.seen[1]


async def reader_step():
    program = compile_program('who = read("Who built the Tarn Bridge?")\nanswer = who', {"docs": DOCS}, "general")
    return [Message("user", step.input) for step in program.plan.steps if isinstance(step, ExpertStep)]


async def composer_with_a_retry():
    backend = Script('{"text":"It is 7.","uses":[1]}', '{"text":"It is 6.","uses":[1]}')
    plan = Plan(steps=[ToolStep(1, "calculator", {"expression": "2*3"}, name="total"),
                       ExpertStep(2, "general", "Name a number near $1.", [1])], answer=1)
    dag = validate_plan(plan, CALCULATOR, ["general"])
    await Composer(_router(backend), always=True).compose("What is 2*3?", dag, {1: 6, 2: "six"}, _ctx(), CALCULATOR)
    return [m for seen in backend.seen for m in seen]


async def composer_parts():
    backend = Script('{"text":"Ann 3, Bo 4.","uses":[1, 2]}')
    plan = Plan(steps=[ToolStep(1, "calculator", {"expression": "1+2"}, name="ann"),
                       ToolStep(2, "calculator", {"expression": "2+2"}, name="bo")], answer=[1, 2])
    dag = validate_plan(plan, CALCULATOR, ["general"])
    await Composer(_router(backend)).compose("How many has Ann, and how many has Bo?", dag, {1: 3, 2: 4}, _ctx(),
                                            CALCULATOR)
    return backend.seen[0]


async def composer_choice_and_ties():
    backend = Script('{"text":"Marlow\'s.","uses":[1]}', '{"text":"Both 3.","uses":[1, 2]}')
    router = _router(backend)
    choice = Plan(steps=[ToolStep(1, "calculator", {"expression": "9 / 36"}, name="marlow"),
                         ToolStep(2, "calculator", {"expression": "6 / 20"}, name="pendle"),
                         ToolStep(3, "calculator", {"expression": "min($1, $2)"}, [1, 2], name="answer")], answer=3)
    await Composer(router).compose("Which is cheaper, Marlow's or Pendle's?",
                                   validate_plan(choice, CALCULATOR, ["general"]), {1: 0.25, 2: 0.3, 3: 0.25}, _ctx(),
                                   CALCULATOR)
    tie = Plan(steps=[ToolStep(1, "calculator", {"expression": "1+2"}, name="ann"),
                      ToolStep(2, "calculator", {"expression": "2+1"}, name="bo")], answer=[1, 2])
    await Composer(router).compose("Who has more, Ann or Bo?", validate_plan(tie, CALCULATOR, ["general"]),
                                   {1: 3, 2: 3}, _ctx(), CALCULATOR)
    return [m for seen in backend.seen for m in seen]


async def function_calls():
    theirs = [Message("system", "Be brief."), Message("user", "Weather in Paris and Rome?")]
    return [m for required in (True, False) for parallel in (True, False)
            for m in function_messages(theirs, FUNCTIONS, required=required, parallel=parallel)]


async def repair():
    failures = [("SELECT * FORM orders", "syntax error at FORM"), ("SELECT x FROM orders", "no column x")]
    return repair_messages(Database(), failures)


async def expert_retry():
    backend = Script("", "8", '{"text":"8 legs.","uses":[1]}')
    engine = engine_with(backend, CALCULATOR)
    plan = Plan(steps=[ExpertStep(1, "general", "How many legs does a spider have?")])
    await engine.run("How many legs does a spider have?", RunOptions(deadline_s=10, plan=plan), sink=ev.Recorder())
    return [m for seen in backend.seen[:2] for m in seen]


async def verifiers():
    seen: list[Message] = []

    async def ask(messages, **kwargs):
        seen.extend(messages)
        return ['{"ok":true,"reason":"right"}'] * kwargs.get("samples", 1)

    step = ExpertStep(1, "general", "How many legs does a spider have?")
    await SelfConsistency(samples=2).verify(step, step.input, "8", ask)
    await Judge().verify(step, step.input, "8", ask)
    return seen


PROMPTS = {  # how each is built, and the SHA-256 of its messages as JSON
    "planner_system": (planner_system,
                       "9b84af23e3d900a8ad1919af25be6871a4e9e9bb3af4b6f1514e8cf0fd9b9f8c"),
    "planner_examples": (planner_examples,
                         "0864d992d0e6a81d5ef32aceec39ee78cb70934af253f75798de8e81c4f63645"),
    "planner_plan_and_replan": (planner_plan_and_replan,
                                "943c3fb2fb8c3ffa5cf0139579f04af608b220cfb686135757acb0012054383b"),
    "program_system": (program_system,
                       "97cdc6e32f231c0f1eaf89947952594d4eb762421ef1c32adc465465ca889a18"),
    "program_plan_fix_and_replan": (program_plan_fix_and_replan,
                                    "d41415e30cdbb5c80680743cf6f0d484e1c21448237cabea4d7e7f447d812b2c"),
    "worked_solution": (worked_solution,
                        "c749894259b390073d7b106fb05173982bdbbd3ab69af155c849e455cd64eb38"),
    "reader_step": (reader_step,
                    "162f41bf4e39b3fe7e6dd2a126de79be238540674990c3126d6674ff3cf15b68"),
    "composer_with_a_retry": (composer_with_a_retry,
                              "298510f06c72055d2929f410087ab5b9732874d9607c28718e624da1a235fa00"),
    "composer_choice_and_ties": (composer_choice_and_ties,
                                 "5a79f00a3e8dfc5bab3d8626b2bb82594b6b966f038e20e563402d9521dbe3b2"),
    "composer_parts": (composer_parts,
                       "d68cdab9cf42b81fedb797b3575c27776e163fa491c3f15012b36d1d602fd450"),
    "function_calls": (function_calls,
                       "1e9661544541f3a71ade86ff80d736690138a389bffca9355f8c7cc41b28bd97"),
    "repair": (repair,
               "aadc65ad522028ef93d67f640b580752a6afbcccbf93c069c104baa600f10716"),
    "expert_retry": (expert_retry,
                     "9f5e41b20b0f3682e2ba15814836ea86d2e2e3fbf97fdf0cd76cc7dcc7c529c3"),
    "verifiers": (verifiers,
                  "16d89d584446e885156b090047ab84e91fa636125d050263d616f424e4669863"),
}


def digest(messages: list[Message]) -> str:
    return hashlib.sha256(msgspec.json.encode(messages)).hexdigest()


@pytest.mark.parametrize("name", sorted(PROMPTS))
async def test_each_prompt_is_byte_identical_to_the_one_the_evals_measured(name):
    """The messages each prompt-building path sends hash to the value recorded when the evals were measured."""
    build, pinned = PROMPTS[name]
    messages = await build()
    assert messages and all(m.content for m in messages)
    assert digest(messages) == pinned, f"{name}: {digest(messages)}"


def test_the_prompts_shared_with_verifiers_keep_their_words():
    """An expert step's system prompt and the reader's not-found phrase, which verifiers and the composer match."""
    assert EXPERT_SYSTEM == "Answer briefly and precisely. Reply with the answer only."
    assert NOT_IN_DOCUMENTS == "not in the documents"
