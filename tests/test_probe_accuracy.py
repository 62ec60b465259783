"""Real probes over loopback against the simulator, checked against what it says it sent."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import aiohttp
import pytest

from speed_kings.clock import SystemClock
from speed_kings.pricing import Price
from speed_kings.probe import ProbeSpec, run_probe
from speed_kings.result import Outcome
from speed_kings.simulator import PROFILES, Simulator
from speed_kings.wire.base import Target

TTFT_TOLERANCE = 0.010  # seconds
TPS_TOLERANCE = 0.03  # relative

# Base URL suffix per wire (the simulator's layout: /{profile}/...).
WIRE_SUFFIX = {"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta", "ollama": ""}

# (profile, wire, usage reported exactly?)
CASES = [
    ("openai", "openai", True),  # role-only first chunk, separate choices: [] usage chunk
    ("groq", "openai", True),  # x_groq.usage
    ("cerebras", "openai", True),  # time_info
    ("sambanova", "openai", True),  # usage metrics
    ("deepseek", "openai", True),  # reasoning_content, keep-alives, usage on finish chunk
    ("together", "openai", True),
    ("zai", "openai", True),
    ("moonshot", "openai", True),  # choices[0].usage
    ("openrouter", "openai", True),  # processing comments, usage.cost
    ("fireworks", "openai", True),
    ("mistral", "openai", True),
    ("crlf", "openai", True),  # CRLF, "data:" without space, no [DONE]
    ("reasoning", "openai", True),
    ("anthropic", "anthropic", True),
    ("gemini", "gemini", True),
    ("ollama", "ollama", True),
]


def steady(name: str) -> object:
    """The named profile made fast and exact for accuracy checks: no jitter, no faults,
    a 200-token answer at 500 tokens/s after a 150 ms TTFT."""
    return dataclasses.replace(
        PROFILES[name],
        ttft_seconds=0.15,
        ttft_jitter=0.0,
        tokens_per_second=500.0,
        output_tokens=200,
        diurnal_amplitude=0.0,
        fault_rates={},
        model_load_seconds=0.2 if name == "ollama" else PROFILES[name].model_load_seconds,
    )


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator({name: steady(name) for name, _, _ in CASES}, seed=7)  # type: ignore[misc]
    await simulator.start()
    yield simulator
    await simulator.stop()


def target(sim: Simulator, profile: str, wire: str, model: str = "sim-model") -> Target:
    return Target(
        provider=f"sim-{profile}",
        base_url=f"{sim.url}/{profile}{WIRE_SUFFIX[wire]}",
        wire=wire,
        model=model,
        provider_model=model,
        api_key="sk-test-not-a-real-key-000000",
    )


@pytest.mark.parametrize(("profile", "wire", "exact"), CASES)
async def test_probe_matches_simulator_truth(
    sim: Simulator,
    session: aiohttp.ClientSession,
    clock: SystemClock,
    profile: str,
    wire: str,
    exact: bool,
) -> None:
    price = Price(1.0, 2.0, 0.5)
    spec = ProbeSpec(
        target(sim, profile, wire), "short", "Say something.", max_tokens=400, price=price
    )
    result = await run_probe(spec, session, clock)
    assert result.outcome is Outcome.SUCCESS, result.error
    truth = sim.truth(result.request_id or "")
    assert truth is not None, "the simulator recorded no truth for this request"

    assert result.time_to_first_token is not None and truth.ttft_seconds is not None
    assert abs(result.time_to_first_token - truth.ttft_seconds) <= TTFT_TOLERANCE
    assert result.time_to_headers is not None
    assert result.time_to_headers <= result.time_to_first_token
    if truth.first_answer_token_sent_at is not None:
        assert result.time_to_first_answer_token is not None
        true_answer = truth.first_answer_token_sent_at - truth.received_at
        assert abs(result.time_to_first_answer_token - true_answer) <= TTFT_TOLERANCE
    if truth.reasoning_tokens:
        assert result.time_to_first_answer_token > result.time_to_first_token  # type: ignore[operator]

    tps, true_tps = result.output_tokens_per_second, truth.output_tokens_per_second
    assert tps is not None and true_tps is not None
    assert abs(tps - true_tps) / true_tps <= TPS_TOLERANCE, (tps, true_tps)

    if exact:
        assert result.tokens.source == "reported"
        assert result.tokens.output == truth.output_tokens
        assert result.tokens.input == truth.input_tokens
    if profile == "openrouter":
        assert result.cost_source == "reported"
    else:
        assert result.cost_usd == pytest.approx(price.cost(result.tokens))
    assert (
        result.request_duration is not None
        and result.request_duration >= result.time_to_first_token
    )
    assert result.phases.connect_seconds is not None and not result.phases.reused


async def test_ollama_model_load_is_reported_separately(
    sim: Simulator, session: aiohttp.ClientSession, clock: SystemClock
) -> None:
    spec = ProbeSpec(target(sim, "ollama", "ollama", "fresh-model"), "short", "Hi", max_tokens=50)
    first = await run_probe(spec, session, clock)
    second = await run_probe(spec, session, clock)
    assert first.outcome is second.outcome is Outcome.SUCCESS
    assert first.model_load_seconds is not None and first.model_load_seconds >= 0.2
    assert second.model_load_seconds is None  # already loaded: nothing to report
    assert first.time_to_first_token is not None
    assert first.time_to_first_token < 0.15 + 0.1  # load time never lands in TTFT
    assert "load" in first.server_timings and "eval" in first.server_timings


async def test_usage_absent_gives_estimated_tokens(
    session: aiohttp.ClientSession, clock: SystemClock
) -> None:
    profile = dataclasses.replace(steady("openai"), usage_placement="none")  # type: ignore[type-var]
    simulator = Simulator({"plain": profile}, seed=1)
    await simulator.start()
    try:
        spec = ProbeSpec(target(simulator, "plain", "openai"), "short", "Hi", max_tokens=100)
        result = await run_probe(spec, session, clock)
    finally:
        await simulator.stop()
    assert result.outcome is Outcome.SUCCESS
    assert result.tokens.source == "estimated"
    assert result.tokens.output is not None and result.tokens.output >= result.chunks


async def test_nonce_makes_every_prompt_unique(
    sim: Simulator, session: aiohttp.ClientSession, clock: SystemClock
) -> None:
    spec = ProbeSpec(target(sim, "groq", "openai"), "short", "Same prompt", max_tokens=20)
    a = await run_probe(spec, session, clock)
    b = await run_probe(spec, session, clock)
    assert a.nonce != b.nonce
