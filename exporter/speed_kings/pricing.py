"""Prices per million tokens and the cost of one probe."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from speed_kings.prompts import new_nonce, with_nonce
from speed_kings.result import TokenUsage

# Chat templates wrap a prompt in role markers and special tokens: never more than this.
TEMPLATE_TOKENS = 64


def prompt_token_bound(prompt_text: str) -> int:
    """An upper bound on a probe prompt's input tokens. Byte-level tokenizers never make
    more tokens than UTF-8 bytes, so the bytes of the prompt as sent (nonce line included)
    plus the chat template's tokens bound it, whatever the model."""
    return len(with_nonce(prompt_text, new_nonce()).encode()) + TEMPLATE_TOKENS


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens, with the day the figures were last checked."""

    input_per_million: float
    output_per_million: float
    cached_input_per_million: float | None = None  # None: cached input billed as input
    checked: date | None = None
    source: str | None = None

    def cost(self, usage: TokenUsage) -> float:
        """Actual cost of a probe from its usage (missing counts cost nothing)."""
        inp = usage.input or 0
        cached = min(usage.cached_input or 0, inp)
        cached_price = (
            self.cached_input_per_million
            if self.cached_input_per_million is not None
            else self.input_per_million
        )
        return (
            (inp - cached) * self.input_per_million
            + cached * cached_price
            + (usage.output or 0) * self.output_per_million
        ) / 1_000_000

    def worst_case(self, input_tokens: int, max_tokens: int) -> float:
        """Upper bound before sending: the whole prompt uncached and `max_tokens` of output."""
        return (input_tokens * self.input_per_million + max_tokens * self.output_per_million) / 1e6

    def probe_worst_case(self, prompt_text: str, max_tokens: int) -> float:
        """What one probe of `prompt_text` can cost at most: what budgets reserve."""
        return self.worst_case(prompt_token_bound(prompt_text), max_tokens)

    @property
    def is_free(self) -> bool:
        return self.input_per_million == 0 and self.output_per_million == 0


FREE = Price(0.0, 0.0, 0.0)
