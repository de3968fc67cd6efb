"""Tokens and time the embedded model spends on a plan: llama.cpp's `response_format` (whitespace allowed) against
the llguidance grammar with whitespace switched off (what LlamaCppBackend sends). Same prompt, schema, questions.

    python bench/compact_json.py [--model qwen|smollm2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics

from stepwise.app.modelfiles import model_path
from stepwise.app.settings import Settings
from stepwise.reasoning.backends.local import EmbeddedLlama
from stepwise.reasoning.backends.openai_compat import OpenAICompatBackend
from stepwise.reasoning.planner import Planner
from stepwise.reasoning.router import Router
from stepwise.reasoning.types import Expert, Message, Sampling
from stepwise.tools import default_tools

QUESTIONS = ["What is (17*23)+(45*12)?", "What is the capital of France?", "How many seconds are in a week?"]


async def main(model: str) -> None:
    settings = Settings.from_env(os.environ)
    llama = await asyncio.to_thread(EmbeddedLlama, str(model_path(model, settings.cache_dir)))
    tools = default_tools()
    compact = llama.new_backend()  # sends the compact llguidance grammar
    router = Router({"general": Expert(name="general", backend=compact, skills=["facts"],
                                       description="answers a short factual question")}, "general")
    prefix, constraint = Planner(router, tools).prompt_for(tuple(tools))
    flexible = OpenAICompatBackend(llama.base_url, llama.name)  # sends response_format
    rows = {"response_format": [], "compact grammar": []}
    for question in QUESTIONS:
        # Warm the prefix cache with this question so neither variant pays its prompt and the other not.
        await compact.generate([*prefix, Message("user", f"Q: {question}")], sampling=Sampling(max_tokens=1))
        for name, backend in (("response_format", flexible), ("compact grammar", compact)):
            c = await backend.generate([*prefix, Message("user", f"Q: {question}")], constraint=constraint,
                                       sampling=Sampling(max_tokens=1024))
            rows[name].append((c.usage.output_tokens, c.latency_ms))
    print(f"model: {llama.name}; questions: {len(QUESTIONS)}; medians")
    print("| JSON schema sent as | output tokens | latency ms |")
    print("|---|---|---|")
    for name, values in rows.items():
        print(f"| {name} | {statistics.median(t for t, _ in values):.0f} | "
              f"{statistics.median(ms for _, ms in values):.0f} |")
    await flexible.aclose()
    await compact.aclose()
    llama.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="qwen")
    asyncio.run(main(parser.parse_args().model))
