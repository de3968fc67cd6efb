"""The harness's data types: an item of a dataset, a scorer's verdict on a prediction, and a dataset."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

import msgspec

AnswerType = Literal["number", "text", "exact", "expression", "function_calls"]


class Item(msgspec.Struct, frozen=True):
    """One question with its expected answer; `meta` carries what a mode or scorer needs besides (BFCL's function
    schemas, the numbers of a Game of 24 puzzle, the generator of a gsm_symbolic item)."""

    id: str
    question: str
    answer: Any
    answer_type: AnswerType
    meta: dict[str, Any] = {}


class Score(msgspec.Struct, frozen=True):
    correct: bool
    note: str = ""
    """Why not, when not correct: what the scorer saw (kept with the item's row, for reading failures)."""


class Dataset(msgspec.Struct, frozen=True):
    """A named source of items and the scorer for them."""

    name: str
    items: Callable[[], Iterator[Item]]
    score: Callable[[Item, Any], Score]
    tools: dict[str, Any] = {}
    """Tool configuration the dataset needs (sql_url, docs_dir, python_tool; or sql_file, a bundled database the eval
    loads and turns into sql_url): applied to the settings before the runtime starts."""
