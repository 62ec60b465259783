"""How much stream one probe can take: CPU per chunk and the ingest ceiling.

Measured in a quiet event loop (nothing else scheduled), CPU as `time.thread_time()` of the
loop's thread:

- offline: a large pre-rendered OpenAI stream (the simulator's own renderer, so the same
  bytes it sends) decoded in memory. Ours: `SSEParser` + `OpenAIDecoder`, the exact pair
  `run_probe` uses. The others: the whole client over an in-memory transport
  (`MockTransport`), since their parser is not separable from their response object.
  Fed either in 64 KiB reads (a fast stream) or one event per read (a slow one).
- end to end over loopback: one request to the simulator process, CPU from before the
  request to the end of the stream, divided by the text chunks.
- the ceiling: streams of 1 token per chunk at rising rates; the highest rate (as the
  simulator's truth says it sent) whose tokens/s error is within 1% (median of the runs).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import aiohttp
import httpx
import httpx2
from httpx_sse import aconnect_sse
from openai import AsyncOpenAI

from benchmarks.clients import (
    CLIENT_NAMES,
    MODEL,
    PROMPT,
    Client,
    fetch_truth,
    make_clients,
)
from benchmarks.profiles import API_KEY, LADDER, stream_name, stream_tokens
from benchmarks.table import Row, verdict
from speed_kings.simulator import PROFILES
from speed_kings.simulator.plan import make_plan
from speed_kings.simulator.render_base import Context
from speed_kings.simulator.render_openai import OpenAIRenderer
from speed_kings.simulator.truth import RequestTruth
from speed_kings.wire.framing import SSEParser
from speed_kings.wire.openai import OpenAIDecoder

CEILING_ERROR = 0.01  # "within 1% error"
CEILING_TARGET = 50_000  # tokens/s per stream on one core
CPU_RATIO_TARGET = 3.0  # ours at most a third of the SDK's CPU per chunk
E2E_STREAMS = ((500, 1), (20_000, 1), (20_000, 8))
READ_SIZE = 64 * 1024


def render_stream(tokens: int, seed: int) -> list[bytes]:
    """The bytes the simulator sends for an OpenAI stream of `tokens` one-token chunks:
    the role chunk, every text chunk, then finish, usage and [DONE]; one item per event."""
    profile = PROFILES["fast"]
    plan = make_plan(
        profile, seed=seed, sequence=0, url_fault=None, max_tokens=tokens, unix_time=0.0
    )
    ctx = Context("sim-bench", profile, model=MODEL, include_usage=True, created=1.7e9)
    renderer = OpenAIRenderer(ctx)
    texts = list(plan.answer)
    chunks = renderer.chunks(False, texts, [1] * len(texts))
    truth = RequestTruth("sim-bench", "fast", None, "openai", input_tokens=8)
    truth.output_tokens = len(texts)
    tail = renderer.tail(truth, 0.0)
    return [renderer.prelude(), *chunks, *[e + b"\n\n" for e in tail.split(b"\n\n") if e]]


def reads_of(events: Sequence[bytes], size: int | None) -> list[bytes]:
    """The stream as socket reads: one per event (`size` None) or `size`-byte pieces."""
    if size is None:
        return list(events)
    data = b"".join(events)
    return [data[i : i + size] for i in range(0, len(data), size)]


def decode_ours(reads: Sequence[bytes]) -> int:
    parser, decoder = SSEParser(), OpenAIDecoder()
    pfeed, dfeed = parser.feed, decoder.feed
    chunks = 0
    for data in reads:
        for event, payload in pfeed(data):
            reasoning, answer = dfeed(event, payload)
            if reasoning or answer:
                chunks += 1
    for event, payload in parser.close():
        dfeed(event, payload)
    assert decoder.done
    return chunks


async def decode_sdk(reads: Sequence[bytes]) -> int:
    class Body(httpx2.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for data in reads:
                yield data

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=Body())

    transport = httpx2.MockTransport(handler)
    async with httpx2.AsyncClient(transport=transport) as http:
        client = AsyncOpenAI(base_url="http://sim/v1", api_key=API_KEY, http_client=http)
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": PROMPT}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = 0
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                chunks += 1
    return chunks


async def decode_httpx(reads: Sequence[bytes]) -> int:
    class Body(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for data in reads:
                yield data

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Body())

    chunks = 0
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
        aconnect_sse(http, "POST", "http://sim/v1/chat/completions", json={}) as source,
    ):
        async for event in source.aiter_sse():
            if event.data.startswith("[DONE]"):
                break
            obj = json.loads(event.data)
            choices = obj.get("choices")
            if choices and (choices[0].get("delta") or {}).get("content"):
                chunks += 1
    return chunks


async def offline_cpu(
    client: str, events: Sequence[bytes], size: int | None, repeats: int
) -> float:
    """Median CPU microseconds per text chunk decoding `events` in memory."""
    reads = reads_of(events, size)
    runs = []
    for _ in range(repeats):
        cpu = time.thread_time()
        if client == "ours":
            chunks = decode_ours(reads)
        elif client == "openai SDK":
            chunks = await decode_sdk(reads)
        else:
            chunks = await decode_httpx(reads)
        runs.append((time.thread_time() - cpu) / chunks * 1e6)
    return statistics.median(runs)


@dataclass(slots=True)
class IngestResult:
    offline: dict[tuple[str, str], float]  # (read shape, client) -> µs per chunk
    e2e: dict[tuple[int, int, str], float]  # (rate, chunk, client) -> µs per chunk
    ceiling: dict[str, tuple[float | None, bool]]  # client -> (tokens/s, passed every rung)
    ladder: dict[str, list[tuple[int, float, float]]]  # client -> (rung, true tok/s, error)


async def run_ingest(
    sim_url: str, *, offline_tokens: int, repeats: int, ladder_seconds: float, seed: int
) -> IngestResult:
    # Offline: fewer chunks for the slower clients, so each run takes about as long.
    share = {"ours": 1.0, "openai SDK": 0.1, "httpx-sse": 0.5}
    offline: dict[tuple[str, str], float] = {}
    warm = render_stream(200, seed)
    for shape, size in (("64 KiB reads", READ_SIZE), ("1 event per read", None)):
        for name in CLIENT_NAMES:
            events = render_stream(max(1000, int(offline_tokens * share[name])), seed)
            await offline_cpu(name, warm, size, 1)  # warm-up
            offline[(shape, name)] = await offline_cpu(name, events, size, repeats)
    print("  ingest: offline decoding done", file=sys.stderr, flush=True)

    clients = make_clients()
    e2e: dict[tuple[int, int, str], float] = {}
    ladder: dict[str, list[tuple[int, float, float]]] = {c.name: [] for c in clients}
    ceiling: dict[str, tuple[float | None, bool]] = {}
    async with aiohttp.ClientSession() as truths:
        try:
            for client in clients:  # warm-up, unrecorded
                await client.measure(f"{sim_url}/{stream_name(500, 1)}/v1", 20)
            for rate, chunk in E2E_STREAMS:
                for client in clients:
                    runs = []
                    for _ in range(repeats):
                        m = await client.measure(
                            f"{sim_url}/{stream_name(rate, chunk)}/v1",
                            stream_tokens(rate, chunk, 0.5),
                        )
                        if m.error is None and m.chunks:
                            runs.append(m.cpu_seconds / m.chunks * 1e6)
                    if runs:
                        e2e[(rate, chunk, client.name)] = statistics.median(runs)
            print("  ingest: end-to-end CPU done", file=sys.stderr, flush=True)
            for client in clients:
                ceiling[client.name] = await _climb(
                    client, truths, sim_url, repeats, ladder_seconds, ladder[client.name]
                )
            print("  ingest: ceiling ladder done", file=sys.stderr, flush=True)
        finally:
            for client in clients:
                await client.aclose()
    return IngestResult(offline, e2e, ceiling, ladder)


async def _climb(
    client: Client,
    truths: aiohttp.ClientSession,
    sim_url: str,
    repeats: int,
    seconds: float,
    log: list[tuple[int, float, float]],
) -> tuple[float | None, bool]:
    """Rungs of the ladder until one fails; (best passing true rate, every rung passed)."""
    best: float | None = None
    for rung in LADDER:
        errors, rates = [], []
        for _ in range(repeats):
            m = await client.measure(f"{sim_url}/{stream_name(rung, 1)}/v1", int(rung * seconds))
            if m.error is not None or m.request_id is None or m.tokens_per_second is None:
                errors.append(float("inf"))
                continue
            truth = await fetch_truth(truths, sim_url, m.request_id)
            if not truth.tokens_per_second:
                errors.append(float("inf"))
                continue
            rates.append(truth.tokens_per_second)
            errors.append(
                abs(m.tokens_per_second - truth.tokens_per_second) / truth.tokens_per_second
            )
        error = statistics.median(errors)
        rate = statistics.median(rates) if rates else 0.0
        log.append((rung, rate, error))
        if error > CEILING_ERROR:
            return best, False
        best = max(best or 0.0, rate)
    return best, True


def ingest_rows(result: IngestResult, sdk_ratio_rows: list[float]) -> list[Row]:
    """The table's ingest rows; appends ours/SDK CPU ratios to `sdk_ratio_rows`."""
    section = "ingest"
    rows: list[Row] = []

    def cpu_row(measure: str, cond: str, values: dict[str, float]) -> Row:
        ours, sdk, hx = (values.get(c) for c in CLIENT_NAMES)
        result_ = ""
        if ours is not None and sdk is not None:
            sdk_ratio_rows.append(sdk / ours)
            result_ = verdict(ours * CPU_RATIO_TARGET <= sdk)
        return Row(section, measure, cond, ours, sdk, hx, target="<= SDK/3", result=result_)

    for shape in ("64 KiB reads", "1 event per read"):
        rows.append(
            cpu_row(
                "CPU per chunk, offline decode (us)",
                f"1 token/chunk, {shape}",
                {c: v for (s, c), v in result.offline.items() if s == shape},
            )
        )
    for rate, chunk in E2E_STREAMS:
        rows.append(
            cpu_row(
                "CPU per chunk, end to end over loopback (us)",
                f"{rate:,} tok/s x{chunk}",
                {c: v for (r, k, c), v in result.e2e.items() if (r, k) == (rate, chunk)},
            )
        )
    ceilings = [result.ceiling.get(c, (None, False)) for c in CLIENT_NAMES]
    top = LADDER[-1]
    ours_rate, ours_all = ceilings[0]
    cond = f"1 token/chunk, rungs {LADDER[0] // 1000}k..{top // 1000}k tok/s, true rate"
    if ours_all:
        cond += " (ours passed every rung: the simulator tops out near 100k)"
    rows.append(
        Row(
            section,
            "ingest ceiling: tok/s within 1% error",
            cond,
            ours_rate,
            ceilings[1][0],
            ceilings[2][0],
            digits=0,
            target=f">= {CEILING_TARGET:,}",
            result=verdict(ours_rate is not None and ours_rate >= CEILING_TARGET),
        )
    )
    capacity = [result.offline.get(("64 KiB reads", c)) for c in CLIENT_NAMES]
    ours_c, sdk_c, httpx_c = (None if not v else 1e6 / v for v in capacity)
    rows.append(
        Row(
            section,
            "parse capacity, offline (chunks/s on one core)",
            "1e6 / offline CPU per chunk, 64 KiB reads",
            ours_c,
            sdk_c,
            httpx_c,
            digits=0,
        )
    )
    return rows


def ladder_lines(result: IngestResult) -> list[str]:
    out = []
    for client, rungs in result.ladder.items():
        steps = ", ".join(
            f"{rung // 1000}k->{rate:,.0f} ({error * 100:.2f}%)" for rung, rate, error in rungs
        )
        out.append(f"  ladder {client}: {steps}")
    return out
