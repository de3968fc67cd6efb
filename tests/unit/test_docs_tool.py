"""Document search: paragraphs of a folder ranked by BM25, returned with file:line sources."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from stepwise.tools.docs import DocsArgs, DocSearch

FOLDER = Path(__file__).resolve().parent.parent / "fixtures" / "docs"


async def search(tool: DocSearch, query: str, k: int = 3):
    return await tool.run(msgspec.convert({"query": query, "k": k}, DocsArgs))


async def test_the_best_passage_comes_first_with_its_source():
    """A question about carrying over vacation finds the handbook's vacation paragraph, cited by file and line."""
    tool = DocSearch(FOLDER)
    (best, *_) = await search(tool, "how many unused vacation days carry over")
    assert best["source"] == "handbook.md:5" and "Up to 5 unused days carry over" in best["text"]
    (hotel, *_) = await search(tool, "hotel per night capital")
    assert hotel["source"] == "expenses.md:5" and "200 euros" in hotel["text"]


async def test_results_are_bounded_and_nothing_matches_nothing():
    """k caps the passages; words found nowhere give no passages rather than noise."""
    tool = DocSearch(FOLDER)
    assert len(await search(tool, "employees work days", k=2)) == 2
    assert await search(tool, "zebra quantum") == []
    assert "passages of the documents in docs/" in tool.description
    assert "handbook.md: Employee handbook, Vacation, Remote work" in tool.description


def test_an_empty_folder_is_refused(tmp_path):
    """A search over nothing is a configuration error, said at start-up."""
    with pytest.raises(ValueError, match="no .md or .txt passages"):
        DocSearch(tmp_path)


async def test_a_two_hop_search_also_finds_what_the_best_passages_name(tmp_path):
    """hops=2: the names in the first search's passages are searched for too, so the second fact is found."""
    from stepwise.tools.docs import DocsArgs, DocSearch

    (tmp_path / "bridge.md").write_text("# Tarn Bridge\n\nThe Tarn Bridge was built by Orrin Works in 1890.\n")
    (tmp_path / "works.md").write_text("# Orrin Works\n\nOrrin Works was founded by Hedda Lune, an engineer.\n")
    (tmp_path / "other.md").write_text("# Lamps\n\nLamps were made of brass and glass.\n")
    docs = DocSearch(tmp_path)
    one = await docs.run(DocsArgs(query="Who founded the company that built the Tarn Bridge?", k=1))
    two = await docs.run(DocsArgs(query="Who founded the company that built the Tarn Bridge?", k=1, hops=2))
    assert [p["source"] for p in one] == ["bridge.md:3"]
    assert [p["source"] for p in two] == ["bridge.md:3", "works.md:3"]


async def test_a_passage_is_found_by_its_documents_title_too(tmp_path):
    """A paragraph that does not repeat its subject's name (the bridge's second paragraph, about its maker) is still
    found by a question naming the subject: the document's title counts as words of each of its passages."""
    from stepwise.tools.docs import DocsArgs, DocSearch

    (tmp_path / "bridge.md").write_text("# Tarn Bridge\n\nThe Tarn Bridge spans the river Oll.\n\n"
                                        "Its ironwork was cast by the Orrin Works.\n")
    (tmp_path / "canal.md").write_text("# Tarn Canal\n\nThe canal was dug by hand.\n")
    found = await DocSearch(tmp_path).run(DocsArgs(query="Who made the Tarn Bridge?", k=2))
    assert [p["source"] for p in found] == ["bridge.md:3", "bridge.md:5"]
