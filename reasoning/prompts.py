"""Every text the reasoning core puts before a model, in one place; the modules that send them fill in the blanks.

Each text is byte for byte what the evals were measured with, and tests/unit/test_prompts.py pins every message
built from them: a server's prefix cache keys on the exact bytes, and a changed word changes what a small model
does. Edit one as a change of behaviour, measured.

Three texts live elsewhere, because verifiers may import only reasoning/types.py: EXPERT_SYSTEM (how an expert step
is asked; self-consistency asks again the same way) and NOT_IN_DOCUMENTS (what a reader says when the passages lack
the answer; the composer and a verifier recognise it) are in reasoning/types.py, re-exported here; the LLM judge's
prompt is in verifiers/model.py, its only user.
"""

from __future__ import annotations

from stepwise.reasoning.types import EXPERT_SYSTEM, NOT_IN_DOCUMENTS

__all__ = [
    "COMPOSE_REJECTED", "COMPOSE_SYSTEM", "COMPOSE_USER", "EXPERT_REJECTED", "EXPERT_SYSTEM", "FUNCTIONS_SEVERAL",
    "FUNCTIONS_SYSTEM", "FUNCTIONS_TEXT_TOO", "FUNCTIONS_TOOLS", "NOT_IN_DOCUMENTS", "PLAN_EXAMPLES", "PLAN_RULES",
    "PLAN_TOOL_EXAMPLES", "PROGRAM_ARITHMETIC", "PROGRAM_CALLS", "PROGRAM_INVALID", "PROGRAM_QUERY",
    "PROGRAM_REPLAN", "PROGRAM_SYSTEM", "READER", "REPAIR_SYSTEM", "REPAIR_USER", "WORKED_MAX_TOKENS",
    "WORKED_SYSTEM",
]

# ---- an expert step (reasoning/engine.py)

# A retry says what the verifiers disliked: a small model asked the same question again mostly answers the same.
EXPERT_REJECTED = "Your previous answer was rejected ({feedback}). Answer again."

# ---- the JSON planner (reasoning/planner.py)

# The catalogue first, so the whole static prefix is one cached block per set of tools.
PLAN_INTRO = "You plan how to answer a question as a list of steps."
PLAN_TOOLS = "Tools:"
PLAN_TOOL = "- {name}: {description}"
PLAN_EXPERTS = "Experts:"
PLAN_EXPERT = "- {name}: {description} (skills: {skills})"
PLAN_NO_SKILLS = "none"

# What keeps a plan runnable and fast: one question per step (independent steps run in parallel), an expert by name
# or skill (both are targets), and `$` only as a reference (`$57` written for money would be read as step 57).
PLAN_RULES = """Rules:
- One step per independent part of the question; independent steps run in parallel.
- A tool step calls a tool with its arguments. An expert step asks one expert a short, self-contained question:
  target the expert whose skills fit that part, by name or by skill.
- A step may use the result of step N by writing $N in its input; then N goes in depends_on. $ means nothing else:
  write amounts of money without it.
{calculator}{lookup}- Stop when every part of the question has its step. At most {max_steps} steps."""

# Only with a calculator: arithmetic belongs to the deterministic tool (its results are recomputed and exact), and
# words sent to it are refused.
PLAN_CALCULATOR_RULE = ("- Never compute in your head: arithmetic goes to the calculator. "
                        "Text never goes to the calculator.\n")

# Only with both sql and docs: with it, Qwen plans both a query and a search for a question needing both (90279be).
PLAN_LOOKUP_RULE = "- sql sees only the tables and columns listed; a rule, policy or how-to is a docs search.\n"

