"""Datasets load offline from the packages in requirements-models.txt (and users' JSONL files): the slices and
seeds are fixed, so reruns see the same items, and each item scores correct against its own expected answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stepwise.evals import datasets
from stepwise.evals.scoring import score_24


def test_game24_is_tree_of_thoughts_test_slice():
    """Rows 900–999 of 24.csv: 100 puzzles of four numbers; row 900 is '4 5 6 10', which (10-6)*5+4 solves."""
    items = list(datasets.load("game24", limit=None).items())
    assert len(items) == 100 and items[0].id == "game24-900" and items[-1].id == "game24-999"
    assert all(len(i.meta["numbers"]) == 4 for i in items)
    assert items[0].meta["numbers"] == [4, 5, 6, 10] and "4 5 6 10" in items[0].question
    assert score_24(items[0], "(10 - 6) * 5 + 4").correct


def test_gsm_symbolic_is_the_same_for_the_same_seed():
    """The same seed gives the same questions and answers; another seed gives others; offset shifts the window."""
    first = list(datasets.load("gsm_symbolic", limit=5, seed=42).items())
    again = list(datasets.load("gsm_symbolic", limit=5, seed=42).items())
    other = list(datasets.load("gsm_symbolic", limit=5, seed=7).items())
    shifted = list(datasets.load("gsm_symbolic", limit=2, offset=3, seed=42).items())
    assert first == again and len(first) == 5
    assert [i.question for i in first] != [i.question for i in other]
    assert shifted == first[3:5]
    assert all(i.answer_type == "number" and isinstance(float(i.answer), float) for i in first)  # every answer parses
    dataset = datasets.load("gsm_symbolic", limit=5, seed=42)
    assert all(dataset.score(i, f"The answer is {i.answer}.").correct for i in first)


def test_bfcl_categories_load_with_their_functions():
    """Each BFCL category's items carry the user turn, the function schemas and BFCL's possible answer."""
    for name, minimum in (("bfcl_simple", 399), ("bfcl_multiple", 199), ("bfcl_parallel", 199),
                          ("bfcl_parallel_multiple", 199)):
        items = list(datasets.load(name, limit=None).items())
        assert len(items) >= minimum
        assert all(i.meta["functions"] and i.meta["messages"][-1]["role"] == "user" and i.answer for i in items)
    assert datasets.load("bfcl_parallel", limit=1).items().__next__().meta["parallel"] is True


def test_a_users_jsonl_dataset_is_scored_by_its_answer_types(tmp_path: Path):
    """number, text and exact rows load with their scorers; the tool configuration travels with the dataset."""
    path = tmp_path / "mine.jsonl"
    rows = [{"id": 1, "question": "2+2?", "answer": 4, "answer_type": "number"},
            {"id": "b", "question": "Capital of France?", "answer": "Paris", "answer_type": "text"},
            {"id": "c", "question": "Say yes", "answer": "yes", "answer_type": "exact"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    dataset = datasets.load(str(path), sql_url="postgresql://x/y", docs_dir=tmp_path)
    items = list(dataset.items())
    assert dataset.name == "mine" and [i.id for i in items] == ["1", "b", "c"]
    assert dataset.tools == {"sql_url": "postgresql://x/y", "docs_dir": tmp_path}
    verdicts = [dataset.score(i, p) for i, p in zip(items, ["It is 4.", "It is Paris.", "Yes."], strict=True)]
    assert [v.correct for v in verdicts] == [True, True, True]
    assert not dataset.score(items[2], "yes indeed").correct


def test_a_users_jsonl_dataset_may_carry_kinds_choices_and_puzzles(tmp_path: Path):
    """`kind` travels to the item (accuracy per kind); `meta.choices` scores the option chosen; an `expression` is a
    Game of 24 over `meta.numbers`."""
    path = tmp_path / "mixed.jsonl"
    rows = [{"id": "c", "question": "Which is cheaper, A's or B's?", "answer": "A", "answer_type": "text",
             "kind": "comparison", "meta": {"choices": ["A", "B"]}},
            {"id": "g", "question": "Make 24 from 1, 2, 3, 4.", "answer": 24, "answer_type": "expression",
             "kind": "game24", "meta": {"numbers": [1, 2, 3, 4]}}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    dataset = datasets.load(str(path))
    choice, puzzle = dataset.items()
    assert [choice.meta["kind"], puzzle.meta["kind"]] == ["comparison", "game24"]
    assert dataset.score(choice, "B costs 3 and A costs 2. So A is cheaper.").correct
    assert not dataset.score(choice, "B is cheaper than A.").correct  # naming the expected one is not choosing it
    assert dataset.score(puzzle, "(1 + 2 + 3) * 4").correct
    assert not dataset.score(puzzle, "4 * 3 * 2").correct  # 1 left out


@pytest.mark.parametrize("line, message", [
    ('{"id": 1, "question": "q", "answer": "a", "answer_type": "fuzzy"}', "answer_type 'fuzzy'"),
    ('{"id": 1, "question": "q", "answer": "four", "answer_type": "number"}', "is not a number"),
    ('{"id": 1, "answer": "a"}', "question"),
    ('{"id": 1, "question": "q", "answer": 24, "answer_type": "expression"}', "meta.numbers"),
    ('{"id": 1, "question": "q", "answer": "C", "meta": {"choices": ["A", "B"]}}', "not one of meta.choices"),
    ('{"id": 1, "question": "q", "answer": "A", "meta": {"choices": "A or B"}}', "meta.choices must be a list"),
])
def test_a_bad_jsonl_line_is_named(tmp_path: Path, line: str, message: str):
    """A bad row fails the load with the file, the line number and what is wrong."""
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": 0, "question": "q", "answer": "a"}\n' + line + "\n")
    with pytest.raises(datasets.DatasetError, match=rf"bad.jsonl:2: .*{message}"):
        datasets.load(str(path))


def test_an_unknown_dataset_lists_the_known_ones():
    """A name that is neither a dataset nor a file says what exists."""
    with pytest.raises(datasets.DatasetError, match="gsm_symbolic, game24, bfcl_simple"):
        datasets.load("nope")
