"""Chat templates for servers that take raw text (SGLang's native /generate): messages → one prompt string."""

from __future__ import annotations

from reasoning.types import Message


def chatml(messages: list[Message]) -> str:
    """Qwen2.5, SmolLM2 and many others."""
    turns = "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


def llama3(messages: list[Message]) -> str:
    turns = "".join(f"<|start_header_id|>{m.role}<|end_header_id|>\n\n{m.content}<|eot_id|>" for m in messages)
    return "<|begin_of_text|>" + turns + "<|start_header_id|>assistant<|end_header_id|>\n\n"


TEMPLATES = {"chatml": chatml, "llama3": llama3}
