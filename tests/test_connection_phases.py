"""DNS, TCP connect and TLS are timed separately; fresh connections by default."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from speed_kings.clock import SystemClock
from speed_kings.http import make_session
from speed_kings.probe import ProbeSpec, run_probe
from speed_kings.result import Outcome
from speed_kings.wire.base import Target

STREAM = (
    b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n'
    b'data: {"choices":[{"delta":{"content":"Hello"}}]}\n\n'
    b'data: {"choices":[{"delta":{"content":" there"}}]}\n\n'
    b'data: {"choices":[{"delta":{},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n'
    b"data: [DONE]\n\n"
)


async def stream(request: web.Request) -> web.StreamResponse:
    await request.read()
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    await response.write(STREAM)
    await response.write_eof()
    return response


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for `localhost` (openssl, as on any Debian machine)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def serve(ssl_context: ssl.SSLContext | None) -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", stream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


def spec(url: str) -> ProbeSpec:
    return ProbeSpec(Target("t", url, "openai", "m", "m", api_key="k"), "short", "Hi")


async def test_tls_handshake_is_timed_apart_from_connect(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    clock = SystemClock()
    async for port in serve(server_ctx):
        async with make_session(clock, ssl_context=client_ctx) as session:
            # `localhost` goes through the resolver, so DNS is timed too.
            results = [
                await run_probe(spec(f"https://localhost:{port}/v1"), session, clock)
                for _ in range(2)
            ]
    for result in results:
        assert result.outcome is Outcome.SUCCESS, result.error
        phases = result.phases
        assert not phases.reused
        assert phases.dns_seconds is not None and phases.dns_seconds >= 0
        assert phases.connect_seconds is not None and phases.connect_seconds > 0
        assert phases.tls_seconds is not None and phases.tls_seconds > 0
        # The phases happen before the headers arrive and fit inside that time.
        total = phases.dns_seconds + phases.connect_seconds + phases.tls_seconds
        assert result.time_to_headers is not None and total <= result.time_to_headers


async def test_plain_http_has_no_tls_phase_and_reuse_is_marked() -> None:
    clock = SystemClock()
    async for port in serve(None):
        url = f"http://127.0.0.1:{port}/v1"
        async with make_session(clock) as fresh:
            first = await run_probe(spec(url), fresh, clock)
        async with make_session(clock, fresh_connections=False) as pooled:
            cold = await run_probe(spec(url), pooled, clock)
            warm = await run_probe(spec(url), pooled, clock)
    assert first.phases.tls_seconds is None and first.phases.connect_seconds is not None
    assert not cold.phases.reused and cold.phases.connect_seconds is not None
    assert warm.phases.reused and warm.phases.connect_seconds is None
    assert {first.outcome, cold.outcome, warm.outcome} == {Outcome.SUCCESS}
