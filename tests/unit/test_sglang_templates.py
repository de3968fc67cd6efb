"""Chat templates for SGLang's /generate, which tokenizes their text with the tokenizer's own special tokens on: a
template never writes the token its tokenizer puts in front by itself, and each is its model family's chat format."""

from __future__ import annotations

import pytest

from stepwise.reasoning.backends.templates import ADDED_BY_TOKENIZER, TEMPLATES
from stepwise.reasoning.types import Message

CHAT = [Message("system", "Be terse."), Message("user", "Hi")]


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_no_template_writes_the_token_its_tokenizer_adds(name):
    """Whatever the tokenizer adds itself (Llama 3's <|begin_of_text|>) is nowhere in the template's prompt."""
    added = ADDED_BY_TOKENIZER[name]
    assert added is None or added not in TEMPLATES[name](CHAT)


def test_llama3_is_llama3s_chat_format_after_the_begin_token():
    """The llama3 prompt is Meta's format without its first token: headers, blank line, <|eot_id|>, an open assistant
    turn."""
    assert TEMPLATES["llama3"](CHAT) == (
        "<|start_header_id|>system<|end_header_id|>\n\nBe terse.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_chatml_is_the_chatml_format():
    """The chatml prompt is <|im_start|>role, the text, <|im_end|> per message, then an open assistant turn."""
    assert TEMPLATES["chatml"](CHAT) == (
        "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_every_template_says_what_its_tokenizer_adds():
    """A new template cannot be added without recording its tokenizer's leading special token (or None)."""
    assert set(ADDED_BY_TOKENIZER) == set(TEMPLATES)
