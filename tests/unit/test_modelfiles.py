"""Model weights: assembled from package parts once, checked against their SHA-256, refused on mismatch."""

from __future__ import annotations

import hashlib

import pytest

from app.modelfiles import ModelFileError, _verified, assemble, model_path


def write_parts(tmp_path, *chunks: bytes):
    paths = []
    for i, chunk in enumerate(chunks, 1):
        path = tmp_path / f"part{i:02d}.bin"
        path.write_bytes(chunk)
        paths.append(path)
    return paths


def test_parts_are_concatenated_in_order_and_the_check_remembered(tmp_path):
    """The target holds the parts in order, and the verified stamp lets the next start skip hashing."""
    parts = write_parts(tmp_path, b"abc", b"def")
    sha = hashlib.sha256(b"abcdef").hexdigest()
    target = assemble(parts, tmp_path / "out" / "m.gguf", sha)
    assert target.read_bytes() == b"abcdef"
    assert _verified(target, sha)


def test_a_checksum_mismatch_is_refused_and_leaves_no_file(tmp_path):
    """A wrong SHA-256 raises a clear error naming both hashes, and no partial file is left behind."""
    parts = write_parts(tmp_path, b"abc", b"XYZ")
    expected = hashlib.sha256(b"abcdef").hexdigest()
    with pytest.raises(ModelFileError, match=expected):
        assemble(parts, tmp_path / "out" / "m.gguf", expected)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_changed_file_is_no_longer_trusted(tmp_path):
    """Editing the assembled file invalidates its stamp."""
    parts = write_parts(tmp_path, b"abc")
    sha = hashlib.sha256(b"abc").hexdigest()
    target = assemble(parts, tmp_path / "m.gguf", sha)
    target.write_bytes(b"abd")
    assert not _verified(target, sha)


def test_an_unknown_model_path_names_the_setting(tmp_path):
    """A model that is neither a known name nor an existing file is refused with the variable named."""
    with pytest.raises(ModelFileError, match="STEPWISE_MODEL"):
        model_path(str(tmp_path / "missing.gguf"), tmp_path)
