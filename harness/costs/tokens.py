"""Token counts before a tokenizer has counted: the one "about 4 characters a token" rule, and the parts of a prompt
that tokens are attributed to. Real tokenizers differ by 10-30%; runs measure exact counts."""

from __future__ import annotations

import math

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4  # chat-template tokens per message (role markers), a typical figure
# What a prompt's tokens are split into in cases.jsonl (`tokens`) and in each strategy's summary.
TOKEN_PARTS = ("instructions", "exemplars", "context", "input", "template", "output")


def chars_to_tokens(chars: float) -> float:
    """Expected tokens of `chars` characters (a mean, not rounded)."""
    return chars / CHARS_PER_TOKEN


def tokens_to_chars(tokens: float) -> float:
    return tokens * CHARS_PER_TOKEN


def approx_tokens(text: str | int) -> int:
    """Whole tokens of a text (or of that many characters), rounded up."""
    chars = text if isinstance(text, int) else len(text)
    return math.ceil(chars / CHARS_PER_TOKEN)


def approx_chat_tokens(messages: list[dict[str, str]]) -> int:
    """Tokens of chat messages: their text, plus the template's few tokens per message."""
    return approx_tokens(sum(len(m["content"]) for m in messages)) + MESSAGE_OVERHEAD_TOKENS * len(messages)


def attribute_tokens(parts: dict[str, int], input_tokens: int, output_tokens: int) -> dict[str, int]:
    """The prompt's measured tokens split by part; what the parts do not explain is the chat template's."""
    out = dict(parts)
    total = sum(parts.values())
    if input_tokens and total > input_tokens:  # counted apart, parts can tokenise a little longer than the whole
        out = {k: round(v * input_tokens / total) for k, v in parts.items()}
        total = sum(out.values())
    out["template"] = max(input_tokens - total, 0) if input_tokens else 0
    out["output"] = output_tokens
    return out
