"""Plans as straight-line programs. The planner (a coder model) writes one assignment per line:

    eggs = 16 - 3 - 4
    answer = eggs * 2

    rows = sql("SELECT count(*) FROM staff")
    who = ask(f"Who leads {team}?")

and `compile_program` turns the text, parsed with `ast`, into the same Plan (a DAG of steps) a JSON plan is: an
arithmetic line becomes a step of the arithmetic tool (`$N` for each earlier name it uses), a call of a tool or of
`ask` a tool or expert step, a name bound to a literal number is inlined where it is used, and `answer = …` marks
the step whose result is the answer. Because a name can only refer to a line above it, the plan has no forward
reference, no self-dependency and no cycle by construction, and no `$` the model wrote can be read as a reference.
The grammar (`program_grammar`) keeps the model inside this language while it writes."""

from __future__ import annotations

import ast
from collections.abc import Collection, Mapping
from typing import Any

import msgspec

from stepwise.reasoning import prompts
from stepwise.reasoning.errors import PlanInvalid
from stepwise.reasoning.plan import declared_needs
from stepwise.reasoning.types import ExpertStep, Plan, Step, Tool, ToolStep, tool_grammar
from stepwise.tools.source import parse_module

ANSWER = "answer"
ASK = "ask"  # the call that asks an expert
READ = "read"  # a docs search and an expert reading its passages: a question answered from the documents
DOCS = "docs"
MAX_LINES = 12


class Program(msgspec.Struct):
    """A compiled program: its plan and the ids of the steps whose results answer the question (several for a
    question asking several things: `answer = count, policy`)."""

    plan: Plan
    parts: tuple[int, ...]

    @property
    def answer(self) -> int | None:
        """The step whose result is the answer, when one is."""
        return self.parts[0] if len(self.parts) == 1 else None

    def needed(self) -> Plan:
        """The plan without the lines the answer does not rest on, however indirectly: a line whose result nothing
        uses cannot change the answer, but its failure (a query naming a column that is not there) would fail the
        run, or cost the sample its vote."""
        wanted, steps = set(self.parts), []
        for step in reversed(self.plan.steps):
            if step.id in wanted:
                wanted |= declared_needs(step)
                steps.append(step)
        return msgspec.structs.replace(self.plan, steps=steps[::-1])


def program_grammar(calls: Collection[str], tools: Mapping[str, Tool] | None = None, max_lines: int = MAX_LINES) -> str:
    """The llguidance (Lark) grammar of programs that may call `calls` (tool names, `read`, `ask`): lines
    `name = …`, the last one `answer = …`. A call takes one string (an f-string may embed earlier names); a tool
    with a `grammar` (Lark rules whose rule `<name>_arg` derives the string's content, e.g. the sql tool's SELECTs
    over its database's own tables and columns) is held to it."""
    rhs, rules = ["expr"], []
    for name in sorted(calls):
        grammar = tool_grammar((tools or {}).get(name))
        if grammar is not None:
            rhs.append(f'"{name}(\\"" {name}_arg "\\")"')
            rules.append(grammar)
        else:  # the opening quote is part of the literal: otherwise EXPR, being longer, swallows `read(` and the call
            rhs.append(f'"{name}(\\"" STR "\\")" | "{name}(f\\"" STR "\\")"')
    return "\n".join([
        "%llguidance {}",
        f"start: line{{0,{max_lines - 1}}} last",
        'line: NAME " = " rhs "\\n"',
        'last: "answer = " rhs | "answer = " NAME (", " NAME)+',
        "rhs: " + " | ".join(rhs),
        "NAME: /[a-z][a-z0-9_]{0,24}/",
        # Arithmetic as arithmetic: numbers, earlier names, calls of the arithmetic tool's functions, lists for
        # sum/min/max, parentheses, n!, and operators between operands (a small model given a looser set of
        # characters writes prose with them).
        "expr: unary (OP unary)*",
        'unary: "-"? atom "!"?',
        'atom: NUMBER | NAME | NAME "(" expr (SEP expr)* ")" | "(" expr ")" | "[" expr (SEP expr)* "]"',
        r"OP: / ?(\*\*|\/\/|[-+*\/%]) ?/",
        "SEP: /, ?/",
        r"NUMBER: /[0-9]+(\.[0-9]+)?/",
        r'STR: /([^"\\\n]|\\[^\n]){1,800}/',
        *rules,
    ])


