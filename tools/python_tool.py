"""The Python tool, for program-aided steps (PAL): the model writes a short program; it runs in a sandbox and what it
prints is the step's output.

The boundary is the operating system's, drawn by bubblewrap (`bwrap`) around every run; nothing in the program's
own interpreter is trusted to hold it:
- its own user, mount, PID, network, IPC and UTS namespaces (`--unshare-all`), uid and gid 65534, no capabilities,
  no_new_privs, no further user namespaces; a new session, and a PID namespace in which the server does not exist,
  so no signal reaches the server or its process group;
- a file system holding only the interpreter, its standard library (site-packages hidden) and the shared libraries
  they link, all read-only, and a small tmpfs as the working directory: no /etc, no /bin, no repository, no home;
- no network: its network namespace holds only its own loopback interface, where nothing listens;
- a seccomp filter: no new processes (threads are allowed), no ptrace, mounts, namespaces, keyrings, bpf,
  userfaultfd, perf or io_uring. This also holds where rlimits cannot: the kernel exempts a sandbox started by root
  (uid 0 outside its user namespace) from RLIMIT_NPROC;
- rlimits on CPU seconds, address space, file size, open files, threads and core files;
- a wall-clock limit that kills the whole sandbox, and an output limit: stdout is read as it comes and the program is
  killed once it has printed more than the step may return.
If bwrap is missing or fails its self-test, the tool refuses to start (`SandboxUnavailable`); there is no weaker mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import signal
import struct
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Annotated

import msgspec

SCRATCH = "/scratch"
SCRATCH_BYTES = 16 * 1024 * 1024
UID = 65534  # nobody
STDERR_TAIL = 4096  # bytes of stderr kept: enough for the last line of a traceback
INSTALL_HINT = "install it with `apt-get install -y bubblewrap` (Debian/Ubuntu; `dnf install bubblewrap` on Fedora)"

# Runs first inside the sandbox: limits the program may not raise again (hard = soft), the helper modules programs
# may import (tools/sandbox/*.py, given as source: the sandbox sees no repository), then the program from stdin.
_PRELUDE = r"""
import resource, sys, types
for name, value in {limits!r}:
    resource.setrlimit(getattr(resource, name), (value, value))
for name, value in {helpers!r}:
    sys.modules[name] = types.ModuleType(name)
    exec(compile(value, name + ".py", "exec"), sys.modules[name].__dict__)
del name, value, resource, types
source = sys.stdin.read()
exec(compile(source, "<step>", "exec"), {{"__name__": "__main__"}})
"""

# What the self-test prints when the boundary holds: the uid, that /etc is absent and that no process can be started.
_SELF_TEST = """
import os
try:
    os.fork()
    forked = "forked"
except OSError:
    forked = "no-fork"
print(os.getuid(), os.path.exists("/etc"), forked)
"""
_SELF_TEST_EXPECTED = f"{UID} False no-fork"


def _helpers() -> list[tuple[str, str]]:
    """The modules of tools/sandbox, as (name, source): `from puzzle import make` works inside the sandbox."""
    folder = Path(__file__).resolve().parent / "sandbox"
    return [(path.stem, path.read_text()) for path in sorted(folder.glob("*.py"))]


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot be set up on this machine; the message says what is missing and how to fix it."""


class PythonArgs(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]


