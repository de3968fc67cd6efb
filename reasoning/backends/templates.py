"""Chat templates for servers that take raw text (SGLang's native /generate): messages → one prompt string.

SGLang tokenizes /generate's `text` with the tokenizer's defaults (tokenizer_manager: `tokenizer.encode(text)`, so
add_special_tokens is on): whatever the tokenizer puts in front of every input by itself — Llama 3's
<|begin_of_text|> — must not be in the template too, or the model reads it twice. `ADDED_BY_TOKENIZER` records, per
template, that token for the models the template serves, and tests check each template against it."""

from __future__ import annotations

from stepwise.reasoning.types import Message


def chatml(messages: list[Message]) -> str:
    """Qwen2.5, SmolLM2 and many others."""
    turns = "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


def llama3(messages: list[Message]) -> str:
    """Llama 3.x Instruct. No <|begin_of_text|>: its tokenizer adds that (add_bos_token)."""
    turns = "".join(f"<|start_header_id|>{m.role}<|end_header_id|>\n\n{m.content}<|eot_id|>" for m in messages)
    return turns + "<|start_header_id|>assistant<|end_header_id|>\n\n"


TEMPLATES = {"chatml": chatml, "llama3": llama3}
# The special token the template's tokenizers add in front of any text (None: Qwen2.5's and SmolLM2's add none).
ADDED_BY_TOKENIZER: dict[str, str | None] = {"chatml": None, "llama3": "<|begin_of_text|>"}
