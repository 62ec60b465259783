"""Every simulator fault, on every wire, maps to its outcome: counted, never raised."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from speed_kings.clock import SystemClock
from speed_kings.probe import ProbeSpec, run_probe
from speed_kings.result import Outcome
from speed_kings.simulator import PROFILES, Simulator
from speed_kings.wire.base import Target

WIRES = {
    "openai": ("openai", "/v1"),
    "anthropic": ("anthropic", "/v1"),
    "gemini": ("gemini", "/v1beta"),
    "ollama": ("ollama", ""),
}

FAULTS = {
    "rate_limit": Outcome.RATE_LIMITED,
    "overloaded": Outcome.OVERLOADED,
    "overloaded_529": Outcome.OVERLOADED,
    "server_error": Outcome.HTTP_ERROR,
    "midstream_error": Outcome.HTTP_ERROR,
    "reset": Outcome.CONNECTION_ERROR,
    "stall": Outcome.TIMEOUT,
    "garbage": Outcome.PROTOCOL_ERROR,
    "huge": Outcome.PROTOCOL_ERROR,
    "truncated": Outcome.PROTOCOL_ERROR,
    "empty": Outcome.PROTOCOL_ERROR,
}
SECRET = "sk-canary-0123456789abcdefghij"


@pytest.fixture(scope="module")
def profiles() -> dict[str, object]:
    fast = {
        "ttft_seconds": 0.02,
        "ttft_jitter": 0.0,
        "tokens_per_second": 2000.0,
        "output_tokens": 40,
        "diurnal_amplitude": 0.0,
        "fault_rates": {},
    }
    out = {}
    for profile in ("openai", "anthropic", "gemini"):
        out[profile] = dataclasses.replace(PROFILES[profile], **fast)  # type: ignore[arg-type]
    out["ollama"] = dataclasses.replace(PROFILES["ollama"], model_load_seconds=0.0, **fast)  # type: ignore[arg-type]
    return out


@pytest.fixture
async def sim(profiles: dict[str, object]) -> AsyncIterator[Simulator]:
    simulator = Simulator(profiles, seed=3)  # type: ignore[arg-type]
    await simulator.start()
    yield simulator
    await simulator.stop()


def spec_for(url: str, wire: str) -> ProbeSpec:
    return ProbeSpec(
        Target("sim", url, wire, "m", "m", api_key=SECRET),
        "short",
        "Hello",
        max_tokens=40,
        timeout=5.0,
        read_timeout=0.3,
        max_response_bytes=1024 * 1024,
    )


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("wire", sorted(WIRES))
async def test_fault_maps_to_outcome(
    sim: Simulator, session: aiohttp.ClientSession, clock: SystemClock, wire: str, fault: str
) -> None:
    profile, suffix = WIRES[wire]
    spec = spec_for(f"{sim.url}/{profile}@{fault}{suffix}", wire)
    result = await run_probe(spec, session, clock)
    assert result.outcome is FAULTS[fault], (result.outcome, result.error)
    assert result.error, "a failed probe says why"
    assert SECRET not in result.error
    assert SECRET not in repr(result.to_dict())
    if fault == "rate_limit":
        expected = 34.4 if wire == "gemini" else 7.0
        assert result.rate_limit.retry_after_seconds == pytest.approx(expected)
        assert result.http_status == 429
    if fault in ("midstream_error", "reset", "stall", "garbage", "truncated"):
        # The stream broke after it started: what was measured before is kept.
        assert result.time_to_first_token is not None and result.http_status == 200


async def test_connection_refused(session: aiohttp.ClientSession, clock: SystemClock) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = await run_probe(spec_for(f"http://127.0.0.1:{port}/v1", "openai"), session, clock)
    assert result.outcome is Outcome.CONNECTION_ERROR
    assert result.time_to_headers is None and result.error


async def test_total_timeout(
    sim: Simulator, session: aiohttp.ClientSession, clock: SystemClock
) -> None:
    spec = dataclasses.replace(
        spec_for(f"{sim.url}/openai@stall/v1", "openai"), timeout=0.5, read_timeout=10.0
    )
    result = await run_probe(spec, session, clock)
    assert result.outcome is Outcome.TIMEOUT
    assert result.request_duration is not None and result.request_duration < 5


async def test_unknown_status_and_auth_failure(
    sim: Simulator, session: aiohttp.ClientSession, clock: SystemClock
) -> None:
    spec = spec_for(f"{sim.url}/openai/v1", "openai")
    no_key = dataclasses.replace(spec, target=dataclasses.replace(spec.target, api_key=None))
    result = await run_probe(no_key, session, clock)
    assert result.outcome is Outcome.HTTP_ERROR and result.http_status == 401


async def test_key_echoed_back_by_a_provider_is_redacted(
    session: aiohttp.ClientSession, clock: SystemClock
) -> None:
    """Providers echo keys in auth errors ("Incorrect API key provided: sk-..."): the error
    detail must not carry it, nor any other key-shaped string."""

    async def echo(request: web.Request) -> web.Response:
        key = request.headers["authorization"].removeprefix("Bearer ")
        body = {"error": {"message": f"Incorrect API key provided: {key}; also sk-{'x' * 24}"}}
        return web.json_response(body, status=401)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        result = await run_probe(spec_for(f"http://127.0.0.1:{port}/v1", "openai"), session, clock)
    finally:
        await runner.cleanup()
    assert result.outcome is Outcome.HTTP_ERROR and result.http_status == 401
    assert result.error is not None and "Incorrect API key provided: [REDACTED]" in result.error
    assert SECRET not in result.error and "sk-xxxx" not in result.error
