"""One probe: a single streamed request, timed on the monotonic clock from t0 (just before
the request is sent). Every wire protocol goes through `run_probe`; every failure becomes an
outcome on the result, never an exception."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass

import aiohttp

from speed_kings.clock import Clock
from speed_kings.http import PhaseRecorder, recording
from speed_kings.pricing import Price
from speed_kings.prompts import estimate_tokens, new_nonce, with_nonce
from speed_kings.ratelimit import parse_rate_limit_headers
from speed_kings.redact import Redactor
from speed_kings.result import Outcome, ProbeResult
from speed_kings.wire import get_wire
from speed_kings.wire.base import Decoder, StreamError, Target, Wire, clip
from speed_kings.wire.framing import Event, NDJSONParser, SSEParser, parser_for

ERROR_BODY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    target: Target
    prompt_name: str
    prompt_text: str
    max_tokens: int = 300
    price: Price | None = None
    timeout: float = 60.0  # whole request, headers to end of stream
    read_timeout: float = 30.0  # longest silence tolerated mid-stream (a stall)
    connect_timeout: float = 10.0
    max_response_bytes: int = 16 * 1024 * 1024


class _ResponseTooLarge(Exception):
    pass


async def run_probe(
    spec: ProbeSpec,
    session: aiohttp.ClientSession,
    clock: Clock,
    *,
    wire: Wire | None = None,
    redactor: Redactor | None = None,
) -> ProbeResult:
    """Runs one probe. Never raises for anything the provider or the network does."""
    target = spec.target
    wire = wire or get_wire(target.wire)
    redact = (redactor or Redactor()).with_secret(target.api_key)
    nonce = new_nonce()
    prompt = with_nonce(spec.prompt_text, nonce)
    result = ProbeResult(
        provider=target.provider,
        model=target.model,
        provider_model=target.provider_model,
        prompt=spec.prompt_name,
        wire=wire.name,
        nonce=nonce,
        started_at=clock.time(),
    )
    try:
        result.model_load_seconds = await wire.prepare(session, target, clock, spec.timeout)
    except Exception as exc:  # a failed model load is this probe's outcome
        _record_failure(result, exc, redact)
        return result

    request = wire.build_request(target, prompt, spec.max_tokens)
    recorder = PhaseRecorder(clock)
    decoder = wire.decoder()
    t0 = clock.monotonic()
    result.started_at = clock.time()
    try:
        with recording(recorder):
            async with (
                asyncio.timeout(spec.timeout),
                session.request(
                    request.method,
                    request.url,
                    headers=request.headers,
                    json=request.json,
                    trace_request_ctx=recorder,
                    timeout=aiohttp.ClientTimeout(
                        total=None, sock_connect=spec.connect_timeout, sock_read=spec.read_timeout
                    ),
                ) as response,
            ):
                result.time_to_headers = clock.monotonic() - t0
                await _read_response(spec, wire, decoder, response, result, clock, t0)
    except Exception as exc:
        _record_failure(result, exc, redact)
    result.phases = recorder.phases()
    result.request_duration = clock.monotonic() - t0
    _finish_tokens(result, decoder, len(prompt))
    _finish_cost(result, decoder, spec.price)
    if result.error:
        result.error = redact(result.error)
    if result.request_id:  # provider text too: a proxy may echo anything into it
        result.request_id = redact(result.request_id)
    return result


async def _read_response(
    spec: ProbeSpec,
    wire: Wire,
    decoder: Decoder,
    response: aiohttp.ClientResponse,
    result: ProbeResult,
    clock: Clock,
    t0: float,
) -> None:
    result.http_status = response.status
    headers = response.headers
    result.request_id = headers.get("x-request-id") or headers.get("request-id")
    result.rate_limit = parse_rate_limit_headers(headers, clock.time())
    if response.status >= 300:
        body = await response.content.read(ERROR_BODY_BYTES)
        info = wire.classify_error(response.status, body.decode("utf-8", "replace"))
        result.outcome = info.outcome
        result.error = info.detail
        if info.retry_after_seconds is not None and result.rate_limit.retry_after_seconds is None:
            result.rate_limit.retry_after_seconds = info.retry_after_seconds
        return

    feed = decoder.feed
    first = first_answer = last = None
    chunks = chars = 0
    arrivals = _arrivals(response, parser_for(wire.framing), clock, spec)
    try:
        async with contextlib.aclosing(arrivals):
            async for now, events in arrivals:
                for event, payload in events:
                    reasoning, answer = feed(event, payload)
                    if reasoning or answer:
                        chunks += 1
                        chars += reasoning + answer
                        last = now
                        if first is None:
                            first = now
                        if answer and first_answer is None:
                            first_answer = now
    finally:
        # Kept on failure too: a stream that broke after its first token still tells TTFT.
        result.chunks, result.generated_chars = chunks, chars
        result.time_to_first_token = None if first is None else first - t0
        result.time_to_first_answer_token = None if first_answer is None else first_answer - t0
        result.time_to_last_token = None if last is None else last - t0
        result.finish_reason = decoder.finish_reason
        result.server_timings.update(decoder.server_timings)
    _server_header_timings(headers, result)
    if not decoder.done:
        result.outcome = Outcome.PROTOCOL_ERROR
        result.error = "stream ended before completion (no finish marker)"
    elif first is None:
        result.outcome = Outcome.PROTOCOL_ERROR
        result.error = "stream completed without generating any text"
    else:
        result.outcome = Outcome.SUCCESS


async def _arrivals(
    response: aiohttp.ClientResponse,
    parser: SSEParser | NDJSONParser,
    clock: Clock,
    spec: ProbeSpec,
) -> AsyncGenerator[tuple[float, list[Event]], None]:
    """The stream's events, each batch with the time its bytes arrived (taken before any
    parsing, so parsing never shifts a timestamp); the parser's remainder comes last."""
    received = 0
    async for data in response.content.iter_any():
        now = clock.monotonic()
        received += len(data)
        if received > spec.max_response_bytes:
            raise _ResponseTooLarge(
                f"response exceeded {spec.max_response_bytes} bytes; stopped reading"
            )
        yield now, parser.feed(data)
    yield clock.monotonic(), parser.close()


