"""Demonstrations learned from traces (DSPy's bootstrap, from our own Postgres rows): an eval item scored correct
whose run planned once, ran every step to its end and had every verdict pass becomes a worked example — its
question and the program the planner chose — for the program planner's bank.

Only program plans are learned (the JSON planner has no bank); a run that replanned, or whose program was rewritten
after failing to compile, is left out: its first program was not the one that worked."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from stepwise.reasoning.examples import Example, ExampleBank
from stepwise.tools.source import parse_module

# Items scored correct whose run has steps, every step finished with at least one verdict and none but `pass`,
# no replan, and exactly one set of sampled programs (the plan's).
_VERIFIED = """
SELECT i.item_id, i.question, i.run_id, e.payload AS sampled,
       array(SELECT s.target FROM steps s WHERE s.run_id = i.run_id AND s.kind = 'tool') AS tools
FROM eval_items i
JOIN events e ON e.run_id = i.run_id AND e.type = 'programs_sampled'
WHERE i.eval_run_id = ANY($1::bigint[]) AND i.correct AND i.status = 'finished'
  AND EXISTS (SELECT 1 FROM steps s WHERE s.run_id = i.run_id)
  AND NOT EXISTS (SELECT 1 FROM steps s WHERE s.run_id = i.run_id AND (s.status <> 'finished' OR NOT EXISTS (
        SELECT 1 FROM verdicts v WHERE v.run_id = s.run_id AND v.step_id = s.step_id)))
  AND NOT EXISTS (SELECT 1 FROM verdicts v WHERE v.run_id = i.run_id AND v.outcome <> 'pass')
  AND NOT EXISTS (SELECT 1 FROM events r WHERE r.run_id = i.run_id AND r.type = 'replanned')
  AND (SELECT count(*) FROM events p WHERE p.run_id = i.run_id AND p.type = 'programs_sampled') = 1
ORDER BY i.item_id
"""

DATA_CALLS = ("ask", "read")
"""Calls an example may list besides tools: asking an expert, reading the documents (examples.toml's `calls`)."""


def calls_of(program: str, tools: Iterable[str], arithmetic: str = "calculator") -> tuple[str, ...]:
    """The calls a program makes that gate when its example is shown: the tools it called (not the arithmetic one,
    whose functions are always there), `ask` and `read` — as examples.toml lists them."""
    known = (set(tools) - {arithmetic, "docs"}) | set(DATA_CALLS)
    called = {node.func.id for node in ast.walk(parse_module(program)) if isinstance(node, ast.Call)
              and isinstance(node.func, ast.Name)}
    return tuple(sorted(called & known))


def demonstration(question: str, sampled: dict[str, Any], tools: Sequence[str]) -> Example | None:
    """The example a verified run teaches: its question and the program the vote chose; None if there is none."""
    chosen = sampled.get("chosen", -1)
    programs = sampled.get("programs") or []
    if not 0 <= chosen < len(programs) or (sampled.get("errors") or [None] * len(programs))[chosen]:
        return None
    program = programs[chosen].strip()
    try:
        return Example(question, program, calls_of(program, tools))
    except SyntaxError:
        return None


async def learned(pool: asyncpg.Pool, eval_run_ids: Sequence[int]) -> list[tuple[str, Example]]:
    """(item id, example) for each verified correct item of these eval runs, one per item (its first run)."""
    out: dict[str, Example] = {}
    for row in await pool.fetch(_VERIFIED, list(eval_run_ids)):
        example = demonstration(row["question"], row["sampled"], row["tools"])
        if example is not None and row["item_id"] not in out:
            out[row["item_id"]] = example
    return list(out.items())


def bank_with(base: ExampleBank, examples: Sequence[Example]) -> list[Example]:
    """The hand-written examples and the learned ones after them (a question already in the bank is not repeated):
    the learned bank keeps the hand-written examples of tools the workload did not exercise."""
    have = {e.question for e in base.examples}
    return [*base.examples, *(e for e in examples if e.question not in have)]
