"""The HTTP client session probes share, with connection-phase timing.

DNS and connection set-up come from aiohttp's tracing hooks; the TLS handshake is timed by
an `ssl.SSLObject` subclass (asyncio drives the handshake through `SSLObject.do_handshake`),
so TCP connect and TLS are reported separately. The handshake finds its probe's recorder
through a context variable: asyncio runs transport callbacks in a copy of the context of
the task that opened the connection, so concurrent probes never see each other's.

By default every probe opens a fresh connection (and resolves DNS afresh), so cold and warm
connections are never mixed silently.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp

from speed_kings.clock import Clock
from speed_kings.result import ConnectionPhases


@dataclass(slots=True)
class PhaseRecorder:
    """Per-request trace context: raw timestamps on the probe's monotonic clock."""

    clock: Clock
    connect_start: float | None = None
    connect_end: float | None = None
    dns_start: float | None = None
    dns_end: float | None = None
    tls_start: float | None = None
    tls_end: float | None = None
    reused: bool = False

    def phases(self) -> ConnectionPhases:
        if self.reused or self.connect_start is None or self.connect_end is None:
            return ConnectionPhases(reused=self.reused)
        dns = (
            self.dns_end - self.dns_start
            if self.dns_start is not None and self.dns_end is not None
            else None
        )
        tls = (
            self.tls_end - self.tls_start
            if self.tls_start is not None and self.tls_end is not None
            else None
        )
        tcp_start = self.dns_end if self.dns_end is not None else self.connect_start
        tcp_end = (
            self.tls_start if tls is not None and self.tls_start is not None else self.connect_end
        )
        return ConnectionPhases(
            dns_seconds=dns, connect_seconds=max(0.0, tcp_end - tcp_start), tls_seconds=tls
        )


_recording: ContextVar[PhaseRecorder | None] = ContextVar("speed_kings_phases", default=None)


@contextmanager
def recording(recorder: PhaseRecorder) -> Iterator[PhaseRecorder]:
    """Routes TLS handshake times of connections opened inside this block to `recorder`."""
    token = _recording.set(recorder)
    try:
        yield recorder
    finally:
        _recording.reset(token)


def _recorder(params: SimpleNamespace) -> PhaseRecorder | None:
    ctx = params.trace_request_ctx
    return ctx if isinstance(ctx, PhaseRecorder) else None


def _stamp(attribute: str) -> Callable[[Any, SimpleNamespace, Any], Awaitable[None]]:
    """A trace hook noting the time on the request's recorder."""

    async def hook(_: Any, ctx: SimpleNamespace, __: Any) -> None:
        if rec := _recorder(ctx):
            setattr(rec, attribute, rec.clock.monotonic())

    return hook


async def _reused(_: Any, ctx: SimpleNamespace, __: Any) -> None:
    if rec := _recorder(ctx):
        rec.reused = True


def _trace_config() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_connection_create_start.append(_stamp("connect_start"))
    trace.on_connection_create_end.append(_stamp("connect_end"))
    trace.on_dns_resolvehost_start.append(_stamp("dns_start"))
    trace.on_dns_resolvehost_end.append(_stamp("dns_end"))
    trace.on_connection_reuseconn.append(_reused)
    return trace


class _TimedSSLObject(ssl.SSLObject):
    def do_handshake(self) -> None:
        recorder = _recording.get()
        if recorder is not None and recorder.tls_start is None:
            recorder.tls_start = recorder.clock.monotonic()
        super().do_handshake()  # raises SSLWantReadError until the handshake completes
        if recorder is not None:
            recorder.tls_end = recorder.clock.monotonic()


def timed_ssl_context(base: ssl.SSLContext | None = None) -> ssl.SSLContext:
    """An SSL context whose handshakes report to the current probe's recorder."""
    context = base or ssl.create_default_context()
    context.sslobject_class = _TimedSSLObject
    return context


def make_session(
    clock: Clock, *, fresh_connections: bool = True, ssl_context: ssl.SSLContext | None = None
) -> aiohttp.ClientSession:
    """A session for probing. Must be created inside a running event loop and closed."""
    connector = aiohttp.TCPConnector(
        force_close=fresh_connections,
        use_dns_cache=not fresh_connections,
        ssl=timed_ssl_context(ssl_context),
        limit=0,
    )
    return aiohttp.ClientSession(
        connector=connector,
        trace_configs=[_trace_config()],
        timeout=aiohttp.ClientTimeout(total=None),
        auto_decompress=True,
        headers={"user-agent": "speed-kings"},
    )
