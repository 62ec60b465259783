"""Three ways to time one streamed chat completion, measured side by side.

- `ours`: `speed_kings.probe.run_probe`, exactly as the exporter runs it (arrival times
  taken per socket read, before parsing).
- `openai SDK`: the official client, `AsyncOpenAI(...).chat.completions.create(stream=True)`;
  a token's time is when the SDK hands over the parsed chunk (what a user of it can see).
- `httpx-sse`: a plain `httpx` + `httpx-sse` client that `json.loads` every event.

All three open a fresh connection per request (ours by default; the others send
`Connection: close` or keep no idle connection) and take TTFT as t0 (just before the
request) to the first chunk with non-empty generated text, and tokens/s as
(output tokens - 1) / (last text chunk - first text chunk) with the usage the stream reports.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import httpx
from httpx_sse import aconnect_sse
from openai import AsyncOpenAI

from benchmarks.profiles import API_KEY
from speed_kings.clock import SystemClock
from speed_kings.http import make_session
from speed_kings.probe import ProbeSpec, run_probe
from speed_kings.result import Outcome
from speed_kings.wire.base import Target

MODEL = "sim-model"
PROMPT = "Write a long story about fast tokens."


@dataclass(slots=True)
class Measured:
    """One request as a client saw it. Times are CLOCK_MONOTONIC seconds, the clock the
    simulator's truth uses too (another process on the same machine)."""

    client: str
    request_id: str | None
    t0: float | None  # just before the request was sent
    first: float | None  # when the client saw the first text chunk
    last: float | None  # when the client saw the last text chunk
    ttft: float | None  # as the client reports it
    tokens_per_second: float | None
    chunks: int
    output_tokens: int | None
    cpu_seconds: float  # CPU of this thread from before the request to after the stream
    error: str | None = None


class Client(Protocol):
    name: str

    async def measure(self, base_url: str, max_tokens: int) -> Measured: ...

    async def aclose(self) -> None: ...


def _speed(tokens: int | None, first: float | None, last: float | None) -> float | None:
    if tokens is None or tokens < 2 or first is None or last is None or last <= first:
        return None
    return (tokens - 1) / (last - first)


class _FirstCallClock(SystemClock):
    """The system clock, remembering its first `monotonic()` reading after `arm()`: in
    `run_probe` that reading is t0 (the probe's clock is not read before it)."""

    def __init__(self) -> None:
        self.first: float | None = None

    def arm(self) -> None:
        self.first = None

    def monotonic(self) -> float:
        now = time.monotonic()
        if self.first is None:
            self.first = now
        return now


class Ours:
    name = "ours"

    def __init__(self) -> None:
        self._clock = _FirstCallClock()
        self._session: aiohttp.ClientSession | None = None

    async def measure(self, base_url: str, max_tokens: int) -> Measured:
        if self._session is None:
            self._session = make_session(self._clock)  # fresh connection per probe
        target = Target(
            provider="bench",
            base_url=base_url,
            wire="openai",
            model=MODEL,
            provider_model=MODEL,
            api_key=API_KEY,
        )
        spec = ProbeSpec(target, "bench", PROMPT, max_tokens=max_tokens, timeout=120.0)
        self._clock.arm()
        cpu = time.thread_time()
        result = await run_probe(spec, self._session, self._clock)
        cpu = time.thread_time() - cpu
        t0, ttft, ttlt = self._clock.first, result.time_to_first_token, result.time_to_last_token
        ok = result.outcome is Outcome.SUCCESS
        return Measured(
            client=self.name,
            request_id=result.request_id,
            t0=t0,
            first=None if t0 is None or ttft is None else t0 + ttft,
            last=None if t0 is None or ttlt is None else t0 + ttlt,
            ttft=ttft,
            tokens_per_second=result.output_tokens_per_second,
            chunks=result.chunks,
            output_tokens=result.tokens.output,
            cpu_seconds=cpu,
            error=None if ok else f"{result.outcome.value}: {result.error}",
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class OpenAISDK:
    name = "openai SDK"

    def __init__(self) -> None:
        self._clients: dict[str, AsyncOpenAI] = {}

    def _client(self, base_url: str) -> AsyncOpenAI:
        client = self._clients.get(base_url)
        if client is None:
            client = AsyncOpenAI(
                base_url=base_url,
                api_key=API_KEY,
                max_retries=0,
                timeout=120.0,
                default_headers={"Connection": "close"},  # a fresh connection each time
            )
            self._clients[base_url] = client
        return client

    async def measure(self, base_url: str, max_tokens: int) -> Measured:
        client = self._client(base_url)
        mono = time.monotonic
        first = last = None
        chunks = 0
        output: int | None = None
        request_id: str | None = None
        error: str | None = None
        cpu = time.thread_time()
        t0 = mono()
        try:
            stream = await client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": PROMPT}],
                max_tokens=max_tokens,
                stream=True,
                stream_options={"include_usage": True},
            )
            request_id = stream.response.headers.get("x-request-id")
            async for chunk in stream:
                now = mono()
                if chunk.choices:
                    content = chunk.choices[0].delta.content
                    if content:
                        chunks += 1
                        last = now
                        if first is None:
                            first = now
                if chunk.usage is not None:
                    output = chunk.usage.completion_tokens
        except Exception as exc:  # reported as this request's error, never fatal
            error = f"{type(exc).__name__}: {exc}"
        cpu = time.thread_time() - cpu
        return Measured(
            client=self.name,
            request_id=request_id,
            t0=t0,
            first=first,
            last=last,
            ttft=None if first is None else first - t0,
            tokens_per_second=_speed(output, first, last),
            chunks=chunks,
            output_tokens=output,
            cpu_seconds=cpu,
            error=error,
        )

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()


