"""The python tool's sandbox, probed as an attacker would (issue 10, part 1): each program below got through the
old audit hook as root; now each meets the operating system's boundary and the host is checked for what did not
happen. The probes run through the real tool (real bwrap, real processes), and through the real HTTP server with an
imperative plan."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time
import uuid
from pathlib import Path

import msgspec
import pytest

import stepwise.tools.python_tool as python_tool
from stepwise.tools.python_tool import PythonArgs, PythonTool
from tests.conftest import LiveServer, settings_for

SANDBOX_UID = 65534


@pytest.fixture(scope="module")
def tool() -> PythonTool:
    return PythonTool(timeout_s=3.0)


async def run(tool: PythonTool, code: str) -> str:
    return await tool.run(msgspec.convert({"code": code}, PythonArgs))


def attempt(body: str) -> str:
    """A program that runs `body` (which sets `result`) and prints `done <result>` or `refused <error>`."""
    return ("import os, signal, sys\ntry:\n" + textwrap.indent(body, "    ")
            + "\nexcept Exception as exc:\n    print('refused', type(exc).__name__, "
              "exc)\nelse:\n    print('done', result)")


# Starts a process the way subprocess does, without subprocess (3.11's signature of _posixsubprocess.fork_exec; a
# TypeError means the probe no longer fits the interpreter, and is reported as broken rather than as refused).
SPAWN = """
import _posixsubprocess, os
def spawn(argv):
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = _posixsubprocess.fork_exec(argv, [argv[0]], True, (), None, None, -1, -1, -1, out_w, -1, -1, err_r, err_w,
                                         True, False, -1, None, None, None, -1, None, False)
    except TypeError as exc:
        return "probe-broken " + str(exc)
    except OSError as exc:
        return "refused " + type(exc).__name__ + " " + str(exc)
    os.close(out_w)
    return "started " + os.read(out_r, 4096).decode()
"""
SHELL = SPAWN + """
print(spawn([b"/bin/sh", b"-c", b"id; head -1 /etc/passwd"]))
print("sh exists:", os.path.exists("/bin/sh"))
"""


@pytest.fixture
def sigterms():
    """SIGTERMs this process (the server, in the HTTP tests) receives while the test runs, instead of dying of them."""
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    yield received
    signal.signal(signal.SIGTERM, previous)


class PeakRss:
    """This process's resident memory, sampled every 5 ms in a thread while the block runs."""

    def __enter__(self) -> PeakRss:
        self.base = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


FLOOD = "import sys\nfor _ in range(400):\n    sys.stdout.write('x' * 1_000_000)"  # 400 MB, a megabyte at a time


async def test_a_program_runs_as_an_unprivileged_user(tool):
    """Real, effective and saved ids are all 65534, never root."""
    assert await run(tool, "import os\nprint(*os.getresuid(), *os.getresgid())") == " ".join([str(SANDBOX_UID)] * 6)


async def test_no_shell_can_be_started_even_bypassing_subprocess(tool):
    """_posixsubprocess.fork_exec of /bin/sh starts nothing: no process may be created, and there is no /bin/sh."""
    out = await run(tool, SHELL)
    assert "probe-broken" not in out
    assert out.startswith("refused") and "uid=" not in out and "root" not in out
    assert out.endswith("sh exists: False")


@pytest.mark.parametrize("body", [
    "result = open('/etc/passwd').read()",
    "os.link('/etc/shadow', 's')\nresult = open('s').read()",
    "os.symlink('/etc/shadow', 's')\nresult = open('s').read()",
    "result = open('/proc/1/environ').read()",
], ids=["read-passwd", "link-shadow", "symlink-shadow", "read-proc"])
async def test_host_files_can_be_neither_read_nor_linked_into_scratch(tool, body):
    """The host's /etc and /proc do not exist in the sandbox, so neither a read nor a hard or soft link reaches them."""
    out = await run(tool, attempt(body))
    assert out.startswith("refused FileNotFoundError") and "root:" not in out


@pytest.mark.parametrize(("body", "unchanged"), [
    ("os.rename(TARGET, 'stolen')\nresult = open('stolen').read()", "file"),
    ("os.truncate(TARGET, 0)\nresult = 'truncated'", "file"),
    ("os.remove(TARGET)\nresult = 'removed'", "file"),
    ("os.mkdir(NEW)\nresult = 'made'", "dir"),
    ("os.mkdir('/made')\nresult = 'made'", "dir"),
], ids=["rename", "truncate", "remove", "mkdir-host", "mkdir-root"])
async def test_files_outside_scratch_cannot_be_moved_changed_or_removed(tool, tmp_path, body, unchanged):
    """Every write form aimed outside the working directory fails, and the host file or directory is as it was."""
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    code = f"TARGET, NEW = {str(precious)!r}, {str(tmp_path / 'made')!r}\n" + attempt(body)
    out = await run(tool, code)
    assert out.startswith("refused"), out
    assert precious.read_text() == "keep me" and not (tmp_path / "made").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