def compile_program(text: str, tools: Mapping[str, Tool], expert: str, *, arithmetic: str = "calculator") -> Program:
    """The Plan a program means; PlanInvalid naming the line and the problem if it is not one. `tools` are the tools
    it may call by name, `expert` the target of `ask`, `arithmetic` the tool that evaluates expressions."""
    try:
        module = parse_module(text.strip())
    except SyntaxError as exc:
        raise PlanInvalid(f"line {exc.lineno}: not a valid program line: {exc.msg}") from None
    if not module.body:
        raise PlanInvalid("the program is empty")
    steps: list[Step] = []
    names: dict[str, int | str] = {}  # name → the step id that computes it, or the literal it stands for
    answer: int | None = None
    for line, statement in enumerate(module.body, 1):
        if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)):
            raise PlanInvalid(f"line {line}: each line assigns one name (`name = …`)")
        target, value = statement.targets[0].id, statement.value
        if target == ANSWER and isinstance(value, ast.Tuple):  # several things asked: each an earlier name's step
            if line != len(module.body):
                raise PlanInvalid(f"line {line}: `answer = …` is the last line")
            parts = tuple(dict.fromkeys(_part(element, line, names, steps, arithmetic) for element in value.elts))
            return Program(Plan(steps, answer=parts[0] if len(parts) == 1 else list(parts)), parts)
        before = len(steps)
        bound = _compile_value(value, line, names, steps, tools, expert, arithmetic)
        if len(steps) > before:
            steps[-1].name = target
        if target == ANSWER:
            if isinstance(bound, str):  # a literal answer is still computed by a step, so the answer rests on one
                steps.append(ToolStep(len(steps) + 1, arithmetic, {"expression": bound}, name=ANSWER))
                bound = len(steps)
            answer = bound
            if line != len(module.body):
                raise PlanInvalid(f"line {line}: `answer = …` is the last line")
        names[target] = bound
    if answer is None:
        raise PlanInvalid("the program never sets `answer`")
    return Program(Plan(steps, answer=answer), (answer,))


def _part(element: ast.expr, line: int, names: dict[str, int | str], steps: list[Step], arithmetic: str) -> int:
    """The step a name in `answer = a, b` stands for; a name bound to a number (`a = 5`) gets a step computing it,
    as a literal answer does, so that every part rests on a step."""
    if not isinstance(element, ast.Name) or element.id not in names:
        raise PlanInvalid(f"line {line}: `answer = a, b` lists names of earlier lines")
    bound = names[element.id]
    if isinstance(bound, str):
        steps.append(ToolStep(len(steps) + 1, arithmetic, {"expression": bound}, name=element.id))
        bound = names[element.id] = len(steps)
    return bound


def _compile_value(value: ast.expr, line: int, names: dict[str, int | str], steps: list[Step],
                   tools: Mapping[str, Tool], expert: str, arithmetic: str) -> int | str:
    """The step id a line's value is computed by (a new step, or an earlier one for a bare name), or the literal text
    of a constant."""
    match value:
        case ast.Name(id=name):
            if name not in names:
                raise PlanInvalid(f"line {line}: {name!r} is used before it is set")
            return names[name]
        case ast.Constant(value=int() | float() as number) if not isinstance(number, bool):
            return repr(number)
        case ast.UnaryOp(op=ast.USub(), operand=ast.Constant(value=int() | float() as number)) \
                if not isinstance(number, bool):
            return repr(-number)
        case ast.Call(func=ast.Name(id=called), args=args, keywords=keywords) if (
                called == ASK or (called == READ and DOCS in tools) or (called in tools and called != arithmetic)):
            return _compile_call(called, args, keywords, line, names, steps, tools, expert)
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and any(
            isinstance(a, (ast.Constant, ast.JoinedStr)) and isinstance(getattr(a, "value", None), str)
            or isinstance(a, ast.JoinedStr)
            for a in value.args):
        raise PlanInvalid(f"line {line}: {value.func.id}() is not offered")
    if arithmetic not in tools:
        raise PlanInvalid(f"line {line}: arithmetic needs the {arithmetic} tool, which is not offered")
    expression, needs = _expression(value, line, names)
    steps.append(ToolStep(len(steps) + 1, arithmetic, {"expression": expression}, sorted(needs)))
    return len(steps)


