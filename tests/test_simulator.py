"""The provider simulator over real loopback HTTP: wire shapes, exact truth, pacing, seeds."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest

from speed_kings.simulator import FAULTS, PROFILES, Profile, RequestTruth, Simulator
from speed_kings.simulator.plan import diurnal_load
from speed_kings.simulator.ratelimit import go_duration
from speed_kings.simulator.truth import TruthLog

OPENAI_AUTH = {"Authorization": "Bearer sk-test"}
ANTHROPIC_AUTH = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
GEMINI_AUTH = {"x-goog-api-key": "test-key"}
PROMPT = "Tell me about the speed of inference providers"  # 8 words = 8 input tokens


def quick(name: str, **changes: Any) -> Profile:
    """A built-in profile made quick and exact: no jitter, no diurnal load."""
    base = {
        "ttft_seconds": 0.03,
        "ttft_jitter": 0.0,
        "tokens_per_second": 2000.0,
        "tokens_per_second_jitter": 0.0,
        "diurnal_amplitude": 0.0,
        "keepalive_interval": 0.01,
        "model_load_seconds": 0.2,
    }
    return dataclasses.replace(PROFILES[name], **{**base, **changes})


PROFILE_NAMES = [n for n in PROFILES if n not in ("fast", "crlf", "reasoning")]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    profiles = {name: quick(name) for name in PROFILE_NAMES}
    profiles["think_anthropic"] = quick("anthropic", reasoning_tokens=6)
    profiles["think_gemini"] = quick("gemini", reasoning_tokens=10)
    profiles["think_ollama"] = quick("ollama", reasoning_tokens=4)
    profiles["t2k"] = Profile(name="t2k", ttft_seconds=0.05, tokens_per_second=2000.0)
    simulator = Simulator(profiles, seed=11)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# --- wire helpers -----------------------------------------------------------------------------
def sse_events(raw: bytes) -> list[tuple[str, str]]:
    """(event, data) per SSE event; comments dropped."""
    text = raw.decode().replace("\r\n", "\n")
    events = []
    for block in text.split("\n\n"):
        name, data = "", []
        for line in block.split("\n"):
            if line.startswith(":") or not line:
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if data:
            events.append((name, "\n".join(data)))
    return events


def openai_body(max_tokens: int, include_usage: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "sim-model",
        "stream": True,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return body


async def post(
    http: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, Mapping[str, str], bytes]:
    async with http.post(url, json=body, headers=headers or {}) as resp:
        return resp.status, resp.headers.copy(), await resp.read()


async def openai_stream(
    http: aiohttp.ClientSession, sim: Simulator, scenario: str, max_tokens: int = 30, **kw: Any
) -> tuple[list[dict[str, Any]], bytes, RequestTruth]:
    status, headers, raw = await post(
        http,
        f"{sim.url}/{scenario}/v1/chat/completions",
        openai_body(max_tokens, **kw),
        OPENAI_AUTH,
    )
    assert status == 200, raw
    events = [json.loads(d) for _, d in sse_events(raw) if d != "[DONE]"]
    truth = sim.truth(headers["x-request-id"])
    assert truth is not None
    return events, raw, truth


def assert_times_ordered(truth: RequestTruth) -> None:
    assert truth.headers_sent_at is not None and truth.first_token_sent_at is not None
    assert truth.last_token_sent_at is not None and truth.finished_at is not None
    assert truth.received_at <= truth.headers_sent_at <= truth.first_token_sent_at
    assert truth.first_token_sent_at <= truth.last_token_sent_at <= truth.finished_at
    assert truth.chunk_sent_at == sorted(truth.chunk_sent_at)
    assert truth.chunk_sent_at[0] == truth.first_token_sent_at
    assert truth.chunk_sent_at[-1] == truth.last_token_sent_at
    assert sum(truth.chunk_tokens) == truth.output_tokens


# --- one test per wire: shape, usage == truth ---------------------------------------------------
async def test_openai_stream_usage_equals_truth(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    events, _, truth = await openai_stream(http, sim, "openai", 30)
    role, *middle, finish, usage = events
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    texts = [e["choices"][0]["delta"]["content"] for e in middle]
    assert len(texts) == len(truth.chunk_sent_at) and all(texts)
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert all(e["usage"] is None for e in events[:-1])  # OpenAI's include_usage shape
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == truth.output_tokens == 30
    assert usage["usage"]["prompt_tokens"] == truth.input_tokens == 8
    assert (truth.status, truth.wire, truth.profile, truth.model) == (
        200,
        "openai",
        "openai",
        "sim-model",
    )
    assert_times_ordered(truth)


async def test_anthropic_stream_thinking_then_text(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    body = {
        "model": "claude-test",
        "stream": True,
        "max_tokens": 20,
        "system": "be brief",
        "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}],
    }
    status, headers, raw = await post(
        http, f"{sim.url}/think_anthropic/v1/messages", body, ANTHROPIC_AUTH
    )
    assert status == 200
    events = [(name, json.loads(data)) for name, data in sse_events(raw)]
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert all(name == data["type"] for name, data in events)
    deltas = [d["delta"] for n, d in events if n == "content_block_delta"]
    kinds = [d["type"] for d in deltas]
    assert kinds.index("signature_delta") < kinds.index("text_delta")
    assert (
        kinds[0] == "thinking_delta" and "thinking_delta" not in kinds[kinds.index("text_delta") :]
    )
    truth = sim.truth(headers["x-request-id"])
    assert truth is not None
    start = events[0][1]["message"]["usage"]
    assert start["input_tokens"] == truth.input_tokens == 10
    assert events[-2][1]["usage"]["output_tokens"] == truth.output_tokens == 20
    assert truth.reasoning_tokens == 6
    assert len([k for k in kinds if k.endswith("text_delta") or k == "thinking_delta"]) == len(
        truth.chunk_sent_at
    )
    assert truth.first_answer_token_sent_at is not None and truth.first_token_sent_at is not None
    assert truth.first_answer_token_sent_at > truth.first_token_sent_at
    assert_times_ordered(truth)


async def test_gemini_stream_cumulative_usage_and_thoughts(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
        "generationConfig": {"maxOutputTokens": 50},
    }
    url = f"{sim.url}/think_gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    status, headers, raw = await post(http, url, body, GEMINI_AUTH)
    assert status == 200
    assert b"[DONE]" not in raw
    events = [json.loads(d) for _, d in sse_events(raw)]
    truth = sim.truth(headers["x-request-id"])
    assert truth is not None and truth.model == "gemini-2.5-flash"
    parts = [e["candidates"][0]["content"]["parts"][0] for e in events]
    thought_parts = [p for p in parts if p.get("thought")]
    assert thought_parts and parts[0].get("thought") is True
    assert len([p for p in parts if p["text"]]) == len(truth.chunk_sent_at)
    usages = [e["usageMetadata"] for e in events]
    seen = [u["candidatesTokenCount"] + u["thoughtsTokenCount"] for u in usages]
    assert seen == sorted(seen)  # cumulative
    last = usages[-1]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert last["thoughtsTokenCount"] == truth.reasoning_tokens == 10
    assert last["candidatesTokenCount"] + last["thoughtsTokenCount"] == truth.output_tokens == 50
    assert last["promptTokenCount"] == truth.input_tokens
    assert last["totalTokenCount"] == truth.input_tokens + truth.output_tokens
    assert_times_ordered(truth)


async def test_ollama_ndjson_stream(sim: Simulator, http: aiohttp.ClientSession) -> None:
    body = {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": PROMPT}],
        "options": {"num_predict": 12},
    }
    status, headers, raw = await post(http, f"{sim.url}/think_ollama/api/chat", body)
    assert status == 200 and headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in raw.decode().splitlines()]
    *tokens, final = lines
    assert all(not t["done"] for t in tokens) and final["done"] is True
    assert tokens[0]["message"]["thinking"] and tokens[0]["message"]["content"] == ""
    assert tokens[-1]["message"]["content"] and "thinking" not in tokens[-1]["message"]
    truth = sim.truth(headers["x-request-id"])
    assert truth is not None
    assert final["eval_count"] == truth.output_tokens == 12
    assert final["prompt_eval_count"] == truth.input_tokens
    assert final["load_duration"] == round((truth.model_load_seconds or 0) * 1e9)
    assert final["total_duration"] >= final["load_duration"] + final["eval_duration"]
    assert len(tokens) == len(truth.chunk_sent_at)
    assert_times_ordered(truth)


async def test_ollama_model_load_flow(sim: Simulator, http: aiohttp.ClientSession) -> None:
    base = f"{sim.url}/ollama"
    async with http.get(f"{base}/api/ps") as resp:
        assert (await resp.json())["models"] == []
    began = time.monotonic()
    async with http.post(f"{base}/api/generate", json={"model": "llama3.2"}) as resp:
        loaded = await resp.json()
    assert time.monotonic() - began >= 0.2
    assert loaded["done"] is True and loaded["done_reason"] == "load"
    assert loaded["load_duration"] >= 0.2e9
    async with http.get(f"{base}/api/ps") as resp:
        assert [m["name"] for m in (await resp.json())["models"]] == ["llama3.2"]
    async with http.get(f"{base}/api/tags") as resp:
        assert "llama3.2" in [m["name"] for m in (await resp.json())["models"]]
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}
    _, headers, raw = await post(http, f"{base}/api/chat", {**body, "options": {"num_predict": 5}})
    final = json.loads(raw.decode().splitlines()[-1])
    assert final["load_duration"] < 0.01e9  # already in memory
    # keep_alive 0 unloads; the next chat pays the load again, outside TTFT's planned part.
    await post(http, f"{base}/api/generate", {"model": "llama3.2", "keep_alive": 0})
    async with http.get(f"{base}/api/ps") as resp:
        assert (await resp.json())["models"] == []
    _, headers, raw = await post(http, f"{base}/api/chat", body)
    truth = sim.truth(headers["x-request-id"])
    assert truth is not None and truth.model_load_seconds is not None
    assert truth.model_load_seconds >= 0.2
    final = json.loads(raw.decode().splitlines()[-1])
    assert final["load_duration"] == round(truth.model_load_seconds * 1e9)


# --- pacing and throughput ----------------------------------------------------------------------
async def test_pacing_matches_tokens_per_second(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    _, _, truth = await openai_stream(http, sim, "t2k", 400)
    assert truth.output_tokens == len(truth.chunk_sent_at) == 400
    assert truth.ttft_seconds is not None and 0.05 <= truth.ttft_seconds < 0.05 + 0.05
    tps = truth.output_tokens_per_second
    assert tps is not None and abs(tps - 2000) / 2000 < 0.05, tps
    spacing = (truth.chunk_sent_at[-1] - truth.chunk_sent_at[0]) / 399
    assert abs(spacing - 1 / 2000) / (1 / 2000) < 0.05


async def test_sustains_20000_tokens_per_second(http: aiohttp.ClientSession) -> None:
    profile = Profile(name="blast", ttft_seconds=0.01, tokens_per_second=20_000.0)
    simulator = Simulator({"blast": profile})
    await simulator.start()
    try:
        async with http.post(
            f"{simulator.url}/blast/v1/chat/completions",
            json=openai_body(4000),
            headers=OPENAI_AUTH,
        ) as resp:
            async for _ in resp.content.iter_any():
                pass
            truth = simulator.truth(resp.headers["x-request-id"])
    finally:
        await simulator.stop()
    assert truth is not None and truth.output_tokens == len(truth.chunk_sent_at) == 4000
    tps = truth.output_tokens_per_second
    assert tps is not None and tps > 0.8 * 20_000, tps  # 0.2 s of stream; shared machine


async def test_chunks_of_several_tokens(sim: Simulator, http: aiohttp.ClientSession) -> None:
    events, _, truth = await openai_stream(http, sim, "cerebras", 10)  # 4 tokens per chunk
    assert truth.chunk_tokens == [4, 4, 2]
    assert events[-1]["usage"]["completion_tokens"] == 10


# --- determinism --------------------------------------------------------------------------------
async def _session(seed: int, http: aiohttp.ClientSession) -> tuple[list[str], list[int]]:
    jittery = dataclasses.replace(
        PROFILES["openai"], ttft_seconds=0.01, tokens_per_second=5000.0, tokens_per_chunk=3
    )
    flaky = Profile(
        name="flaky", ttft_seconds=0.0, tokens_per_second=5000.0, fault_rates={"server_error": 0.5}
    )
    simulator = Simulator({"jittery": jittery, "flaky": flaky}, seed=seed)
    await simulator.start()
    texts, statuses = [], []
    try:
        for scenario in ("jittery", "fast", "reasoning", "jittery"):
            events, _, _ = await openai_stream(http, simulator, scenario, 20)
            deltas = [c["delta"] for e in events for c in e["choices"]]
            texts.append("".join(d.get("content") or d.get("reasoning") or "" for d in deltas))
        for _ in range(10):
            url = f"{simulator.url}/flaky/v1/chat/completions"
            statuses.append((await post(http, url, openai_body(5), OPENAI_AUTH))[0])
    finally:
        await simulator.stop()
    return texts, statuses


async def test_same_seed_same_text_and_faults(http: aiohttp.ClientSession) -> None:
    first, second, other = await _session(5, http), await _session(5, http), await _session(6, http)
    assert first == second
    assert first[0] != other[0]
    assert first[0][0] != first[0][3]  # each request draws its own text
    assert {200, 500} == set(first[1])  # the 50% fault rate really draws both


async def test_same_seed_same_jitter() -> None:
    from speed_kings.simulator.plan import make_plan

    profile = PROFILES["deepseek"]
    plans = [
        make_plan(profile, seed=3, sequence=n, url_fault=None, max_tokens=50, unix_time=3 * 3600)
        for n in range(5)
    ]
    again = [
        make_plan(profile, seed=3, sequence=n, url_fault=None, max_tokens=50, unix_time=3 * 3600)
        for n in range(5)
    ]
    assert plans == again
    assert len({p.ttft_seconds for p in plans}) == 5  # jitter varies per request
    assert all(0.9 * 0.7 <= p.ttft_seconds <= 0.9 * 1.3 for p in plans)


# --- profile-specific shapes ----------------------------------------------------------------
async def test_deepseek_role_null_keepalive_reasoning_content_cache_usage(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    events, raw, truth = await openai_stream(http, sim, "deepseek", 25, include_usage=False)
    assert b": keep-alive\n\n" in raw
    first_text = re.search(rb'"reasoning_content":"[^"]', raw)
    assert first_text is not None and raw.index(b": keep-alive") < first_text.start()
    delta = events[0]["choices"][0]["delta"]
    assert delta == {"role": "assistant", "content": None, "reasoning_content": ""}
    assert "reasoning_content" in events[1]["choices"][0]["delta"]
    finish = events[-1]
    assert finish["choices"][0]["finish_reason"] == "stop"
    usage = finish["usage"]
    assert usage["completion_tokens"] == truth.output_tokens == 25
    assert usage["completion_tokens_details"]["reasoning_tokens"] == truth.reasoning_tokens == 20
    assert usage["prompt_cache_miss_tokens"] == truth.input_tokens
    assert usage["prompt_cache_hit_tokens"] == 0


async def test_groq_x_groq_usage(sim: Simulator, http: aiohttp.ClientSession) -> None:
    events, _, truth = await openai_stream(http, sim, "groq", 10, include_usage=False)
    assert events[0]["x_groq"]["id"].startswith("req_")
    x_groq = events[-1]["x_groq"]["usage"]
    assert x_groq["completion_tokens"] == truth.output_tokens == 10
    assert {"queue_time", "prompt_time", "completion_time", "total_time"} <= set(x_groq)
    assert "usage" not in events[-1]


async def test_moonshot_choice_usage(sim: Simulator, http: aiohttp.ClientSession) -> None:
    events, _, truth = await openai_stream(http, sim, "moonshot", 10)
    choice = events[-1]["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["usage"]["completion_tokens"] == truth.output_tokens


async def test_openrouter_processing_comment_and_cost(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    events, raw, truth = await openai_stream(http, sim, "openrouter", 10, include_usage=False)
    assert b": OPENROUTER PROCESSING\n\n" in raw
    usage = events[-1]["usage"]
    assert usage["completion_tokens"] == truth.output_tokens
    expected = (truth.input_tokens * 0.59 + truth.output_tokens * 0.79) / 1e6
    assert usage["cost"] == pytest.approx(expected) and truth.reported_cost == usage["cost"]


async def test_crlf_without_space_and_without_done(
    http: aiohttp.ClientSession,
) -> None:
    simulator = Simulator()
    await simulator.start()
    try:
        events, raw, truth = await openai_stream(http, simulator, "crlf", 6)
    finally:
        await simulator.stop()
    assert raw.startswith(b"data:{") and b"\r\n\r\ndata:{" in raw and raw.endswith(b"}\r\n\r\n")
    assert (
        b"data: " not in raw and b"[DONE]" not in raw and b"\n\n" not in raw.replace(b"\r\n", b"")
    )
    assert events[-1]["usage"]["completion_tokens"] == truth.output_tokens == 6


async def test_zai_repeats_role_and_usage_on_finish(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    events, _, truth = await openai_stream(http, sim, "zai", 20, include_usage=False)
    assert all(e["choices"][0]["delta"]["role"] == "assistant" for e in events)
    assert "reasoning_content" in events[0]["choices"][0]["delta"]  # no role-only chunk
    assert events[-1]["usage"]["completion_tokens"] == truth.output_tokens


async def test_usage_only_when_asked_for_separate_placement(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    events, _, _ = await openai_stream(http, sim, "openai", 5, include_usage=False)
    assert all("usage" not in e for e in events)
    events, _, truth = await openai_stream(http, sim, "sambanova", 20)
    usage = events[-1]["usage"]
    assert usage["completion_tokens"] == truth.output_tokens
    assert usage["time_to_first_token"] == pytest.approx(truth.ttft_seconds, abs=1e-5)
    assert usage["completion_tokens_after_first_per_sec"] > 0


async def test_cerebras_time_info(sim: Simulator, http: aiohttp.ClientSession) -> None:
    events, _, truth = await openai_stream(http, sim, "cerebras", 12)
    info = events[-1]["time_info"]
    assert info["queue_time"] + info["prompt_time"] == pytest.approx(truth.ttft_seconds, abs=1e-5)
    assert events[-1]["usage"]["completion_tokens"] == truth.output_tokens


async def test_fireworks_headers_wait_for_first_token(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    status, headers, _ = await post(
        http, f"{sim.url}/fireworks/v1/chat/completions", openai_body(5), OPENAI_AUTH
    )
    truth = sim.truth(headers["x-request-id"])
    assert status == 200 and truth is not None
    assert float(headers["fireworks-server-time-to-first-token"]) == pytest.approx(0.03, abs=1e-3)
    assert truth.headers_sent_at is not None and truth.first_token_sent_at is not None
    assert truth.headers_sent_at - truth.received_at >= 0.03
    assert truth.first_token_sent_at - truth.headers_sent_at < 0.02


async def test_rate_limit_headers(sim: Simulator, http: aiohttp.ClientSession) -> None:
    _, h1, _ = await post(
        http, f"{sim.url}/openai/v1/chat/completions", openai_body(3), OPENAI_AUTH
    )
    _, h2, _ = await post(
        http, f"{sim.url}/openai/v1/chat/completions", openai_body(3), OPENAI_AUTH
    )
    assert int(h1["x-ratelimit-remaining-requests"]) - 1 == int(
        h2["x-ratelimit-remaining-requests"]
    )
    assert h1["x-ratelimit-reset-tokens"].endswith("s")
    _, h, _ = await post(
        http, f"{sim.url}/cerebras/v1/chat/completions", openai_body(3), OPENAI_AUTH
    )
    assert float(h["x-ratelimit-reset-requests-day"]) <= 86_400
    assert int(h["x-ratelimit-remaining-tokens-minute"]) < int(h["x-ratelimit-limit-tokens-minute"])
    assert [go_duration(s) for s in (0.012, 7.66, 360, 3723.5)] == [
        "12ms",
        "7.66s",
        "6m0s",
        "1h2m3.5s",
    ]


async def test_diurnal_load_peaks_at_15_utc(http: aiohttp.ClientSession) -> None:
    assert diurnal_load(15 * 3600) == pytest.approx(1.0)
    assert diurnal_load(3 * 3600) == pytest.approx(0.0)

    class AtHour:
        def __init__(self, hour: int) -> None:
            self.hour = hour

        def monotonic(self) -> float:
            return time.monotonic()

        def time(self) -> float:
            return 1_800_000_000 - 1_800_000_000 % 86_400 + self.hour * 3600

    profile = Profile(
        name="daily", ttft_seconds=0.05, tokens_per_second=200.0, diurnal_amplitude=1.0
    )
    ttfts = {}
    for hour in (3, 15):
        simulator = Simulator({"daily": profile}, clock=AtHour(hour))
        await simulator.start()
        try:
            _, _, truth = await openai_stream(http, simulator, "daily", 11)
        finally:
            await simulator.stop()
        assert truth.ttft_seconds is not None and truth.output_tokens_per_second is not None
        ttfts[hour] = (truth.ttft_seconds, truth.output_tokens_per_second)
    assert 0.05 <= ttfts[3][0] < 0.09 and 0.10 <= ttfts[15][0] < 0.14
    assert ttfts[15][1] < 0.6 * ttfts[3][1]  # tokens/s halved at the peak


# --- requests the simulator refuses ---------------------------------------------------------
async def test_missing_auth_is_401_in_each_wire(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    status, headers, raw = await post(http, f"{sim.url}/openai/v1/chat/completions", openai_body(3))
    assert status == 401 and json.loads(raw)["error"]["code"] == "invalid_api_key"
    assert sim.truth(headers["x-request-id"]).status == 401  # type: ignore[union-attr]
    body = {"model": "m", "stream": True, "max_tokens": 3, "messages": []}
    status, _, raw = await post(http, f"{sim.url}/anthropic/v1/messages", body, {"x-api-key": "k"})
    assert status == 401 and json.loads(raw)["error"]["type"] == "authentication_error"
    url = f"{sim.url}/gemini/v1beta/models/g:streamGenerateContent?alt=sse"
    status, _, raw = await post(http, url, {"contents": []})
    assert status == 401 and json.loads(raw)["error"]["status"] == "UNAUTHENTICATED"
    status, _, _ = await post(http, f"{url}&key=abc", {"contents": []})
    assert status == 200


async def test_unknown_scenario_and_non_streaming_requests(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    status, headers, raw = await post(http, f"{sim.url}/nope/v1/chat/completions", {}, OPENAI_AUTH)
    message = json.loads(raw)["error"]["message"]
    assert status == 404 and "groq" in message and "cerebras" in message
    assert headers["x-request-id"].startswith("sim-")
    status, _, raw = await post(http, f"{sim.url}/groq@meteor/v1/messages", {}, ANTHROPIC_AUTH)
    assert status == 404 and "rate_limit" in json.loads(raw)["error"]["message"]
    status, _, raw = await post(
        http,
        f"{sim.url}/openai/v1/chat/completions",
        {**openai_body(3), "stream": False},
        OPENAI_AUTH,
    )
    assert status == 400 and "stream" in json.loads(raw)["error"]["message"]
    status, _, raw = await post(http, f"{sim.url}/ollama/api/chat", {"model": "m", "stream": False})
    assert status == 400 and "stream" in json.loads(raw)["error"]
    body = {"model": "m", "stream": True, "messages": []}
    status, _, raw = await post(http, f"{sim.url}/anthropic/v1/messages", body, ANTHROPIC_AUTH)
    assert status == 400 and json.loads(raw)["error"]["type"] == "invalid_request_error"
    async with http.get(f"{sim.url}/no/such/route/here") as resp:
        assert resp.status == 404 and resp.headers["x-request-id"].startswith("sim-")


async def test_default_profile_routes_without_prefix(http: aiohttp.ClientSession) -> None:
    simulator = Simulator(default_profile="fast")
    await simulator.start()
    try:
        status, headers, _ = await post(
            http, f"{simulator.url}/v1/chat/completions", openai_body(4), OPENAI_AUTH
        )
    finally:
        await simulator.stop()
    truth = simulator.truth(headers["x-request-id"])
    assert status == 200 and truth is not None and truth.profile == "fast"


# --- truth endpoints and bookkeeping --------------------------------------------------------
async def test_truth_endpoints(sim: Simulator, http: aiohttp.ClientSession) -> None:
    _, _, truth = await openai_stream(http, sim, "t2k", 5)
    async with http.get(f"{sim.url}/_sim/requests/{truth.request_id}") as resp:
        assert await resp.json() == json.loads(json.dumps(truth.to_dict()))
    async with http.get(f"{sim.url}/_sim/requests/sim-999999") as resp:
        assert resp.status == 404
    async with http.get(f"{sim.url}/_sim/requests") as resp:
        assert [t["request_id"] for t in await resp.json()] == [t.request_id for t in sim.truths()]
    async with http.get(f"{sim.url}/_sim/profiles") as resp:
        profiles = await resp.json()
    assert set(PROFILES) <= set(profiles) and profiles["groq"]["usage_placement"] == "x_groq"
    ids = [t.request_id for t in sim.truths()]
    assert ids == sorted(ids) and all(i.startswith("sim-") for i in ids)


def test_truth_log_is_bounded_and_properties() -> None:
    log = TruthLog(limit=3)
    for n in range(5):
        log.add(RequestTruth(f"sim-{n}", "p", None, "openai"))
    assert [t.request_id for t in log.all()] == ["sim-2", "sim-3", "sim-4"]
    assert log.get("sim-0") is None
    truth = RequestTruth("x", "p", None, "openai", received_at=1.0, output_tokens=11)
    truth.first_token_sent_at, truth.last_token_sent_at = 1.5, 2.5
    assert truth.ttft_seconds == 0.5 and truth.output_tokens_per_second == 10.0
    truth.output_tokens = 1
    assert truth.output_tokens_per_second is None


def test_profiles_are_immutable_and_validated() -> None:
    with pytest.raises(TypeError):
        PROFILES["x"] = Profile()  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROFILES["groq"].ttft_seconds = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown faults"):
        Profile(fault_rates={"meteor": 0.1})
    with pytest.raises(ValueError, match="tokens_per_second"):
        Profile(tokens_per_second=0)
    with pytest.raises(ValueError):
        Simulator(default_profile="nope")
    assert {"fast", "crlf", "reasoning", "ollama", "anthropic", "gemini"} <= set(PROFILES)
    assert "rate_limit" in FAULTS and PROFILES["ollama"].require_auth is False