async def test_sqlite_cannot_create_a_database_outside_scratch(tool, tmp_path):
    """sqlite3 works in the working directory, but a database elsewhere on the host is never created."""
    elsewhere = tmp_path / "x.db"
    out = await run(tool, attempt(
        f"import sqlite3\nsqlite3.connect('here.db').execute('create table t(x)')\n"
        f"sqlite3.connect({str(elsewhere)!r}).execute('create table t(x)')\nresult = 'created'"))
    assert out == "refused OperationalError unable to open database file"
    assert not elsewhere.exists()


async def test_the_standard_library_is_read_only(tool):
    """os.open(O_WRONLY|O_CREAT) inside the standard library every Python here imports fails; no file appears."""
    stdlib = Path(sysconfig.get_path("stdlib", vars={"installed_base": sys.base_prefix}))
    target = stdlib / f"stepwise_probe_{uuid.uuid4().hex}.py"
    try:
        out = await run(tool, attempt(f"fd = os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)\nresult = fd"))
        assert out.startswith("refused OSError [Errno 30] Read-only file system"), out
        assert not target.exists()
    finally:
        target.unlink(missing_ok=True)


async def test_the_host_file_system_is_not_visible(tool):
    """/ holds only the interpreter's paths and the scratch directory: no /etc, /home, /proc, the repository or
    /work."""
    out = await run(tool,
                    "import os\nprint(sorted(os.listdir('/')))\ntry:\n    os.listdir('/etc')\nexcept OSError as exc:\n "
                    "   print(type(exc).__name__)")
    listing, etc = out.splitlines()
    assert etc == "FileNotFoundError"
    assert not {"etc", "home", "proc", "bin", "var", "work", "sys", "dev"} & set(eval(listing))
    assert "scratch" in eval(listing)


@pytest.mark.parametrize("kill", [
    "os.killpg(os.getpgid(0), signal.SIGTERM)",
    "os.kill(os.getppid(), signal.SIGTERM)",
    "os.kill(1, signal.SIGTERM)",
    f"os.kill({os.getpid()}, signal.SIGTERM)",
    f"os.killpg({os.getpgid(0)}, signal.SIGTERM)",
], ids=["killpg-own-group", "kill-parent", "kill-1", "kill-server-pid", "killpg-server-group"])
async def test_no_signal_from_a_program_reaches_the_server(tool, sigterms, kill):
    """The program lives in its own PID namespace and session: its own group, its parent and pid 1 are inside the
    sandbox, and the server's pid and group do not exist there."""
    code = "signal.signal(signal.SIGTERM, lambda *a: None)\n" + kill + "\nresult = 'sent'"
    await run(tool, attempt(code))
    time.sleep(0.2)  # a signal sent to this process would have arrived by now
    assert sigterms == []


async def test_a_flood_of_output_is_cut_and_the_program_stopped(tool):
    """400 MB printed: the result holds the limit and says it stopped the program; the server's memory stays flat."""
    started = time.monotonic()
    with PeakRss() as rss:
        out = await run(tool, FLOOD)
    assert out.endswith(f"(output cut at {tool.output_limit} characters: the program printed more and was stopped)")
    assert out.startswith("x" * tool.output_limit)
    assert rss.growth_mb < 30, f"the server grew by {rss.growth_mb:.0f} MB"
    assert time.monotonic() - started < tool.timeout_s


async def test_no_network_reaches_the_hosts_postgres(tool):
    """Postgres listens on the host's 127.0.0.1:5432; from the sandbox's own network namespace nothing answers there."""
    with socket.create_connection(("127.0.0.1", 5432), timeout=2):
        pass  # reachable from the host: the refusal below is the sandbox's doing
    out = await run(tool,
                    attempt("import socket\nsocket.create_connection(('127.0.0.1', 5432), "
                            "timeout=2)\nresult = 'connected'"))
    assert out.startswith("refused ConnectionRefusedError"), out


async def test_the_wall_clock_limit_kills_the_whole_sandbox(tool):
    """A program that outlives its time is stopped, and nothing of its sandbox is left running: neither the program
    (named by itself) nor a helper it tried to leave behind."""
    marker = f"sw{uuid.uuid4().hex[:12]}"
    code = SPAWN + textwrap.dedent(f"""
        import sys, time
        try:
            import ctypes
            ctypes.CDLL(None).prctl(15, b"{marker}")  # PR_SET_NAME: this process's comm, to find it by
        except Exception:
            pass
        spawn([sys.executable.encode(), b"-c", b"import time; time.sleep(60)", b"{marker}"])
        time.sleep(60)
    """)
    started = time.monotonic()
    with pytest.raises(ValueError, match="longer than 3s"):
        await run(tool, code)
    assert time.monotonic() - started < tool.timeout_s + 1
    time.sleep(0.5)
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and marker in _comm(p) + _cmdline(p)]
    assert left == []


