"""Everything random about one request, drawn up front from a seeded RNG.

Each request gets its own `random.Random` seeded by (seed, sequence number), so the same seed
and the same request order give the same fault, TTFT, speed and text, whatever else (truth
queries, other wires' timing) happens in between.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from speed_kings.simulator.profiles import FAULTS, Profile

MAX_OUTPUT_TOKENS = 100_000  # keeps one request's pre-rendered stream in the megabytes

# JSON-safe words (no quotes, backslashes or control characters): chunk templates insert
# them without escaping.
_ANSWER_WORDS = (
    "the", "fast", "token", "stream", "arrives", "before", "after", "every", "model",
    "provider", "latency", "throughput", "measures", "time", "first", "second", "chunk",
    "answer", "speed", "kings", "wafer", "scale", "language", "unit", "dataflow", "cloud",
    "price", "budget", "probe", "queue", "prompt", "cache", "server", "client", "socket",
    "bytes", "signal", "window", "hour", "day", "and", "of", "to", "in", "is", "a",
)  # fmt: skip
_REASONING_WORDS = (
    "let", "me", "think", "about", "whether", "the", "user", "wants", "a", "short",
    "or", "long", "answer", "so", "I", "should", "consider", "first", "then", "check",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Plan:
    fault: str | None
    ttft_seconds: float
    tokens_per_second: float
    reasoning: tuple[str, ...]  # token texts, sent first
    answer: tuple[str, ...]


def diurnal_load(unix_time: float) -> float:
    """0 at 03:00 UTC rising to 1 at 15:00 UTC: a sine-shaped day of traffic."""
    hour = (unix_time % 86_400) / 3_600
    return (1 + math.sin(2 * math.pi * (hour - 9) / 24)) / 2


def _words(rng: random.Random, vocabulary: tuple[str, ...], count: int) -> tuple[str, ...]:
    words = rng.choices(vocabulary, k=count)
    # Tokens carry their leading space, as real tokenizers do; every ~12th ends a sentence.
    return tuple(
        ("" if i == 0 else " ") + w + ("." if i % 12 == 11 else "") for i, w in enumerate(words)
    )


def draw_fault(rng: random.Random, rates: dict[str, float]) -> str | None:
    draw = rng.random()  # drawn even when no rate is set: keeps later draws aligned
    edge = 0.0
    for fault in FAULTS:
        edge += rates.get(fault, 0.0)
        if draw < edge:
            return fault
    return None


def make_plan(
    profile: Profile,
    *,
    seed: int,
    sequence: int,
    url_fault: str | None,
    max_tokens: int,
    unix_time: float,
) -> Plan:
    rng = random.Random(f"{seed}/{sequence}")
    drawn = draw_fault(rng, dict(profile.fault_rates))
    load = 1 + profile.diurnal_amplitude * diurnal_load(unix_time)
    ttft = profile.ttft_seconds * (1 + profile.ttft_jitter * rng.uniform(-1, 1)) * load
    tps = (
        profile.tokens_per_second
        * (1 + profile.tokens_per_second_jitter * rng.uniform(-1, 1))
        / load
    )
    # Drawn only when enabled, so profiles without slowdowns keep their seeded sequences.
    if profile.slowdown_rate > 0 and rng.random() < profile.slowdown_rate:
        ttft *= profile.slowdown_factor
        tps /= profile.slowdown_factor
    total = max_tokens if profile.output_tokens is None else min(profile.output_tokens, max_tokens)
    total = min(total, MAX_OUTPUT_TOKENS)
    reasoning = min(profile.reasoning_tokens, total)
    return Plan(
        fault=url_fault if url_fault is not None else drawn,
        ttft_seconds=max(ttft, 0.0),
        tokens_per_second=tps,
        reasoning=_words(rng, _REASONING_WORDS, reasoning),
        answer=_words(rng, _ANSWER_WORDS, total - reasoning),
    )