# Worked examples, sent as earlier turns of the conversation (small models follow turns better than prose); `{expert}`
# is the default expert. The spider's expert step ends "Reply with a number." so its answer fits the calculator step
# after it; the planner reads that ending back as the step's `expect` (NUMBER_WANTED).
PLAN_EXAMPLES = [
    ("What is 2*3 plus 4*5?",
     '{{"steps":[{{"id":1,"kind":"tool","target":"calculator","input":{{"expression":"2*3"}},"depends_on":[]}},'
     '{{"id":2,"kind":"tool","target":"calculator","input":{{"expression":"4*5"}},"depends_on":[]}},'
     '{{"id":3,"kind":"tool","target":"calculator","input":{{"expression":"$1+$2"}},"depends_on":[1,2]}}]}}'),
    ("Who wrote Hamlet?",
     '{{"steps":[{{"id":1,"kind":"expert","target":"{expert}","input":"Who wrote Hamlet?","depends_on":[]}}]}}'),
    ("How many legs do 3 spiders have?",
     '{{"steps":[{{"id":1,"kind":"expert","target":"{expert}",'
     '"input":"How many legs does a spider have? Reply with a number.","depends_on":[]}},'
     '{{"id":2,"kind":"tool","target":"calculator","input":{{"expression":"$1*3"}},"depends_on":[1]}}]}}'),
    ("Name the capital of Spain and the author of Faust.",
     '{{"steps":[{{"id":1,"kind":"expert","target":"{expert}","input":"What is the capital of Spain?",'
     '"depends_on":[]}},'
     '{{"id":2,"kind":"expert","target":"{expert}","input":"Who wrote Faust?","depends_on":[]}}]}}'),
]
PLAN_QUESTION = "Q: {question}"

# Examples for tools that are not always there, added when they are: without them the small default model rarely
# reaches for a tool it has only seen described. Formatted twice: here with the ids, later (like PLAN_EXAMPLES) with
# the expert.
_SQL = ('{{{{"id":{id},"kind":"tool","target":"sql","input":{{{{"query":"SELECT count(*) FROM orders"}}}},'
        '"depends_on":[]}}}}')
_DOCS = '{{{{"id":{id},"kind":"tool","target":"docs","input":{{{{"query":"refund days","k":2}}}},"depends_on":[]}}}}'
PLAN_TOOL_EXAMPLES = {
    ("sql", "docs"): ("How many orders are there, and how many days do refunds take?",
                      '{{"steps":[' + _SQL.format(id=1) + "," + _DOCS.format(id=2) + "]}}"),
    ("sql",): ("How many orders are there?", '{{"steps":[' + _SQL.format(id=1) + "]}}"),
    ("docs",): ("What do the documents say about refunds?", '{{"steps":[' + _DOCS.format(id=1) + "]}}"),
}

# A replan shows what is done (steps written again unchanged keep their results and do not run again), the failure
# and why, and asks for a whole plan: the plan schema has no way to write a part of one.
PLAN_DONE = "Steps done so far (write them again unchanged to reuse their results):"
PLAN_DONE_STEP = "{step} -> {output}"
PLAN_NONE_DONE = "(none)"
PLAN_BROKE_RULE = "This step broke a rule of plans: {step}"
PLAN_FAILED = "This step failed: {step}"
PLAN_WHY = "Why: {reason}"
PLAN_AGAIN = "Write the whole plan again, with the failed step fixed."

# How a JSON-planned expert question says it wants a number alone (the spider example teaches it; lower case, matched
# in any case): the plan schema has no `expect`, so the planner turns these words into Expect(number=True), which the
# verifiers check, and shows the step to the model again as written.
NUMBER_WANTED = "reply with a number"

# ---- the program planner (reasoning/program_planner.py)

# A worked solution in words, asked for when the sampled programs' values have no majority: its final number then
# votes among theirs. The same words as the single-call baseline's (evals/modes.py), which is what it is.
WORKED_SYSTEM = "Solve the problem. Work it out briefly, then end with the final answer as a number."
# Less room than the baseline's (evals/modes.DIRECT_MAX_TOKENS, 640): a solution cut off here votes its last number,
# which is seldom a sample's value. Re-voting 40 gsm_symbolic items' samples with the numbers of solutions given 640
# tokens changed 7 of the 16 worked numbers and no answer, so the vote keeps the shorter wait.
WORKED_MAX_TOKENS = 320

