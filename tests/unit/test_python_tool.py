"""The Python tool: a program's printed result is the step's output; it cannot open a socket, read outside its
scratch directory, start processes, or outlive its time limit."""

from __future__ import annotations

import time

import msgspec
import pytest

from tools.python import PythonArgs, PythonTool

TOOL = PythonTool(timeout_s=2.0)


async def run(code: str, tool: PythonTool = TOOL) -> str:
    return await tool.run(msgspec.convert({"code": code}, PythonArgs))


async def test_the_printed_result_is_the_output():
    """A PAL-style program computes with the standard library and prints its answer."""
    assert await run("import math\nprint(sum(math.comb(10, k) for k in range(4)))") == "176"


async def test_files_in_the_scratch_directory_are_allowed():
    """The program may write and read its own files in its working (scratch) directory."""
    assert await run("open('notes.txt', 'w').write('42')\nprint(open('notes.txt').read())") == "42"


@pytest.mark.parametrize(("code", "refused"), [
    ("import socket\nsocket.socket().connect(('127.0.0.1', 5432))", "socket"),
    ("print(open('/etc/hostname').read())", "outside the scratch directory"),
    ("open('/tmp/escape.txt', 'w').write('x')", "outside the scratch directory"),
    ("import subprocess\nsubprocess.run(['ls'])", "not allowed"),
    ("import os\nos.system('ls')", "not allowed"),
])
async def test_sockets_outside_files_and_processes_are_refused(code, refused):
    """Each forbidden act fails the step with a reason naming it."""
    with pytest.raises(ValueError, match=refused):
        await run(code)


async def test_a_program_cannot_outlive_its_time_limit():
    """An endless loop is killed at the wall-clock limit."""
    started = time.monotonic()
    with pytest.raises(ValueError, match="longer than 2s"):
        await run("while True:\n    pass")
    assert time.monotonic() - started < 4


async def test_memory_and_output_are_capped():
    """A memory bomb fails; a flood of output is cut, saying how much."""
    with pytest.raises(ValueError, match="MemoryError"):
        await run("x = bytearray(2 * 1024 ** 3)")
    flood = await run("print('y' * 50_000)", PythonTool(output_limit=100))
    assert flood.startswith("y" * 100) and "49900 more characters cut" in flood