class HttpxSSE:
    name = "httpx-sse"

    def __init__(self) -> None:
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(max_keepalive_connections=0),  # a fresh connection each time
            timeout=120.0,
        )

    async def measure(self, base_url: str, max_tokens: int) -> Measured:
        mono = time.monotonic
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        headers = {"authorization": f"Bearer {API_KEY}"}
        first = last = None
        chunks = 0
        output: int | None = None
        request_id: str | None = None
        error: str | None = None
        cpu = time.thread_time()
        t0 = mono()
        try:
            async with aconnect_sse(
                self._client,
                "POST",
                f"{base_url}/chat/completions",
                json=body,
                headers=headers,
            ) as source:
                source.response.raise_for_status()
                request_id = source.response.headers.get("x-request-id")
                async for event in source.aiter_sse():
                    now = mono()
                    if event.data.startswith("[DONE]"):
                        break
                    obj = json.loads(event.data)
                    choices = obj.get("choices")
                    if choices:
                        content = (choices[0].get("delta") or {}).get("content")
                        if content:
                            chunks += 1
                            last = now
                            if first is None:
                                first = now
                    usage = obj.get("usage")
                    if usage:
                        output = usage.get("completion_tokens")
        except Exception as exc:  # reported as this request's error, never fatal
            error = f"{type(exc).__name__}: {exc}"
        cpu = time.thread_time() - cpu
        return Measured(
            client=self.name,
            request_id=request_id,
            t0=t0,
            first=first,
            last=last,
            ttft=None if first is None else first - t0,
            tokens_per_second=_speed(output, first, last),
            chunks=chunks,
            output_tokens=output,
            cpu_seconds=cpu,
            error=error,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


CLIENT_NAMES = ("ours", "openai SDK", "httpx-sse")


def make_clients() -> list[Client]:
    return [Ours(), OpenAISDK(), HttpxSSE()]


@dataclass(slots=True)
class Truth:
    """What the simulator says it sent (GET /_sim/requests/{id})."""

    received_at: float
    first_token_sent_at: float
    last_token_sent_at: float
    ttft: float
    tokens_per_second: float | None
    output_tokens: int


async def fetch_truth(session: aiohttp.ClientSession, sim_url: str, request_id: str) -> Truth:
    async with session.get(f"{sim_url}/_sim/requests/{request_id}") as resp:
        resp.raise_for_status()
        data: dict[str, Any] = json.loads(await resp.read())
    return Truth(
        received_at=float(data["received_at"]),
        first_token_sent_at=float(data["first_token_sent_at"]),
        last_token_sent_at=float(data["last_token_sent_at"]),
        ttft=float(data["ttft_seconds"]),
        tokens_per_second=data["output_tokens_per_second"],
        output_tokens=int(data["output_tokens"]),
    )
