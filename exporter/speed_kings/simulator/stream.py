"""Pacing a pre-rendered stream onto the socket, recording the truth, and the stream faults.

Every chunk's bytes exist before the first is due; the loop only sleeps to each deadline,
takes the time and writes. When the loop falls behind (asyncio timers have ~1 ms grain, so
at thousands of tokens/s it does), late chunks go out at once: deadlines never drift, so the
average rate stays the profile's.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from speed_kings.simulator.plan import Plan
from speed_kings.simulator.render_base import FILLER, Renderer
from speed_kings.simulator.truth import RequestTruth

FAULT_AFTER_TOKENS = 5  # how many tokens a mid-stream fault lets through first
HUGE_LIMIT = 256 * 1024 * 1024
STALL_POLL_SECONDS = 0.1
_ENDS_STREAM = frozenset({"midstream_error", "reset", "stall", "huge", "truncated"})


@dataclass(slots=True)
class StreamJob:
    request: web.Request
    renderer: Renderer
    plan: Plan
    truth: RequestTruth
    monotonic: Callable[[], float]
    start: float  # the first token is due at start + plan.ttft_seconds
    tokens_per_chunk: int
    headers_at_first_token: bool
    keepalive_interval: float
    extra_headers: dict[str, str]


@dataclass(slots=True)
class _Schedule:
    """The pre-rendered chunks, as parallel lists (cheap to build for 20,000 chunks)."""

    data: list[bytes]
    due: list[float]  # monotonic deadline of each chunk
    tokens: list[int]
    reasoning: list[bool]


def _schedule(job: StreamJob, first_due: float) -> _Schedule:
    plan, k, fault = job.plan, job.tokens_per_chunk, job.plan.fault
    runs: list[tuple[bool, list[str], list[int]]] = []
    for reasoning, tokens in ((True, plan.reasoning), (False, plan.answer)):
        if k == 1:
            runs.append((reasoning, list(tokens), [1] * len(tokens)))
        else:
            parts = [tokens[i : i + k] for i in range(0, len(tokens), k)]
            runs.append((reasoning, ["".join(p) for p in parts], [len(p) for p in parts]))
    if fault == "empty" or fault in _ENDS_STREAM:
        # Render only what will be sent: `keep` chunks, reasoning first.
        keep = 0 if fault == "empty" else _cut(fault, runs[0][2] + runs[1][2])
        trimmed = []
        for reasoning, texts, sizes in runs:
            trimmed.append((reasoning, texts[:keep], sizes[:keep]))
            keep = max(keep - len(texts), 0)
        runs = trimmed
    sched = _Schedule([], [], [], [])
    for reasoning, texts, sizes in runs:
        sched.data.extend(job.renderer.chunks(reasoning, texts, sizes))
        sched.tokens.extend(sizes)
        sched.reasoning.extend([reasoning] * len(sizes))
    # A chunk goes out when its last token is due; the first one at exactly TTFT.
    interval = 1 / plan.tokens_per_second
    sent = -sched.tokens[0] if sched.tokens else 0
    for size in sched.tokens:
        sent += size
        sched.due.append(first_due + sent * interval)
    return sched


def _cut(fault: str | None, sizes: list[int]) -> int:
    """How many chunks (of `sizes` tokens each) go out normally before `fault` strikes."""
    if fault == "truncated":
        return max(1, len(sizes) // 2)
    tokens = 0
    for index, size in enumerate(sizes):
        tokens += size
        if tokens >= FAULT_AFTER_TOKENS:
            return index + 1
    return len(sizes)


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def serve_stream(job: StreamJob) -> web.StreamResponse:
    truth, mono = job.truth, job.monotonic
    resp = web.StreamResponse(status=200, headers=job.renderer.stream_headers())
    resp.headers.update(job.extra_headers)
    try:
        await _run(job, resp)
    except ConnectionResetError:  # aiohttp's ClientConnectionResetError included
        truth.client_disconnected = True
    except asyncio.CancelledError:
        truth.client_disconnected = _gone(job.request)
        raise
    finally:
        if truth.finished_at is None:
            truth.finished_at = mono()
    return resp


async def _sleep_until(mono: Callable[[], float], deadline: float) -> None:
    delay = deadline - mono()
    if delay > 0:
        await asyncio.sleep(delay)


async def _run(job: StreamJob, resp: web.StreamResponse) -> None:
    truth, mono, renderer, fault = job.truth, job.monotonic, job.renderer, job.plan.fault
    first_due = job.start + job.plan.ttft_seconds
    sched = _schedule(job, first_due)

    if job.headers_at_first_token:
        await _sleep_until(mono, first_due)
    truth.status = 200
    truth.headers_sent_at = mono()
    await resp.prepare(job.request)
    await _send(resp, truth, renderer.prelude())

    keepalive = renderer.keepalive()
    if keepalive is not None:
        tick = truth.headers_sent_at + job.keepalive_interval
        while tick < first_due:
            await _sleep_until(mono, tick)
            await _send(resp, truth, keepalive)
            tick += job.keepalive_interval

    count = len(sched.data)
    # Only garbage strikes inside the stream; the other faults' chunks were cut already.
    cut = _cut(fault, sched.tokens) if fault == "garbage" else count
    await _pace(resp, truth, mono, sched, 0, cut)
    next_due = sched.due[-1] + 1 / job.plan.tokens_per_second if count else first_due
    if fault == "garbage":
        await _sleep_until(mono, sched.due[cut] if cut < count else next_due)
        await _send(resp, truth, renderer.garbage())
        await _pace(resp, truth, mono, sched, cut, count)
    elif fault in _ENDS_STREAM:
        await _sleep_until(mono, next_due)
        await _strike(job, resp, fault)
        return
    if not count:  # `empty`: the end comes when the first token would have
        await _sleep_until(mono, first_due)
    await _send(resp, truth, renderer.tail(truth, mono()))
    await resp.write_eof()
    truth.finished_at = mono()


async def _pace(
    resp: web.StreamResponse,
    truth: RequestTruth,
    mono: Callable[[], float],
    sched: _Schedule,
    begin: int,
    end: int,
) -> None:
    """Send chunks [begin, end) on their deadlines: sleep, take the time, write."""
    sent_at, sizes, write = truth.chunk_sent_at, truth.chunk_tokens, resp.write
    for i in range(begin, end):
        delay = sched.due[i] - mono()
        if delay > 0:
            await asyncio.sleep(delay)
        now = mono()
        data, tokens = sched.data[i], sched.tokens[i]
        await write(data)
        # Committed after the write so a refused write (client gone) is not counted.
        sent_at.append(now)
        sizes.append(tokens)
        truth.bytes_sent += len(data)
        truth.output_tokens += tokens
        if sched.reasoning[i]:
            truth.reasoning_tokens += tokens
        elif truth.first_answer_token_sent_at is None:
            truth.first_answer_token_sent_at = now
        if truth.first_token_sent_at is None:
            truth.first_token_sent_at = now
        truth.last_token_sent_at = now


async def _send(resp: web.StreamResponse, truth: RequestTruth, data: bytes) -> None:
    if data:
        await resp.write(data)
        truth.bytes_sent += len(data)


async def _strike(job: StreamJob, resp: web.StreamResponse, fault: str | None) -> None:
    """The faults that end a stream early."""
    truth, request = job.truth, job.request
    if fault == "midstream_error":
        await _send(resp, truth, job.renderer.midstream_error())
    elif fault == "reset":
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Linger 0: close() sends RST, so the client sees a reset, not a clean EOF.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        truth.finished_at = job.monotonic()
        return
    elif fault == "stall":
        # Until the client gives up or stop() cancels us. Polled because an app run without
        # handler_cancellation is never told that the client left.
        while not _gone(request):  # noqa: ASYNC110
            await asyncio.sleep(STALL_POLL_SECONDS)
        truth.client_disconnected = True
        return
    elif fault == "huge":
        await _send(resp, truth, job.renderer.huge_opening())
        while truth.bytes_sent < HUGE_LIMIT:
            await _send(resp, truth, FILLER)  # write() drains: paced by the client's reading
    await resp.write_eof()
    truth.finished_at = job.monotonic()
