"""Every simulator fault on every wire, as a real client over loopback sees it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest

from speed_kings.simulator import Profile, RequestTruth, Simulator

WIRES = ("openai", "anthropic", "gemini", "ollama")
ERROR_FAULTS = {"rate_limit": 429, "overloaded": 503, "overloaded_529": 529, "server_error": 500}
FEW = 5  # tokens a mid-stream fault lets through
# What a stream that ended well carries, per wire (usage included for OpenAI's include_usage).
END_MARKERS = (
    b"[DONE]",
    b'"finish_reason":"stop"',
    b'"choices":[],',
    b"message_stop",
    b"finishReason",
    b'"done":true',
)


def request_for(wire: str, max_tokens: int = 20) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(path after the scenario, body, headers) of a streamed request on `wire`."""
    messages = [{"role": "user", "content": "Count the fast providers please"}]
    if wire == "openai":
        body = {"model": "m", "stream": True, "max_tokens": max_tokens, "messages": messages}
        body["stream_options"] = {"include_usage": True}
        return "/v1/chat/completions", body, {"Authorization": "Bearer sk-test"}
    if wire == "anthropic":
        body = {"model": "m", "stream": True, "max_tokens": max_tokens, "messages": messages}
        return "/v1/messages", body, {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    if wire == "gemini":
        body = {
            "contents": [{"parts": [{"text": "Count the fast providers"}]}],
            "generationConfig": {"maxOutputTokens": max_tokens},
        }
        return "/v1beta/models/g:streamGenerateContent?alt=sse", body, {"x-goog-api-key": "k"}
    body = {"model": "m", "messages": messages, "options": {"num_predict": max_tokens}}
    return "/api/chat", body, {}


def messages(wire: str, raw: bytes) -> list[tuple[str, str]]:
    """(event name, data) per SSE event, or ("", line) per NDJSON line; comments dropped."""
    text = raw.decode().replace("\r\n", "\n")
    if wire == "ollama":
        return [("", line) for line in text.split("\n") if line]
    out = []
    for block in text.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        name = next((ln[7:] for ln in lines if ln.startswith("event: ")), "")
        data = [ln[6:] for ln in lines if ln.startswith("data: ")]
        if data:
            out.append((name, "\n".join(data)))
    return out


def text_of(wire: str, name: str, doc: dict[str, Any]) -> str:
    """The generated text an event carries, whatever the wire."""
    if wire == "openai":
        deltas = [c.get("delta", {}) for c in doc.get("choices", [])]
        return "".join((d.get("content") or "") + (d.get("reasoning") or "") for d in deltas)
    if wire == "anthropic":
        delta = doc.get("delta", {}) if name == "content_block_delta" else {}
        return str(delta.get("text", "") or delta.get("thinking", ""))
    if wire == "gemini":
        parts = [p for c in doc.get("candidates", []) for p in c["content"]["parts"]]
        return "".join(p.get("text", "") for p in parts)
    message = doc.get("message", {})
    return str(message.get("content", "") + message.get("thinking", ""))


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(
        {"f": Profile(name="f", ttft_seconds=0.01, tokens_per_second=2000.0)}, seed=2
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, sim: Simulator, wire: str, fault: str, max_tokens: int = 20
) -> tuple[int, Mapping[str, str], bytes, RequestTruth]:
    path, body, headers = request_for(wire, max_tokens)
    async with http.post(f"{sim.url}/f@{fault}{path}", json=body, headers=headers) as resp:
        raw = await resp.read()
        truth = sim.truth(resp.headers["x-request-id"])
        assert truth is not None and truth.fault == fault
        return resp.status, resp.headers.copy(), raw, truth


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("fault", list(ERROR_FAULTS))
async def test_error_status_faults(
    sim: Simulator, http: aiohttp.ClientSession, wire: str, fault: str
) -> None:
    status, headers, raw, truth = await call(http, sim, wire, fault)
    assert status == ERROR_FAULTS[fault] == truth.status
    assert truth.output_tokens == 0 and truth.first_token_sent_at is None
    body = json.loads(raw)
    if wire == "openai":
        code = {"rate_limit": "rate_limit_exceeded", "server_error": "internal_error"}
        assert body["error"]["code"] == code.get(fault, "server_is_overloaded")
        if fault == "rate_limit":
            assert body["error"]["type"] == "rate_limit_exceeded"
    elif wire == "anthropic":
        kind = {"rate_limit": "rate_limit_error", "server_error": "api_error"}
        assert body["type"] == "error"
        assert body["error"]["type"] == kind.get(fault, "overloaded_error")
    elif wire == "gemini":
        kind = {"rate_limit": "RESOURCE_EXHAUSTED", "server_error": "INTERNAL"}
        assert body["error"]["status"] == kind.get(fault, "UNAVAILABLE")
        assert body["error"]["code"] == status
    else:
        assert isinstance(body["error"], str)
    if fault == "rate_limit" and wire == "gemini":
        assert "Retry-After" not in headers
        assert body["error"]["details"][0]["retryDelay"] == "34.4s"
    elif fault == "rate_limit":
        assert headers["Retry-After"] == "7"


@pytest.mark.parametrize("wire", WIRES)
async def test_midstream_error(sim: Simulator, http: aiohttp.ClientSession, wire: str) -> None:
    status, _, raw, truth = await call(http, sim, wire, "midstream_error")
    assert status == 200 == truth.status
    events = messages(wire, raw)
    name, last = events[-1]
    error = json.loads(last)
    if wire == "anthropic":
        assert name == "error" and error["type"] == "error" and error["error"]["type"]
    else:
        assert "error" in error
    texts = [text_of(wire, n, json.loads(d)) for n, d in events[:-1]]
    assert "".join(texts) and truth.output_tokens == FEW == len(truth.chunk_sent_at)
    for marker in END_MARKERS:
        assert marker not in raw


@pytest.mark.parametrize("wire", WIRES)
async def test_truncated_closes_cleanly_without_end_marker(
    sim: Simulator, http: aiohttp.ClientSession, wire: str
) -> None:
    status, _, raw, truth = await call(http, sim, wire, "truncated")  # a clean EOF: no raise
    assert status == 200
    assert 0 < truth.output_tokens < 20
    for marker in END_MARKERS:
        assert marker not in raw
    assert truth.finished_at is not None and not truth.client_disconnected


@pytest.mark.parametrize("wire", WIRES)
async def test_empty_stream_has_no_text(
    sim: Simulator, http: aiohttp.ClientSession, wire: str
) -> None:
    status, _, raw, truth = await call(http, sim, wire, "empty")
    assert status == 200
    events = [(n, json.loads(d)) for n, d in messages(wire, raw) if d != "[DONE]"]
    assert events and not any(text_of(wire, n, d) for n, d in events)
    assert truth.output_tokens == 0 and truth.first_token_sent_at is None
    last = events[-1][1]
    if wire == "openai":
        assert events[0][1]["choices"][0]["delta"]["role"] == "assistant"
        assert raw.endswith(b"data: [DONE]\n\n") and last["usage"]["completion_tokens"] == 0
    elif wire == "anthropic":
        assert events[-2][1]["usage"]["output_tokens"] == 0 and last["type"] == "message_stop"
    elif wire == "gemini":
        assert last["candidates"][0]["finishReason"] == "STOP"
        assert last["usageMetadata"]["candidatesTokenCount"] == 0
    else:
        assert last["done"] is True and last["eval_count"] == 0


@pytest.mark.parametrize("wire", WIRES)
async def test_garbage_chunk_then_the_normal_rest(
    sim: Simulator, http: aiohttp.ClientSession, wire: str
) -> None:
    status, _, raw, truth = await call(http, sim, wire, "garbage")
    assert status == 200
    bad, good = [], []
    for name, data in messages(wire, raw):
        try:
            good.append((name, json.loads(data)))
        except ValueError:
            bad.append(data)
    assert len(bad) == 1 or (wire == "openai" and bad == [bad[0], "[DONE]"])
    assert truth.output_tokens == 20  # everything still arrives around the bad chunk
    assert sum(1 for n, d in good if text_of(wire, n, d)) == len(truth.chunk_sent_at)
    final = good[-1][1]
    reported = {
        "openai": lambda: final["usage"]["completion_tokens"],
        "anthropic": lambda: good[-2][1]["usage"]["output_tokens"],
        "gemini": lambda: final["usageMetadata"]["candidatesTokenCount"],
        "ollama": lambda: final["eval_count"],
    }[wire]()
    assert reported == truth.output_tokens


@pytest.mark.parametrize("wire", WIRES)
async def test_reset_is_a_connection_error(
    sim: Simulator, http: aiohttp.ClientSession, wire: str
) -> None:
    path, body, headers = request_for(wire)
    with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ClientConnectionError)):
        async with http.post(f"{sim.url}/f@reset{path}", json=body, headers=headers) as resp:
            assert resp.status == 200
            await resp.read()


