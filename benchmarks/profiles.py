"""The simulated streams the benchmark measures, served by `benchmarks.simserver`.

Every stream is OpenAI-shaped (the simulator's `fast` profile: role chunk first, a separate
usage chunk, `[DONE]`) with no jitter, no faults and no diurnal load, so the simulator's
truth is the only yardstick. Names encode the rate and the tokens per chunk.
"""

from __future__ import annotations

import dataclasses

from speed_kings.simulator import PROFILES, Profile

RATES: tuple[int, ...] = (50, 500, 5_000, 20_000)  # tokens/s of the accuracy streams
CHUNK_SIZES: tuple[int, ...] = (1, 8)  # tokens per chunk
# Ingest ceiling ladder: 1 token per chunk (the most events per token), rising rates.
LADDER: tuple[int, ...] = (10_000, 20_000, 35_000, 50_000, 60_000, 70_000, 85_000, 100_000)
TTFT_SECONDS = 0.05  # the simulator's first-token delay for every bench stream
BACKGROUND = "bench-bg"  # short streams for the exporter worker's probes (/metrics section)
API_KEY = "sk-bench-not-a-real-key-0000"  # the simulator only checks that one is sent


def stream_name(rate: int, chunk: int) -> str:
    return f"bench-{rate}x{chunk}"


def _stream(rate: int, chunk: int) -> Profile:
    return dataclasses.replace(
        PROFILES["fast"],
        name=stream_name(rate, chunk),
        description=f"benchmark: {rate} tokens/s, {chunk} per chunk",
        ttft_seconds=TTFT_SECONDS,
        ttft_jitter=0.0,
        tokens_per_second=float(rate),
        tokens_per_second_jitter=0.0,
        tokens_per_chunk=chunk,
        output_tokens=None,  # as many as the request's max_tokens
        diurnal_amplitude=0.0,
        fault_rates={},
    )


def bench_profiles() -> dict[str, Profile]:
    profiles = {stream_name(r, k): _stream(r, k) for r in RATES for k in CHUNK_SIZES}
    profiles.update({stream_name(r, 1): _stream(r, 1) for r in LADDER})
    profiles[BACKGROUND] = dataclasses.replace(
        _stream(10_000, 2), name=BACKGROUND, ttft_seconds=0.002
    )
    return profiles


def stream_tokens(rate: int, chunk: int, seconds: float) -> int:
    """Output tokens for a stream of about `seconds` after its first token (at least a few
    chunks, a whole number of chunks)."""
    chunks = max(4, round(rate * seconds / chunk))
    return chunks * chunk
