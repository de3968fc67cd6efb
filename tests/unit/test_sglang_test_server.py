"""The SGLang test server's scripted model stays as fast on its ten-thousandth request as on its first: its
"radix cache" of earlier prompts is bounded, as SGLang's is (a soak stalled on the unbounded one)."""

from __future__ import annotations

from tests.sglang_server import _CACHED_PROMPTS, SamplingParams, SGLangTestServer, _Done


async def last_of(server: SGLangTestServer, prompt: str, rid: str) -> _Done:
    server.tokens[rid] = 0
    async for piece in server._scripted(prompt, SamplingParams(max_new_tokens=1), rid):
        if isinstance(piece, _Done):
            return piece
    raise AssertionError("no end")


async def test_the_scripted_models_cache_keeps_a_bounded_number_of_prompts():
    """Past the bound the least recently used prompt goes; a prompt seen again counts as cached whole."""
    server = SGLangTestServer(None, port=0, token_s=0, script="ok")
    for i in range(_CACHED_PROMPTS + 50):
        await last_of(server, f"prompt number {i} " * 10, f"r{i}")
    assert len(server._prompts) == _CACHED_PROMPTS
    repeat = "prompt number 299 " * 10
    done = await last_of(server, repeat, "again")
    assert done.cached_tokens == len(repeat) // 4