async def test_reset_sends_a_tcp_rst(sim: Simulator) -> None:
    """Read the raw socket: a reset, not a clean end of file."""
    host, port = sim.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    path, body, headers = request_for("openai")
    payload = json.dumps(body).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(
        f"POST /f@reset{path} HTTP/1.1\r\nHost: {host}\r\n{head}"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    try:
        with pytest.raises(ConnectionResetError):
            while await asyncio.wait_for(reader.read(65536), 5):
                pass
    finally:
        writer.close()


async def test_stall_holds_the_stream_and_stop_is_prompt(http: aiohttp.ClientSession) -> None:
    simulator = Simulator({"f": Profile(name="f", ttft_seconds=0.0, tokens_per_second=2000.0)})
    await simulator.start()
    path, body, headers = request_for("openai")
    resp = await http.post(f"{simulator.url}/f@stall{path}", json=body, headers=headers)
    try:
        assert resp.status == 200
        seen = b""
        while seen.count(b'"content":"') < 1 + FEW:  # the role chunk, then the few tokens
            seen += await asyncio.wait_for(resp.content.readany(), 2)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(resp.content.readany(), 0.5)
        truth = simulator.truth(resp.headers["x-request-id"])
        assert truth is not None and truth.finished_at is None and truth.output_tokens == FEW
        began = time.monotonic()
        await simulator.stop()
        assert time.monotonic() - began < 1.0
        assert truth.finished_at is not None
    finally:
        resp.release()
        await simulator.stop()


async def test_stall_ends_when_the_client_leaves(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    path, body, headers = request_for("ollama")
    async with http.post(f"{sim.url}/f@stall{path}", json=body, headers=headers) as resp:
        await asyncio.wait_for(resp.content.readany(), 2)
        request_id = resp.headers["x-request-id"]
        resp.close()  # hang up mid-stream
    truth = sim.truth(request_id)
    assert truth is not None
    for _ in range(50):
        if truth.finished_at is not None:
            break
        await asyncio.sleep(0.02)
    assert truth.finished_at is not None and truth.client_disconnected


@pytest.mark.parametrize("wire", ["openai", "ollama"])
async def test_huge_stream_stops_when_the_client_cuts_it(
    sim: Simulator, http: aiohttp.ClientSession, wire: str
) -> None:
    path, body, headers = request_for(wire)
    limit = 8 * 1024 * 1024
    async with http.post(f"{sim.url}/f@huge{path}", json=body, headers=headers) as resp:
        assert resp.status == 200
        received, newline_after = 0, 0
        async for block in resp.content.iter_any():
            received += len(block)
            newline_after = 0 if b"\n" in block else newline_after + len(block)
            if received > limit:
                break
        request_id = resp.headers["x-request-id"]
    assert newline_after > 1024 * 1024  # one line that never ends
    truth = sim.truth(request_id)
    assert truth is not None and truth.output_tokens == FEW
    await asyncio.sleep(0.2)
    sent = truth.bytes_sent
    await asyncio.sleep(0.2)
    assert truth.bytes_sent == sent < 256 * 1024 * 1024  # the writer stopped with the client
    assert truth.client_disconnected and truth.finished_at is not None


async def test_unknown_fault_in_fault_rates_rejected() -> None:
    with pytest.raises(ValueError, match="add up to more than 1"):
        Profile(fault_rates={"stall": 0.6, "reset": 0.6})
