"""Document search over a folder of text and markdown files: paragraphs ranked by BM25, returned with their source
(file and line), so an answer can cite where it comes from. The index is built once, in memory, at start-up."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Annotated, Any

import msgspec

_WORD = re.compile(r"[a-z0-9]+")
# names: capitalised words, runs of them
_NAME = re.compile(r"\b[A-Z][a-z]+(?: (?:of |the )?[A-Z][a-z]+)+|\b[A-Z][a-z]{3,}")
_STOP = frozenset("a an and are as at be by for from has have how in is it of on or per the to "
                  "up what when which who with".split())


def words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


class DocsArgs(msgspec.Struct, forbid_unknown_fields=True):
    query: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    k: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3
    hops: Annotated[int, msgspec.Meta(ge=1, le=2)] = 1  # 2: also search for the names the best passages mention


class Passage(msgspec.Struct):
    source: str  # file:line
    text: str
    title: str = ""  # the document's first heading


class DocSearch:
    name = "docs"
    args_type = DocsArgs
    result_type = list[dict[str, Any]]
    deterministic = True
    k1, b = 1.5, 0.75

    def __init__(self, folder: Path) -> None:
        self.passages = list(_passages(folder))
        if not self.passages:
            raise ValueError(f"no .md or .txt passages under {folder}")
        # A paragraph often leaves its subject to the title ("Its ironwork was cast by …" under "# Tarn Bridge"): the
        # title's words count as the paragraph's own, so a question naming the subject finds every paragraph on it.
        self._terms = [Counter(words(f"{p.title} {p.text}")) for p in self.passages]
        self._lengths = [sum(t.values()) for t in self._terms]
        self._average = sum(self._lengths) / len(self._lengths)
        frequency = Counter(term for terms in self._terms for term in terms)
        n = len(self.passages)
        self._idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in frequency.items()}
        # Like the sql tool's schema, the headings tell the planner what the documents can answer.
        contents = "; ".join(f"{name}: {', '.join(heads)}" for name, heads in _headings(folder).items())
        self.description = (f"searches {n} passages of the documents in {folder.name}/ and returns the best matches "
                            f"with their sources; query with a few keywords. Documents: {contents}")

    async def run(self, args: DocsArgs) -> list[dict[str, Any]]:
        found = self._search(args.query, args.k + (args.hops - 1))
        if args.hops == 2 and found:
            found += self._second_hop(args.query, found)
        return found

    def _second_hop(self, query: str, found: list[dict[str, Any]], names: int = 4) -> list[dict[str, Any]]:
        """A two-hop question names the first thing (the bridge) and asks about a second one that only a passage
        about the first names (its builder). So: the rest of the best document (a paragraph often names what the
        one matching the question does not), then, for the first few names those passages hold that the question
        does not (the best document's first), the passage about the name that matches the question best."""
        seen = {p["source"] for p in found}
        best = found[0]["source"].rsplit(":", 1)[0]
        extra = [self._result(i, 0.0) for i, p in enumerate(self.passages)
                 if p.source.rsplit(":", 1)[0] == best and p.source not in seen][:3]
        seen.update(p["source"] for p in extra)
        asked = set(words(query))
        # The names the best document holds first: the other passages found are often about something else.
        ordered = sorted([*found, *extra], key=lambda p: p["source"].rsplit(":", 1)[0] != best)
        mentioned = dict.fromkeys(n for p in ordered for n in _NAME.findall(p["text"]) if not set(words(n)) <= asked)
        hop: list[dict[str, Any]] = []
        for name in list(mentioned)[:names]:
            best_of_name = [p for p in self._search(f"{name} {query}", 3, must=set(words(name)))
                            if p["source"] not in seen][:1]
            seen.update(p["source"] for p in best_of_name)
            hop += best_of_name
        return extra + hop

    def _search(self, text: str, k: int, must: AbstractSet[str] = frozenset()) -> list[dict[str, Any]]:
        """The k passages that match `text` best (BM25), among those holding every word of `must` (title included)."""
        query = set(words(text))
        scored = []
        for i, terms in enumerate(self._terms):
            if not must <= terms.keys():
                continue
            norm = self.k1 * (1 - self.b + self.b * self._lengths[i] / self._average)
            score = sum(self._idf[t] * terms[t] * (self.k1 + 1) / (terms[t] + norm) for t in query if t in terms)
            if score > 0:
                scored.append((score, i))
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        return [self._result(i, s) for s, i in scored[:k]]

    def _result(self, i: int, score: float) -> dict[str, Any]:
        return {"source": self.passages[i].source, "text": self.passages[i].text, "score": round(score, 3)}


def _headings(folder: Path) -> dict[str, list[str]]:
    """Each document's markdown headings (its topics), by file name."""
    return {
        str(path.relative_to(folder)): [line.lstrip("#").strip()
                                        for line in path.read_text(errors="replace").splitlines()
                                        if line.startswith("#")]
        for path in sorted(p for p in folder.rglob("*") if p.suffix in (".md", ".txt") and p.is_file())
    }


def _passages(folder: Path):
    """Paragraphs (blank-line separated, headings skipped) of every .md and .txt file, with file:line."""
    for path in sorted(p for p in folder.rglob("*") if p.suffix in (".md", ".txt") and p.is_file()):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        title = next((line.lstrip("#").strip() for line in lines if line.startswith("#")), "")
        start, block = None, []
        for number, line in enumerate([*lines, ""], 1):
            if line.strip() and not line.lstrip().startswith("#"):
                start = start or number
                block.append(line.strip())
            elif block:
                yield Passage(f"{path.relative_to(folder)}:{start}", " ".join(block), title)
                start, block = None, []
