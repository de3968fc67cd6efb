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
        text = resources.files("stepwise.reasoning").joinpath("examples.toml").read_text()
        return cls(msgspec.convert(tomllib.loads(text)["example"], list[Example]))

    def retrieve(self, question: str, calls: Collection[str], k: int = 3, prefer: Collection[str] = (),
                 data: Collection[str] = ()) -> list[Example]:
        """The k examples most like `question` among those whose calls are all offered, least similar first (the
        closest one sits next to the question). For each call in `prefer` (data sources the question seems to be
        about) the best example using it is included; examples using a call of `data` that is not preferred are left
        out, so a question about muffins is never shown a query."""
        scores = self._index.get_scores(words(question))
        banned = set(data) - set(prefer)
        usable = [i for i, e in enumerate(self.examples) if set(e.calls) <= set(calls) and not set(e.calls) & banned]
        ranked = sorted(usable, key=lambda i: (-scores[i], i))
        best = [next(i for i in ranked if call in self.examples[i].calls) for call in prefer
                if any(call in self.examples[i].calls for i in ranked)]
        best += [i for i in ranked if i not in best][: max(0, k - len(best))]
        best.sort(key=lambda i: (-scores[i], i))
        return [self.examples[i] for i in reversed(best[:max(k, len(best))])]
