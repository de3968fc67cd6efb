"""The Python tool, for program-aided steps (PAL): the model writes a short program; it runs in a separate process
and what it prints is the step's output.

Limits, each enforced outside the program's reach: wall time (killed), CPU seconds, address space, file size and
open files (rlimits); the standard library only (`-I -S`); no network (its own empty network namespace via
`unshare --net` where the kernel allows it, and an audit hook refusing every socket either way); no files outside
its scratch directory (the audit hook: reads only there and in the standard library, writes only there), no new
processes; output capped."""

from __future__ import annotations

import asyncio
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from typing import Annotated

import msgspec

# Runs in the child before the program: from here on, the audit hook decides what the program may touch.
_PRELUDE = r"""
import os, sys
scratch, stdlib = os.path.realpath(sys.argv[1]), os.path.realpath(sys.argv[2])
def _inside(path, root):
    return path == root or path.startswith(root + os.sep)
def _guard(event, args):
    if event == "open":
        path, mode = args[0], args[1] or "r"
        if isinstance(path, int):
            return
        real = os.path.realpath(os.fsdecode(path))
        writing = any(c in str(mode) for c in "wax+")
        if _inside(real, scratch) or (not writing and _inside(real, stdlib)):
            return
        raise PermissionError(f"no access to {real} outside the scratch directory")
    if event.startswith("socket.") or event in ("subprocess.Popen", "os.system", "os.posix_spawn", "os.exec",
                                                   "os.fork", "os.forkpty", "ctypes.dlopen", "os.kill"):
        raise PermissionError(f"{event} is not allowed")
sys.addaudithook(_guard)
del _guard
source = sys.stdin.read()
exec(compile(source, "<step>", "exec"), {"__name__": "__main__"})
"""


class PythonArgs(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]


class PythonTool:
    name = "python"
    description = "runs a short Python program (standard library only, no files, no network) and returns what it prints; print the result"
    args_type = PythonArgs
    result_type = str
    deterministic = False  # programs may use time or randomness

    def __init__(self, *, timeout_s: float = 5.0, memory_mb: int = 512, output_limit: int = 10_000) -> None:
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.output_limit = output_limit
        self._unshare = shutil.which("unshare") if sys.platform == "linux" and _can_unshare() else None

    def _limits(self) -> None:  # runs in the child, between fork and exec
        cpu = int(self.timeout_s) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        memory = self.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    async def run(self, args: PythonArgs) -> str:
        with tempfile.TemporaryDirectory(prefix="stepwise-py-") as scratch:
            argv = [sys.executable, "-I", "-S", "-c", _PRELUDE, scratch, sysconfig.get_paths()["stdlib"]]
            if self._unshare:
                argv = [self._unshare, "--net", "--", *argv]
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=scratch,
                env={"PATH": "/usr/bin:/bin", "HOME": scratch, "PYTHONHASHSEED": "0"}, preexec_fn=self._limits,
            )
            try:
                out, err = await asyncio.wait_for(process.communicate(args.code.encode()), self.timeout_s)
            except TimeoutError:
                process.kill()
                await process.wait()
                raise ValueError(f"the program ran longer than {self.timeout_s:g}s and was stopped") from None
            except asyncio.CancelledError:
                process.kill()
                await process.wait()
                raise
        if process.returncode != 0:
            last = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit status {process.returncode}"]
            raise ValueError(f"the program failed: {last[0][:500]}")
        text = out.decode(errors="replace").strip()
        if len(text) > self.output_limit:
            return text[: self.output_limit] + f"\n… ({len(text) - self.output_limit} more characters cut)"
        return text


def _can_unshare() -> bool:
    """Whether this process may create a network namespace (root, or unprivileged user namespaces)."""
    try:
        return subprocess.run(["unshare", "--net", "--", "true"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
