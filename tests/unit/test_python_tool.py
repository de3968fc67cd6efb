"""The Python tool: a program's printed result is the step's output; inside its sandbox it reaches no network, no
file outside its working directory and no other process, and it cannot outlive its time or flood the server.
(tests/security/test_python_sandbox.py probes the sandbox as an attacker would.)"""

from __future__ import annotations

import time

import msgspec
import pytest

from stepwise.tools.python_tool import PythonArgs, PythonTool


@pytest.fixture(scope="module")
def tool() -> PythonTool:
    return PythonTool(timeout_s=2.0)


async def run(tool: PythonTool, code: str) -> str:
    return await tool.run(msgspec.convert({"code": code}, PythonArgs))


async def test_the_printed_result_is_the_output(tool):
    """A PAL-style program computes with the standard library and prints its answer."""
    assert await run(tool, "import math\nprint(sum(math.comb(10, k) for k in range(4)))") == "176"


async def test_files_in_the_scratch_directory_are_allowed(tool):
    """The program may write and read its own files in its working (scratch) directory."""
    assert await run(tool, "open('notes.txt', 'w').write('42')\nprint(open('notes.txt').read())") == "42"


async def test_the_standard_library_works_but_nothing_else_is_installed(tool):
    """Modules backed by shared libraries (sqlite3, decimal, zlib, ssl) load; an installed package does not."""
    assert await run(tool,
                     "import sqlite3, decimal, zlib, "
                     "ssl\nprint(sqlite3.connect(':memory:').execute('select 6*7').fetchone()[0])") == "42"
    with pytest.raises(ValueError, match="ModuleNotFoundError: No module named 'msgspec'"):
        await run(tool, "import msgspec")


@pytest.mark.parametrize(("code", "refused"), [
    ("import socket\nsocket.create_connection(('127.0.0.1', 5432), timeout=2)", "ConnectionRefusedError"),
    ("print(open('/etc/hostname').read())", "FileNotFoundError"),
    ("open('/tmp/escape.txt', 'w').write('x')", "FileNotFoundError"),
    ("import subprocess\nsubprocess.run(['ls'])", "PermissionError"),
    ("import os\nos.fork()", "PermissionError"),
])
async def test_sockets_outside_files_and_processes_are_refused(tool, code, refused):
    """Each forbidden act fails the step with the operating system's error naming it."""
    with pytest.raises(ValueError, match=refused):
        await run(tool, code)


async def test_a_program_cannot_outlive_its_time_limit(tool):
    """An endless loop is killed at the wall-clock limit."""
    started = time.monotonic()
    with pytest.raises(ValueError, match="longer than 2s"):
        await run(tool, "while True:\n    pass")
    assert time.monotonic() - started < 4


async def test_memory_is_capped(tool):
    """A memory bomb fails with MemoryError (the address-space limit)."""
    with pytest.raises(ValueError, match="MemoryError"):
        await run(tool, "x = bytearray(2 * 1024 ** 3)")


async def test_output_is_cut_at_the_limit_and_a_flood_stops_the_program():
    """A little too much output is cut, saying how much; far too much stops the program, saying so."""
    small = PythonTool(output_limit=100)
    cut = await run(small, "print('y' * 300)")
    assert cut == "y" * 100 + "\n… (200 more characters cut)"
    flood = await run(small, "while True:\n    print('y' * 1000)")
    assert flood == "y" * 100 + "\n… (output cut at 100 characters: the program printed more and was stopped)"


async def test_a_program_may_search_with_the_puzzle_helper(tool):
    """`from puzzle import make` is there inside the sandbox: an expression using each number once that equals the
    target, found by exhaustive search, or None."""
    from stepwise.evals.scoring import evaluate_24

    found = await run(tool, "from puzzle import make\nprint(make(24, [3, 3, 8, 8]))")
    value, used = evaluate_24(found)  # exact: 8 / (3 - 8 / 3) is 24 only in fractions
    assert value == 24 and sorted(used) == [3, 3, 8, 8]
    assert await run(tool, "from puzzle import make\nprint(make(24, [1, 1, 1, 1]))") == "None"