def _compile_call(called: str, args: list[ast.expr], keywords: list[ast.keyword], line: int,
                  names: dict[str, int | str], steps: list[Step], tools: Mapping[str, Tool], expert: str) -> int:
    """The steps of `ask(...)`, `read(...)` or a tool's call; the id of the last, which holds the value."""
    if len(args) != 1 or keywords and called in (ASK, READ):
        raise PlanInvalid(f"line {line}: {called}() takes one string")
    text, needs = _string(args[0], line, names)
    if called == READ:
        search = {_first_field(tools[DOCS]): text, "hops": 2}  # two-hop: what the question's subject names too
        steps.append(ToolStep(len(steps) + 1, DOCS, search, sorted(needs)))
        passages = len(steps)
        reading = prompts.READER_INPUT.format(reader=prompts.READER, question=text, passages=passages)
        steps.append(ExpertStep(len(steps) + 1, expert, reading, sorted(needs | {passages})))
    elif called == ASK:
        steps.append(ExpertStep(len(steps) + 1, expert, text, sorted(needs)))
    else:
        arguments: dict[str, Any] = {_first_field(tools[called]): text}
        for keyword in keywords:
            if keyword.arg is None or not isinstance(keyword.value, ast.Constant):
                raise PlanInvalid(f"line {line}: {called}() takes literal keyword arguments")
            arguments[keyword.arg] = keyword.value.value
        steps.append(ToolStep(len(steps) + 1, called, arguments, sorted(needs)))
    return len(steps)


def _expression(value: ast.expr, line: int, names: dict[str, int | str]) -> tuple[str, set[int]]:
    """The expression's text with each earlier name replaced by `$N` (a step) or its literal (a constant). Names in
    call position (`gcd(a, b)`) are the arithmetic tool's functions and stay; strings are refused."""
    needs: set[int] = set()
    called = {id(n.func) for n in ast.walk(value) if isinstance(n, ast.Call)}

    class Rewrite(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            if id(node) in called:
                return node
            if node.id not in names:
                raise PlanInvalid(f"line {line}: {node.id!r} is used before it is set")
            bound = names[node.id]
            if isinstance(bound, str):
                return ast.Name(id=f"({bound})")
            needs.add(bound)
            return ast.Name(id=f"${bound}")

        def visit_Constant(self, node: ast.Constant) -> ast.AST:
            if isinstance(node.value, str):
                raise PlanInvalid(f"line {line}: text is not arithmetic; call a tool or ask() for it")
            return node

    rewritten = Rewrite().visit(value)
    return ast.unparse(rewritten), needs


def _string(node: ast.expr, line: int, names: dict[str, int | str]) -> tuple[str, set[int]]:
    """A call's string argument as step input text: an f-string's `{name}` becomes `$N` (or the constant)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.replace("$", "$$"), set()
    if not isinstance(node, ast.JoinedStr):
        raise PlanInvalid(f"line {line}: a call takes one string")
    parts, needs = [], set()
    for piece in node.values:
        if isinstance(piece, ast.Constant):
            parts.append(str(piece.value).replace("$", "$$"))
        elif isinstance(piece, ast.FormattedValue) and isinstance(piece.value, ast.Name):
            name = piece.value.id
            if name not in names:
                raise PlanInvalid(f"line {line}: {name!r} is used before it is set")
            bound = names[name]
            if isinstance(bound, str):
                parts.append(bound)
            else:
                needs.add(bound)
                parts.append(f"${{{bound}}}")
        else:
            raise PlanInvalid(f"line {line}: an f-string may only embed names: {{name}}")
    return "".join(parts), needs


def _first_field(tool: Tool) -> str:
    """The argument a one-string call fills: the tool's first field (`query` for sql and docs, `code` for python)."""
    return tool.args_type.__struct_fields__[0]