# `answer = first, second` keeps both parts of a two-part question (the composer must state each), so they are not
# to be added; arithmetic lines are Python expressions, which a unit or a `$` would break.
PROGRAM_SYSTEM = """Write a short Python program that answers the question.
One assignment per line, a name for each quantity; the last line is `answer = ...`.
A question asking for two things, or which of two is larger or cheaper, ends `answer = first, second` (never their sum).
Arithmetic: numbers only (no units, no $), + - * / // % ** and {functions}.
{calls}"""

# The functions the arithmetic tool evaluates, as the program grammar allows them.
PROGRAM_ARITHMETIC = "gcd lcm factorial comb perm sqrt floor ceil round min max abs sum"

# One line per call a program may make, by its name in programs (reasoning/program.py: READ is "read", ASK "ask").
# read's asks one fact per call: a read of the whole two-hop question gets its answer (or a guess) back, which the
# next read then treats as the first hop's (program_planner's copied_question discards such samples).
PROGRAM_CALLS = {
    "sql": 'sql("SELECT ...") runs one query on the database below and returns its value (one cell) or rows. One '
           'query answers the whole question; a row of another table is found by its name in a subquery or a join '
           '(`WHERE x_id = (SELECT id FROM x WHERE name = \'...\')`), never by a guessed id.',
    "docs": 'docs("words") returns the passages of the documents that match.',
    "read": 'read("question") answers a question from the documents (use it for any fact the documents hold; '
            'one fact per call: for a question about "the X of Y", first `x = read("Who was the X of Y?")`, '
            'then ask about it with an f-string).',
    "python": 'python("code") runs a Python program and returns what it prints (for searches and puzzles; in it, '
              '`from puzzle import make`: make(target, numbers) is an expression using each number once '
              'that equals target).',
    "ask": 'ask("question") asks an expert for a fact that is general knowledge.',
}
PROGRAM_TOOL_CALL = '{name}("...") {description}'  # a caller's tool, described by itself
PROGRAM_CALLS_HEADING = "Calls (each takes one string; an f-string may use earlier names):\n- "
PROGRAM_CALLS_JOIN = "\n- "
PROGRAM_DATABASE = "\nThe database:\n"  # then the sql tool's description past its first line: the tables

# After a step failed: which line, and why; the whole program is written again (a grammar cannot continue a part).
PROGRAM_REPLAN = "The line computing {shown} {what}: {reason}\nWrite the whole program again, fixed."
PROGRAM_STEP = "step {id}"  # a failed step without a name in the program
PROGRAM_BROKE_RULE = "broke a rule"
PROGRAM_FAILED = "failed"

# A question naming a database row, whose chosen program only asked the general expert or read the documents
# (program_planner._queried).
PROGRAM_QUERY = ("That program asks about something the database holds, which only a query of the database "
                 "knows. Write it again with sql(\"SELECT …\") queries of its tables.")
# When no sample compiled: the first one's error, and the shape again (greedy, once).
PROGRAM_INVALID = ("That program was invalid ({error}). "
                   "Write it again: one `name = ...` per line, ending with `answer = ...`.")

# ---- reading passages (reasoning/program.py's read())

# The answer alone, so it can be substituted into a later step; and one fixed phrase for "not there", which the
# composer and the verifiers recognise rather than mistaking it for an answer. Reference texts give a person's years
# as "(1790–1858)" and never say "born" there: asked for a birth year, the reader took another year from a passage.
READER = ("Answer the question from these passages only, briefly: the answer alone (a name, a number, a date). "
          "Years in brackets after a name, as in (1790–1858), are the years of birth and death. If "
          f"they do not contain it, reply: {NOT_IN_DOCUMENTS}.")