class PythonTool:
    name = "python"
    description = ("runs a short Python program (standard library only; no network, no processes, no files but its "
                   "working directory) and returns what it prints; print the result")
    args_type = PythonArgs
    result_type = str
    deterministic = False  # programs may use time or randomness
    side_effect_free = True  # each run is its own sandbox: the planner may run sampled programs to vote

    def __init__(self, *, timeout_s: float = 5.0, memory_mb: int = 512, output_limit: int = 10_000,
                 bwrap: str | None = None) -> None:
        """Builds the sandbox's command line and runs the self-test; raises SandboxUnavailable if either fails."""
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.output_limit = output_limit
        found = bwrap or shutil.which("bwrap")
        if found is None or not os.access(found, os.X_OK):
            raise SandboxUnavailable(
                f"the python tool (STEPWISE_PYTHON) runs programs in a bubblewrap sandbox, and bwrap was not found "
                f"({found or 'not on PATH'}): {INSTALL_HINT}, or leave STEPWISE_PYTHON unset")
        self._bwrap = found
        self._seccomp = seccomp_filter()
        self._options, self._command = sandbox_options(), [*interpreter_argv(), "-c",
                                                           _PRELUDE.format(limits=self._limits(), helpers=_helpers())]
        self._self_test()

    def _limits(self) -> list[tuple[str, int]]:
        memory = self.memory_mb * 1024 * 1024
        return [("RLIMIT_CPU", int(self.timeout_s) + 1), ("RLIMIT_AS", memory), ("RLIMIT_FSIZE", 1 << 20),
                ("RLIMIT_NOFILE", 64), ("RLIMIT_NPROC", 32), ("RLIMIT_CORE", 0)]

    def _argv(self, filter_fd: int) -> list[str]:
        return [self._bwrap, *self._options, "--seccomp", str(filter_fd), "--", *self._command]

    def _self_test(self) -> None:
        """Runs a probe through the very command line every program uses, so a run never starts unconfined."""
        try:
            with _FilterFd(self._seccomp) as fd:
                done = subprocess.run(self._argv(fd), input=_SELF_TEST.encode(), capture_output=True, timeout=30,
                                      pass_fds=(fd,), env={}, start_new_session=True)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(
                f"the python tool's sandbox (bwrap at {self._bwrap}) could not run: {exc}") from exc
        got = done.stdout.decode(errors="replace").strip()
        if done.returncode != 0 or got != _SELF_TEST_EXPECTED:
            detail = (done.stderr.decode(errors="replace").strip()[-500:]
                      or f"a confined probe prints {_SELF_TEST_EXPECTED!r}, this one printed {got!r} (exit "
                         f"status {done.returncode})")
            raise SandboxUnavailable(
                f"the python tool's sandbox failed its self-test (bwrap at {self._bwrap}): {detail}. It needs "
                "bubblewrap 0.8 or later and user namespaces (in a container: one allowed to "
                "create them; on Ubuntu 24.04+: "
                f"sysctl kernel.apparmor_restrict_unprivileged_userns=0); {INSTALL_HINT}")

    async def run(self, args: PythonArgs) -> str:
        budget = 4 * self.output_limit + 4  # UTF-8 bytes that surely hold more than output_limit characters
        with _FilterFd(self._seccomp) as fd:
            process = await asyncio.create_subprocess_exec(
                *self._argv(fd), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={},
                pass_fds=(fd,), start_new_session=True,  # its own group, killed whole
            )
        try:
            stdin, stdout, stderr = process.stdin, process.stdout, process.stderr
            if stdin is None or stdout is None or stderr is None:
                raise RuntimeError("the sandbox started without its pipes")  # not reached: all three are PIPE
            async with asyncio.timeout(self.timeout_s):
                await _feed(stdin, args.code.encode())
                (out, stopped), err = await asyncio.gather(_head(process, stdout, budget), _tail(stderr))
                await process.wait()
        except TimeoutError:
            raise ValueError(f"the program ran longer than {self.timeout_s:g}s and was stopped") from None
        finally:
            if process.returncode is None:  # timed out, cancelled, or a reader failed: kill the sandbox, reap bwrap
                _kill(process)
                await process.wait()
        text = out.decode(errors="replace")
        if stopped:
            return text[: self.output_limit].strip() + (
                f"\n… (output cut at {self.output_limit} characters: the program printed more and was stopped)")
        if process.returncode != 0:
            last = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit status {process.returncode}"]
            raise ValueError(f"the program failed: {last[0][:500]}")
        text = text.strip()
        if len(text) > self.output_limit:
            return text[: self.output_limit] + f"\n… ({len(text) - self.output_limit} more characters cut)"
        return text


async def _feed(stdin: asyncio.StreamWriter, code: bytes) -> None:
    """The program goes in on stdin (at most a few kB, within a pipe's buffer); a sandbox that died early is no error
    here: its exit status and stderr say what happened."""
    try:
        stdin.write(code)
        await stdin.drain()
        stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass


