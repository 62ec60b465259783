"""The standard prompts (from the seed design) and the per-probe nonce."""

from __future__ import annotations

import secrets

PROMPTS: dict[str, str] = {
    "short": "Explain what a binary search tree is in exactly three sentences.",
    "medium": (
        "Write a Python function that implements merge sort. Include:\n"
        "1. The main merge_sort function\n"
        "2. A helper merge function\n"
        "3. Brief comments explaining each step\n"
        "4. An example of calling the function with a sample list"
    ),
    "long": (
        "You are a technical writer. Write a comprehensive guide about REST API design best "
        "practices. The guide should cover:\n\n"
        "1. Resource naming conventions\n"
        "2. HTTP method usage (GET, POST, PUT, PATCH, DELETE)\n"
        "3. Status code selection\n"
        "4. Error response formatting\n"
        "5. Pagination strategies\n"
        "6. Versioning approaches\n"
        "7. Authentication considerations\n\n"
        "For each topic, provide a brief explanation and a concrete example. The guide should "
        "be suitable for intermediate developers who understand HTTP but are new to API design."
    ),
}


def resolve_prompt(name_or_text: str) -> tuple[str, str]:
    """(name, text): a standard prompt by name, or custom text named `custom`."""
    if name_or_text in PROMPTS:
        return name_or_text, PROMPTS[name_or_text]
    return "custom", name_or_text


def new_nonce() -> str:
    return secrets.token_hex(8)


def with_nonce(text: str, nonce: str) -> str:
    """Put the nonce first: provider prompt caches match on the prefix, so a unique first
    line guarantees a cache miss and every probe measures real prefill."""
    return f"[request {nonce}]\n{text}"


def estimate_tokens(chars: int) -> int:
    """Rough token count when a provider reports none (about four characters per token)."""
    return max(1, round(chars / 4)) if chars else 0
