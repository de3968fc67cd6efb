"""Plan rules: the JSON schema the planner decodes under, validation, and `$N` references."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

import msgspec

from stepwise.reasoning.errors import PlanInvalid
from stepwise.reasoning.types import ExpertStep, ParallelCall, ParallelStep, Plan, Step, Tool, ToolStep

REFERENCE = re.compile(r"\$\{(\d+)\}|\$(\d+)|\$\$")  # `$$` is a literal `$` (how programs keep money as money)
MAX_STEPS = 8
PARALLEL = "parallel"  # the target of a "tools" step, whose input is several tool calls run at once


class Dag(msgspec.Struct):
    """A validated plan, indexed for the executor: who waits on whom."""

    steps: dict[int, Step]
    needs: dict[int, frozenset[int]]  # depends_on ∪ referenced ids
    dependents: dict[int, list[int]]
    answer: int | None = None  # the step whose result answers the question, when the plan names one
    # every step the plan names as answering it (several for a question asking several things)
    parts: tuple[int, ...] = ()


def declared_needs(step: Step) -> set[int]:
    """The steps `step` names as what it waits for: its `depends_on` and the `$N` its input mentions (itself too, if
    it names itself: validate_plan refuses that)."""
    return set(step.depends_on) | references(step.input)


def references(value: Any) -> set[int]:
    """The step ids a step input mentions as $N or ${N}, at any depth (a parallel call's: in its arguments)."""
    if isinstance(value, str):
        return {int(a or b) for a, b in REFERENCE.findall(value) if a or b}
    if isinstance(value, ParallelCall):
        return references(value.input)
    if isinstance(value, dict):
        return set().union(*(references(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(references(v) for v in value)) if value else set()
    return set()


def is_number(value: Any) -> bool:
    """An int or float, not a bool: a value arithmetic can compare."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def as_value(output: Any) -> Any:
    """A step output as the value later steps use: a table (`{"columns", "rows"}`, what query tools return) of one
    cell is that cell, of one column the list of its values, unless rows were cut off (`truncated`): a sum or a
    count of the rows shown would be wrong, so it stays a table, which arithmetic refuses; anything else is itself."""
    if (isinstance(output, dict) and isinstance(output.get("columns"), list) and isinstance(output.get("rows"), list)
            and output.get("truncated") is not True):
        rows, columns = output["rows"], output["columns"]
        if len(columns) == 1 and len(rows) == 1 and isinstance(rows[0], list) and len(rows[0]) == 1:
            return _number(rows[0][0])
        if len(columns) == 1 and all(isinstance(r, list) and len(r) == 1 for r in rows):
            return [_number(r[0]) for r in rows]
    return output


def last_part(value: Any) -> Any:
    """The quantity a several-part answer gives last, for a question asking one quantity: the worked examples' form
    `answer = a, b, difference` names what the quantity was computed from first (a field's and a courtyard's area,
    then by how much the one exceeds the other). Anything else is itself."""
    return value[-1] if isinstance(value, list) and value and is_number(value[-1]) else value


def is_table(value: Any) -> bool:
    return isinstance(value, dict) and "columns" in value and "rows" in value


_NUMBER_TEXT = re.compile(r"\s*-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\s*")


def number_text(text: str) -> float | None:
    """The number a text is written as (`"42.50"`, `" -3 "`, `"1e5"`), or None: not float()'s "nan", "Infinity" or
    "1_000", since a name or a code may be such a word."""
    return float(text) if _NUMBER_TEXT.fullmatch(text) else None


def _number(cell: Any) -> Any:
    """Databases print numerics as text (`"42.50"`); a cell that is a number in text is that number."""
    if isinstance(cell, str):
        number = number_text(cell)
        if number is None:
            return cell
        return int(number) if number.is_integer() and abs(number) < 2**53 and "." not in cell else number
    return cell


def render(value: Any) -> str:
    """A step output as text for substitution: integral numbers without '.0', JSON for structures."""
    value = as_value(value)
    if isinstance(value, bool) or value is None:
        return msgspec.json.encode(value).decode()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else format(value, ".12g")
    if isinstance(value, (int, str)):
        return str(value)
    return msgspec.json.encode(value).decode()


def substitute(value: Any, outputs: Mapping[int, Any]) -> Any:
    """Replace every $N in the strings of `value` with step N's rendered output (a parallel call's: in its
    arguments). The result is JSON data (a parallel call becomes `{"target", "input"}`): a resolved input is what
    a tool receives, the events carry and the trace gives back, alike in a run and when read from the trace."""
    if isinstance(value, str):
        if "$" not in value:
            return value
        return REFERENCE.sub(lambda m: render(outputs[int(m.group(1) or m.group(2))]) if m.group(1) or m.group(2)
                             else "$", value)
    if isinstance(value, dict):
        return {k: substitute(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, outputs) for v in value]
    if isinstance(value, ParallelCall):
        return {"target": value.target, "input": substitute(value.input, outputs)}
    return value


def validate_plan(plan: Plan, tools: Mapping[str, Tool], experts: Collection[str]) -> Dag:
    """Check every rule before anything runs; raise PlanInvalid naming the step and the rule. `experts` is what an
    expert step may target: expert names and skills."""
    if not plan.steps:
        raise PlanInvalid("the plan has no steps")
    steps: dict[int, Step] = {}
    for step in plan.steps:
        if step.id in steps:
            raise PlanInvalid("duplicate step id", step.id)
        steps[step.id] = step
    needs: dict[int, frozenset[int]] = {}
    for step in plan.steps:
        check_step(step, tools, experts)
        wanted = declared_needs(step)
        for ref in sorted(wanted):
            if ref == step.id:
                raise PlanInvalid("depends on itself", step.id)
            if ref not in steps:
                raise PlanInvalid(f"refers to step {ref}, which does not exist ($N is the result of step "
                                  f"N; write money without $)", step.id)
        needs[step.id] = frozenset(wanted)
    dependents: dict[int, list[int]] = {i: [] for i in steps}
    for sid, wanted in needs.items():
        for ref in wanted:
            dependents[ref].append(sid)
    _check_acyclic(needs, dependents)
    parts = _answer_parts(plan)
    for part in parts:
        if part not in steps:
            raise PlanInvalid(f"the answer is step {part}, which does not exist")
    return Dag(steps=steps, needs=needs, dependents=dependents, answer=parts[0] if len(parts) == 1 else None,
               parts=parts)


def check_step(step: Step, tools: Mapping[str, Tool], experts: Collection[str]) -> None:
    """The rules one step obeys on its own: a known target, arguments its tool takes, and a satisfiable `expect`.
    (That an input has the shape its kind takes — arguments, text, calls — the step's type says: a plan decoded from
    JSON has it.)"""
    expect = step.expect
    if expect is not msgspec.UNSET and expect.min is not None and expect.max is not None and expect.min > expect.max:
        raise PlanInvalid(f"expect: min {expect.min:g} is above max {expect.max:g}", step.id)
    if isinstance(step, ParallelStep):
        _check_parallel_step(step, tools, experts)
    elif isinstance(step, ToolStep):
        _check_tool_step(step, tools)
    else:
        _check_expert_step(step, experts)


def _check_expert_step(step: ExpertStep, experts: Collection[str]) -> None:
    if step.target not in experts:
        raise PlanInvalid(f"unknown expert or skill {step.target!r} (known: {', '.join(sorted(experts))})", step.id)
    if not step.input.strip():
        raise PlanInvalid("an expert step's input must be non-empty text", step.id)


def _check_parallel_step(step: ParallelStep, tools: Mapping[str, Tool], experts: Collection[str]) -> None:
    if step.target != PARALLEL:
        raise PlanInvalid(f"a tools step's target is {PARALLEL!r}, not {step.target!r}", step.id)
    if len(step.input) < 2:
        raise PlanInvalid("a tools step's input is a list of at least two calls", step.id)
    for i, call in enumerate(step.calls(), 1):
        try:
            check_step(call, tools, experts)
        except PlanInvalid as exc:
            raise PlanInvalid(f"call {i}: {str(exc).removeprefix(f'step {step.id}: ')}", step.id) from None


def _check_tool_step(step: ToolStep, tools: Mapping[str, Tool]) -> None:
    tool = tools.get(step.target)
    if tool is None:
        raise PlanInvalid(f"unknown tool {step.target!r} (known: {', '.join(sorted(tools))})", step.id)
    try:
        msgspec.convert(step.input, tool.args_type)
    except msgspec.ValidationError as exc:
        raise PlanInvalid(f"arguments for {step.target!r}: {exc}", step.id) from exc


def _answer_parts(plan: Plan) -> tuple[int, ...]:
    if plan.answer is msgspec.UNSET:
        return ()
    return tuple(plan.answer) if isinstance(plan.answer, list) else (plan.answer,)


def _check_acyclic(needs: dict[int, frozenset[int]], dependents: dict[int, list[int]]) -> None:
    waiting = {sid: len(wanted) for sid, wanted in needs.items()}
    ready = [sid for sid, wanted in needs.items() if not wanted]
    seen = 0
    while ready:
        sid = ready.pop()
        seen += 1
        for dep in dependents[sid]:
            waiting[dep] -= 1
            if waiting[dep] == 0:
                ready.append(dep)
    if seen < len(needs):
        stuck = sorted(sid for sid, left in waiting.items() if left > 0)
        raise PlanInvalid(f"the plan has a cycle through steps {stuck}", stuck[0])


def plan_schema(tools: Mapping[str, Tool], experts: Collection[str], max_steps: int = MAX_STEPS,
                parallel_calls: bool = False) -> dict:
    """The JSON schema the planner decodes under: one variant per tool (embedding its argument schema), one for
    experts, and with `parallel_calls` one for a step of several tool calls (each under its tool's schema).
    Property order is the order the model writes, so `id` comes first."""
    deps = {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}, "maxItems": max_steps}
    variants = [
        _step_schema("tool", {"const": name}, tool_args_schema(tool), deps) for name, tool in tools.items()
    ]
    if parallel_calls and tools:
        call = {"anyOf": [
            {"type": "object", "properties": {"target": {"const": name}, "input": tool_args_schema(tool)},
             "required": ["target", "input"], "additionalProperties": False}
            for name, tool in tools.items()
        ]}
        variants.append(_step_schema("tools", {"const": PARALLEL},
                                     {"type": "array", "items": call, "minItems": 2, "maxItems": 8}, deps))
    if experts:
        variants.append(
            _step_schema("expert", {"enum": list(experts)}, {"type": "string", "minLength": 1, "maxLength": 300}, deps)
        )
    return {
        "type": "object",
        "properties": {"steps": {"type": "array", "minItems": 1, "maxItems": max_steps, "items": {"anyOf": variants}}},
        "required": ["steps"],
        "additionalProperties": False,
    }


def _step_schema(kind: str, target: dict, input_schema: dict, deps: dict) -> dict:
    return {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},  # the trace tables' integer columns
            "kind": {"const": kind},
            "target": target,
            "input": input_schema,
            "depends_on": deps,
        },
        "required": ["id", "kind", "target", "input", "depends_on"],
        "additionalProperties": False,
    }


def tool_args_schema(tool: Tool) -> dict:
    """The tool's argument type as a self-contained JSON schema (msgspec's $refs inlined)."""
    return inline_refs(msgspec.json.schema(tool.args_type))


def inline_refs(schema: dict) -> dict:
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].rsplit("/", 1)[-1]])
            out = {k: walk(v) for k, v in node.items() if k not in ("$defs", "title", "properties")}
            if "properties" in node:  # its keys are field names, never keywords to drop
                out["properties"] = {name: walk(sub) for name, sub in node["properties"].items()}
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)
