"""The planner's bank of worked examples (examples.toml), retrieved per question by BM25 over the example questions,
so the planner sees the few that fit the question instead of one fixed list. rank-bm25 does the ranking: a small,
dependency-light implementation (numpy only) of the standard Okapi BM25."""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Collection
from importlib import resources

import msgspec
from rank_bm25 import BM25Okapi

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class Example(msgspec.Struct, frozen=True):
    question: str
    program: str
    calls: tuple[str, ...] = ()  # tools (and read/ask) the program calls: offered only when all of them are


class ExampleBank:
    def __init__(self, examples: list[Example]) -> None:
        self.examples = [msgspec.structs.replace(e, program=e.program.strip()) for e in examples]
        self._index = BM25Okapi([words(e.question) for e in self.examples])

    @classmethod
    @functools.cache
    def default(cls) -> ExampleBank:
        text = resources.files("reasoning").joinpath("examples.toml").read_text()
        return cls(msgspec.convert(tomllib.loads(text)["example"], list[Example]))

    def retrieve(self, question: str, calls: Collection[str], k: int = 3) -> list[Example]:
        """The k examples most like `question` among those whose calls are all offered, least similar first (the
        closest one sits next to the question). Examples of each offered call compete on similarity alone."""
        scores = self._index.get_scores(words(question))
        usable = [i for i, e in enumerate(self.examples) if set(e.calls) <= set(calls)]
        best = sorted(usable, key=lambda i: (-scores[i], i))[:k]
        return [self.examples[i] for i in reversed(best)]