def _cmdline(process: Path) -> str:
    try:
        return (process / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _comm(process: Path) -> str:
    try:
        return (process / "comm").read_text().strip()
    except OSError:
        return ""


def test_without_bwrap_the_tool_refuses_to_start():
    """No bubblewrap, no tool: the error names what is missing and how to install it (no weaker fallback exists)."""
    with pytest.raises(python_tool.SandboxUnavailable, match=r"bwrap was not found .*apt-get install -y bubblewrap"):
        PythonTool(bwrap="/nonexistent/bwrap")


def test_a_sandbox_failing_its_self_test_refuses_to_start():
    """A bwrap that does not confine (here, one that runs nothing) fails the self-test at construction."""
    with pytest.raises(python_tool.SandboxUnavailable, match=r"failed its self-test .*apt-get install -y bubblewrap"):
        PythonTool(bwrap="/bin/true")


def test_the_server_does_not_start_with_the_python_tool_and_no_sandbox(database_url, tmp_path):
    """`stepwise serve` with STEPWISE_PYTHON=1 and no bwrap on PATH exits at start with the installation hint."""
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "STEPWISE_PYTHON": "1",
           "STEPWISE_MODEL": "smollm2", "DATABASE_URL": database_url}
    done = subprocess.run([sys.executable, "-m", "stepwise.app.cli", "serve", "--port", "9"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode != 0
    assert "bwrap was not found" in done.stderr and "apt-get install -y bubblewrap" in done.stderr


# Through the real HTTP server: an imperative plan of python steps, the server in this very process.

def py(sid: int, code: str) -> dict:
    return {"id": sid, "kind": "tool", "target": "python", "input": {"code": code}, "depends_on": []}


def run_plan(server: LiveServer, *steps: dict) -> dict[int, str]:
    """Runs the steps over HTTP and returns their outputs. No answer is composed (a budget of no model calls, so the
    run ends with budget_exceeded after the steps): the steps are what is probed, and the model would only add time."""
    reply = server.client.post("/v1/reason", json={"question": "probe the sandbox", "plan": {"steps": list(steps)},
                                                   "budget": {"max_model_calls": 0}})
    assert reply.status_code == 422 and reply.json()["error"]["type"] == "budget_exceeded", reply.text
    return {s["id"]: s["output"] for s in reply.json()["steps"]}


@pytest.fixture(scope="module")
def python_server(database_url):
    with LiveServer(settings_for(database_url, "smollm2", deadline_s=120.0, python_tool=True)) as server:
        yield server


@pytest.mark.model
def test_over_http_the_probes_fail_and_the_server_keeps_answering(python_server, sigterms):
    """A plan of attacks (a shell, the shadow file, root, every signal at the server) runs; each is refused, no signal
    arrives, and the server answers the next request."""
    keep_alive = "signal.signal(signal.SIGTERM, lambda *a: None)\n"
    kills = ["os.killpg(os.getpgid(0), signal.SIGTERM)", "os.kill(os.getppid(), signal.SIGTERM)",
             f"os.kill({os.getpid()}, signal.SIGTERM)", f"os.killpg({os.getpgid(0)}, signal.SIGTERM)"]
    outputs = run_plan(
        python_server,
        py(1, SHELL),
        py(2, attempt("os.link('/etc/shadow', 's')\nresult = open('s').read()")),
        py(3, "import os\nprint(os.getuid())"),
        *(py(4 + i, attempt(keep_alive + kill + "\nresult = 'sent'")) for i, kill in enumerate(kills)),
    )
    assert outputs[1].startswith("refused") and outputs[1].endswith("sh exists: False")
    assert outputs[2].startswith("refused FileNotFoundError")
    assert outputs[3] == str(SANDBOX_UID)
    assert outputs[6].startswith("refused ProcessLookupError") and outputs[7].startswith("refused ProcessLookupError")
    time.sleep(0.2)
    assert sigterms == []
    assert python_server.client.get("/health").status_code == 200
    assert run_plan(python_server, py(1, "print(6*7)")) == {1: "42"}


@pytest.mark.model
def test_over_http_a_flood_of_output_leaves_the_servers_memory_flat(python_server):
    """A step printing 400 MB returns the cut output, saying so, and the server process grows by less than 30 MB."""
    with PeakRss() as rss:
        output = run_plan(python_server, py(1, FLOOD))[1]
    assert "the program printed more and was stopped" in output and len(output) < 10_200
    assert rss.growth_mb < 30, f"the server grew by {rss.growth_mb:.0f} MB"