def _server_header_timings(headers: Mapping[str, str], result: ProbeResult) -> None:
    """Server-side timings some providers send as headers."""
    for header, key, scale in _TIMING_HEADERS:
        value = headers.get(header)
        if value is not None:
            with contextlib.suppress(ValueError):
                result.server_timings[key] = float(value) * scale


# (header, server_timings key, factor to seconds). Fireworks does not document the unit of
# its header: it is kept as sent, under a name that says it came from the header.
_TIMING_HEADERS = (
    ("openai-processing-ms", "processing_time", 0.001),
    ("fireworks-server-time-to-first-token", "fireworks_header_time_to_first_token", 1.0),
)


def _record_failure(result: ProbeResult, exc: BaseException, redact: Redactor) -> None:
    """Maps what went wrong to an outcome and a short, redacted error detail."""
    outcome, detail = classify_exception(exc)
    result.outcome = outcome
    result.error = redact(clip(detail))


def classify_exception(exc: BaseException) -> tuple[Outcome, str]:
    if isinstance(exc, StreamError):
        return exc.info.outcome, exc.info.detail
    if isinstance(exc, _ResponseTooLarge):
        return Outcome.PROTOCOL_ERROR, str(exc)
    # aiohttp's read timeouts subclass asyncio.TimeoutError, so check timeouts first.
    if isinstance(exc, TimeoutError):
        if isinstance(exc, aiohttp.ServerTimeoutError):
            return Outcome.TIMEOUT, f"no data for longer than the read timeout ({exc})"
        return Outcome.TIMEOUT, "request exceeded its timeout"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return Outcome.CONNECTION_ERROR, f"connection broke mid-stream: {_root(exc)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Outcome.CONNECTION_ERROR, f"cannot connect: {exc.os_error or exc}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return Outcome.CONNECTION_ERROR, "server closed the connection"
    if isinstance(exc, aiohttp.ClientError | ConnectionError | OSError):
        return Outcome.CONNECTION_ERROR, f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ValueError):  # malformed JSON, oversize line, bad chunk shape
        return Outcome.PROTOCOL_ERROR, f"malformed stream: {exc}"
    # Anything else is a bug of ours or a shape nobody anticipated: counted, not fatal.
    return Outcome.PROTOCOL_ERROR, f"unexpected {type(exc).__name__}: {exc}"


def _root(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _finish_tokens(result: ProbeResult, decoder: Decoder, prompt_chars: int) -> None:
    tokens = decoder.usage
    if tokens.output is None and result.chunks:
        # No usage report: estimate, and say so. Never fewer tokens than text chunks seen.
        tokens.output = max(result.chunks, estimate_tokens(result.generated_chars))
        tokens.source = "estimated"
    if tokens.input is None and tokens.output is not None:
        tokens.input = estimate_tokens(prompt_chars)
        tokens.source = "estimated"
    result.tokens = tokens


def _finish_cost(result: ProbeResult, decoder: Decoder, price: Price | None) -> None:
    if decoder.reported_cost is not None:
        result.cost_usd, result.cost_source = decoder.reported_cost, "reported"
    elif price is not None and result.tokens.output is not None:
        result.cost_usd, result.cost_source = price.cost(result.tokens), "pricing"