# The question after the passages, nearest to the answer: replaying the reader's 15 calls of a probe run (greedy, the
# same passages), asked so it answered 2 more right ("(1790–1861)" read as a birth year rather than another
# passage's "founded in 1822 by" her; a teacher rather than the pupil the question names) and none fewer.
READER_INPUT = "{reader}\nPassages: ${{{passages}}}\nQuestion: {question}"

# ---- the composer (reasoning/composer.py)

# The results are computed and verified, so they are restated, not redone; the reader of the answer never saw the
# steps; names and numbers come from the results, as the grounding check (composer.ungrounded) then demands.
COMPOSE_SYSTEM = (
    "You write the final answer to a question from the results of steps that were already computed and checked. "
    "Trust the results; do not recompute them. Reply with JSON: text is the answer in one short sentence, "
    "uses lists the ids of the steps the answer rests on (the text never mentions steps or their ids). "
    "Names, numbers and dates come only from the results or "
    "the question; if a result says it is not in the documents, say the documents do not say."
)
COMPOSE_USER = "Question: {question}\nResults:\n{results}"
# The grounding check's reason, so the retry fixes what was wrong.
COMPOSE_REJECTED = "Rejected: {problem}. Answer again from the results."

# The results block: one line per step (its program name, the call, the result), then the final result(s).
RESULT_LINE = "[{id}] {named}{target}({shown}) = {result}"
RESULT_NAMED = "{name} = "
RESULT_FINAL = "Final result (step {id}): {result}{owner}"
RESULT_OWNER = " (the value of {names})"  # a min/max choice ends in a number: whose it is, so the answer names it
RESULT_PARTS = "Final results (steps {ids}): {results}"
# Which part is largest and smallest, by name: a small model comparing two decimals picks the wrong one too often.
RESULT_ALL_EQUAL = "All final results are equal ({value})."
RESULT_EXTREMES = "Largest: {top} ({top_value}); smallest: {low} ({low_value})."

# ---- caller-defined functions (reasoning/functions.py)

# The functions and calls as Qwen2.5's chat template writes them when it is given tools (the same Hermes format many
# tuned models share): the model reads and writes what it was tuned on. The system text without the caller's is
# the one that template puts there; the caller's own replaces it.
FUNCTIONS_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
FUNCTIONS_TOOLS = (
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>{tools}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}}\n</tool_call>"
)
# Only when no call is required: the grammar then offers words (not starting with `<` or a space) as the alternative.
FUNCTIONS_TEXT_TOO = " If no function fits, answer in words instead."
# Small models make one call and stop; told in a sentence what several look like, they make one per thing asked
# (BFCL parallel, first 50: 31 right without such a sentence, 35 with it). Shown four calls for two values of two
# things, they also write a call per pair (first 100: 75 → 79, +4 −0; parallel_multiple's first 50: 41 → 40, one extra
# call). Told in words alone (no calls shown) that pairs need a call each, the model changed no wrong reply (0 of 25).
FUNCTIONS_SEVERAL = (
    " A request naming several values (two cities, three years, two metals…) needs one call for each value, and "
    "one call for each pair where it names several values of two things. For example, \"the price of gold and "
    "silver in 2019 and 2020\" is four calls:\n"
    + "\n".join(f'<tool_call>\n{{"name": "price", "arguments": {{"metal": "{m}", "year": {y}}}}}\n</tool_call>'
                for m in ("gold", "silver") for y in (2019, 2020))
    + "\nand \"the area of squares of side 2,4 and 8\" is three calls, with side 2, side 4 and side 8. An optional "
    "parameter the request gives no value for is left out.")

# ---- repairing a tool's argument in its step (reasoning/repair.py)

# The description (for sql, the schema) is the whole system prompt, the same for every repair of the tool, so a
# server's prefix cache keeps it; then every failed try, oldest first.
REPAIR_SYSTEM = "You write the argument of a tool that {description}"
REPAIR_FAILED = "This failed:\n{argument}\nError: {error}"
REPAIR_USER = "{tried}\nWrite a corrected one."