async def _head(process: asyncio.subprocess.Process, stdout: asyncio.StreamReader,
                budget: int) -> tuple[bytes, bool]:
    """stdout up to `budget` bytes; past it the sandbox is killed, so the server never holds more than that."""
    chunks, size = [], 0
    while chunk := await stdout.read(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > budget:
            _kill(process)
            while await stdout.read(65536):  # what was already in the pipe: read to the end, not kept
                pass
            return b"".join(chunks)[:budget], True
    return b"".join(chunks), False


async def _tail(stream: asyncio.StreamReader) -> bytes:
    """The last few kB of stderr, however much the program writes there."""
    kept = b""
    while chunk := await stream.read(65536):
        kept = (kept + chunk)[-STDERR_TAIL:]
    return kept


def _kill(process: asyncio.subprocess.Process) -> None:
    """Kills bwrap's process group; --die-with-parent and the PID namespace take everything inside with it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def interpreter_argv() -> list[str]:
    """The interpreter, isolated (`-I`: no environment variables, no user site, no script directory on the path) and
    without `site` (`-S`): the standard library only."""
    return [str(_interpreter()), "-I", "-S"]


def sandbox_options() -> list[str]:
    """bwrap's options: what the sandbox holds and how it is cut off."""
    python = _interpreter()
    stdlib = Path(sysconfig.get_path("stdlib", vars={"installed_base": sys.base_prefix})).resolve()
    platstdlib = Path(sysconfig.get_path("platstdlib", vars={"platbase": sys.base_prefix})).resolve()
    args = ["--unshare-all", "--unshare-user", "--disable-userns", "--uid", str(UID), "--gid", str(UID),
            "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv",
            "--setenv", "HOME", SCRATCH, "--setenv", "TMPDIR", SCRATCH, "--setenv", "LANG", "C.UTF-8"]
    for path in sorted({str(python), str(stdlib), str(platstdlib)}):
        args += ["--ro-bind", path, path]
    for library in sorted(_linked_libraries([python, *Path(platstdlib, "lib-dynload").glob("*.so")])):
        args += ["--ro-bind", str(Path(library).resolve()), library]
    site = Path(sysconfig.get_path("purelib", vars={"base": sys.base_prefix})).resolve()
    if site.is_relative_to(stdlib) and site.is_dir():  # installed packages are not the standard library: hide them
        args += ["--tmpfs", str(site), "--remount-ro", str(site)]
    args += ["--size", str(SCRATCH_BYTES), "--tmpfs", SCRATCH, "--chdir", SCRATCH]
    return [*args, "--remount-ro", "/"]  # the directories bwrap made for the mounts above are read-only too


def _interpreter() -> Path:
    """The base interpreter (not a virtualenv's link to it, whose pyvenv.cfg the sandbox does not hold)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (Path(sys.base_prefix, "bin", version), Path(sys.executable)):
        if candidate.exists():
            return candidate.resolve()
    raise SandboxUnavailable(f"no Python interpreter found to run in the sandbox (looked for "
                             f"{version} in {sys.base_prefix})")


def _linked_libraries(binaries: list[Path]) -> set[str]:
    """The shared libraries (and the dynamic loader) the interpreter and its extension modules link, as paths the
    loader looks them up by."""
    ldd = shutil.which("ldd")
    if ldd is None:
        raise SandboxUnavailable("the python tool needs `ldd` (Debian's libc-bin) to find the "
                                 "libraries its sandbox must hold")
    done = subprocess.run([ldd, *map(str, binaries)], capture_output=True, text=True, timeout=60, check=False)
    libraries = set()
    for line in done.stdout.splitlines():
        target = line.split("=>", 1)[1] if "=>" in line else line
        path = target.strip().split(" (", 1)[0].strip()
        if path.startswith("/") and os.path.exists(path):
            libraries.add(path)
    return libraries


# seccomp: refuse what no short program needs and what widens the kernel surface it can reach (x86-64 numbers).
_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000
_CLONE, _CLONE3, _CLONE_THREAD = 56, 435, 0x00010000
_REFUSED = {
    57: "fork", 58: "vfork", 101: "ptrace", 310: "process_vm_readv", 311: "process_vm_writev",
    165: "mount", 166: "umount2", 155: "pivot_root", 161: "chroot", 272: "unshare", 308: "setns",
    428: "open_tree", 429: "move_mount", 430: "fsopen", 431: "fsconfig", 432: "fsmount", 433: "fspick",
    442: "mount_setattr",
    248: "add_key", 249: "request_key", 250: "keyctl", 321: "bpf", 323: "userfaultfd", 298: "perf_event_open",
    425: "io_uring_setup", 426: "io_uring_enter", 427: "io_uring_register",
}
_RET_ALLOW, _RET_KILL, _RET_ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
_EPERM, _ENOSYS = 1, 38


def seccomp_filter() -> bytes:
    """A classic BPF program for bwrap's --seccomp. Its syscall numbers are x86-64's; elsewhere the tool refuses to
    start rather than run without it."""
    if platform.machine() != "x86_64":
        raise SandboxUnavailable(f"the python tool's seccomp filter is written for x86-64, not {platform.machine()}")
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    checks = [(nr, "deny") for nr in sorted(_REFUSED)] + [(_CLONE3, "nosys"), (_CLONE, "clone")]
    head = [(ld, 0, 0, 4), (jeq, 1, 0, _AUDIT_ARCH_X86_64), (ret, 0, 0, _RET_KILL), (ld, 0, 0, 0)]
    n_body = 1 + len(checks) + 1  # the x32 check, one jump per syscall, the default allow
    # after the body: [clone: ld arg0, jset thread] then the returns allow (jset's fall-through), deny, nosys
    clone_at, deny_at, nosys_at = n_body, n_body + 3, n_body + 4
    body = [(jge, deny_at - 1, 0, _X32_SYSCALL_BIT)]
    for i, (nr, what) in enumerate(checks, start=1):
        target = {"deny": deny_at, "nosys": nosys_at, "clone": clone_at}[what]
        body.append((jeq, target - i - 1, 0, nr))
    body.append((ret, 0, 0, _RET_ALLOW))
    tail = [(ld, 0, 0, 16), (jset, 0, 1, _CLONE_THREAD),  # args[0]'s low word: a thread, not a process
            (ret, 0, 0, _RET_ALLOW), (ret, 0, 0, _RET_ERRNO | _EPERM), (ret, 0, 0, _RET_ERRNO | _ENOSYS)]
    return b"".join(struct.pack("=HBBI", *insn) for insn in head + body + tail)


class _FilterFd:
    """The seccomp filter in a fresh memfd for one bwrap to read (it reads to the end, so each spawn needs its own);
    closed here once the child holds it."""

    def __init__(self, program: bytes) -> None:
        self._program = program
        self._fd = -1

    def __enter__(self) -> int:
        self._fd = os.memfd_create("stepwise-seccomp", os.MFD_CLOEXEC)
        os.write(self._fd, self._program)
        os.lseek(self._fd, 0, os.SEEK_SET)
        return self._fd

    def __exit__(self, *exc) -> None:
        os.close(self._fd)
