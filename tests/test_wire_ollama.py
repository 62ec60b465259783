"""Ollama /api/chat NDJSON decoding, error classification, request building and the
model-loading `prepare` step against a tiny local HTTP server."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from speed_kings.clock import SystemClock
from speed_kings.result import Outcome
from speed_kings.wire import get_wire
from speed_kings.wire.base import StreamError, Target, Wire
from speed_kings.wire.ollama import OllamaDecoder, OllamaWire


def run(lines: list[Any]) -> tuple[OllamaDecoder, list[tuple[int, int]]]:
    decoder = OllamaWire().decoder()
    out = [decoder.feed("", x if isinstance(x, str) else json.dumps(x)) for x in lines]
    return decoder, out


def line(content: str = "", thinking: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking is not None:
        message["thinking"] = thinking
    return {
        "model": "llama3.2",
        "created_at": "2026-11-02T10:00:00.123456Z",
        "message": message,
        "done": False,
    }


FINAL = {
    "model": "llama3.2",
    "created_at": "2026-11-02T10:00:04.9Z",
    "message": {"role": "assistant", "content": ""},
    "done": True,
    "done_reason": "stop",
    "total_duration": 4883583458,
    "load_duration": 1334875,
    "prompt_eval_count": 26,
    "prompt_eval_duration": 342546000,
    "eval_count": 282,
    "eval_duration": 4535599000,
}


def test_reference_transcript() -> None:
    dec, out = run([line("The"), line(" sky"), line(" is blue."), FINAL])
    assert out == [(0, 3), (0, 4), (0, 9), (0, 0)]
    assert dec.done and dec.finish_reason == "stop"
    assert dec.usage.input == 26
    assert dec.usage.output == 282
    assert dec.usage.reasoning is None
    assert dec.usage.cached_input is None
    assert dec.usage.source == "reported"
    assert dec.server_timings == {
        "total": 4.883583458,
        "load": 0.001334875,
        "prompt_eval": 0.342546,
        "eval": 4.535599,
    }
    assert dec.reported_cost is None


def test_thinking_then_content() -> None:
    dec, out = run(
        [
            line("", thinking=""),
            line("", thinking="Okay, the user"),
            line("", thinking=" asks..."),
            line("Answer"),
            {**FINAL, "done_reason": "length", "eval_count": 300},
        ]
    )
    assert out == [(0, 0), (14, 0), (8, 0), (0, 6), (0, 0)]
    assert (dec.finish_reason, dec.usage.output, dec.usage.reasoning) == ("length", 300, None)


def test_line_with_both_thinking_and_content() -> None:
    _, out = run([line("ab", thinking="xyz")])
    assert out == [(3, 2)]


def test_final_line_may_carry_text() -> None:
    dec, out = run([{**FINAL, "message": {"role": "assistant", "content": "!"}}])
    assert out == [(0, 1)] and dec.done


def test_done_without_counts_leaves_usage_unreported() -> None:
    dec, _ = run(
        [line("x"), {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True}]
    )
    assert dec.done
    assert dec.usage.source is None and dec.usage.input is None and dec.usage.output is None
    assert dec.server_timings == {}
    assert dec.finish_reason is None


def test_cached_prompt_without_prompt_eval_count() -> None:
    final = {k: v for k, v in FINAL.items() if not k.startswith("prompt_eval")}
    dec, _ = run([final])
    assert (dec.usage.input, dec.usage.output, dec.usage.source) == (None, 282, "reported")
    assert set(dec.server_timings) == {"total", "load", "eval"}


def test_not_done_until_done_line() -> None:
    dec, _ = run([line("a"), {**line("b"), "done": "true"}])
    assert not dec.done


def test_unknown_fields_and_tool_calls_ignored() -> None:
    _, out = run(
        [
            {
                "message": {"role": "assistant", "content": "", "tool_calls": [{"function": {}}]},
                "done": False,
            },
            {"status": "pulling manifest"},
            {"message": {"role": "assistant", "content": "", "images": None}, "future": 1},
        ]
    )
    assert out == [(0, 0)] * 3


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        ("an error was encountered while running the model: unexpected EOF", Outcome.HTTP_ERROR),
        ("server busy, please try again.  maximum pending requests exceeded", Outcome.OVERLOADED),
        ("Server Overloaded", Outcome.OVERLOADED),
        ({"nested": "object"}, Outcome.HTTP_ERROR),
    ],
)
def test_mid_stream_error_line(error: Any, outcome: Outcome) -> None:
    decoder = OllamaDecoder()
    decoder.feed("", json.dumps(line("partial")))
    with pytest.raises(StreamError) as caught:
        decoder.feed("", json.dumps({"error": error}))
    assert caught.value.info.outcome is outcome
    text = error if isinstance(error, str) else json.dumps(error)
    assert caught.value.info.detail == " ".join(text.split())  # clip() folds whitespace


@pytest.mark.parametrize(
    "data",
    [
        '{"model":"llama3.2","message":{"role":"assistant","content":"Th',
        "[]",
        "42",
        "not json",
        '{"message": "text"}',
        '{"message": {"content": 5}}',
        '{"message": {"content": "", "thinking": ["a"]}}',
        '{"message": [1]}',
        "[" * 60_000,
    ],
)
def test_malformed_lines_raise_value_error(data: str) -> None:
    with pytest.raises(ValueError):
        OllamaDecoder().feed("", data)


# --- classify_error ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "model"),
    [
        ('{"error":"model \\"llama3.2\\" not found, try pulling it first"}', "llama3.2"),
        ('{"error":"model \'qwen3:0.6b\' not found"}', "qwen3:0.6b"),
        ('{"error":"model not found"}', "MODEL"),
    ],
)
def test_classify_404_model_not_found_says_how_to_pull(body: str, model: str) -> None:
    info = OllamaWire().classify_error(404, body)
    assert info.outcome is Outcome.HTTP_ERROR
    assert f"ollama pull {model}" in info.detail
    assert info.detail.startswith(json.loads(body)["error"])


def test_classify_404_page_not_found_hints_at_base_url() -> None:
    info = OllamaWire().classify_error(404, "404 page not found")
    assert info.outcome is Outcome.HTTP_ERROR
    assert info.detail.startswith("404 page not found")
    assert "base_url" in info.detail


@pytest.mark.parametrize(
    ("status", "body", "outcome", "detail"),
    [
        (500, '{"error":"llama runner process has terminated: signal: killed"}', Outcome.HTTP_ERROR,
         "llama runner process has terminated: signal: killed"),
        (503, '{"error":"server busy, please try again.  maximum pending requests exceeded"}',
         Outcome.OVERLOADED, "server busy, please try again. maximum pending requests exceeded"),
        (429, "Too Many Requests", Outcome.RATE_LIMITED, "Too Many Requests"),
        (502, "", Outcome.HTTP_ERROR, "HTTP 502"),
        (400, '{"error": {"message": "odd"}}', Outcome.HTTP_ERROR, '{"message": "odd"}'),
        (401, '{"other": 1}', Outcome.HTTP_ERROR, '{"other": 1}'),
    ],
)  # fmt: skip
def test_classify_other_errors(status: int, body: str, outcome: Outcome, detail: str) -> None:
    info = OllamaWire().classify_error(status, body)
    assert (info.outcome, info.detail, info.retry_after_seconds) == (outcome, detail, None)


# --- build_request ----------------------------------------------------------------------


def target(base_url: str = "http://localhost:11434", **kw: Any) -> Target:
    base: dict[str, Any] = {
        "provider": "ollama",
        "base_url": base_url,
        "wire": "ollama",
        "model": "llama-3.2-3b",
        "provider_model": "llama3.2",
    }
    base.update(kw)
    return Target(**base)


def test_build_request() -> None:
    req = OllamaWire().build_request(target(), "Why is the sky blue? [nonce 1]", 300)
    assert req.method == "POST"
    assert req.url == "http://localhost:11434/api/chat"
    assert req.headers == {
        "content-type": "application/json",
        "accept": "application/x-ndjson",
        "accept-encoding": "identity",
    }
    assert req.json == {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": "Why is the sky blue? [nonce 1]"}],
        "stream": True,
        "options": {"num_predict": 300},
    }


def test_build_request_with_key_and_extras() -> None:
    t = target(
        base_url="https://ollama.internal/",
        api_key="proxy-secret-token",
        extra_body={"options": {"num_ctx": 8192}, "think": True, "keep_alive": "10m"},
        extra_headers={"X-Team": "sre"},
    )
    req = OllamaWire().build_request(t, "p", 128)
    assert req.url == "https://ollama.internal/api/chat"
    assert req.headers["authorization"] == "Bearer proxy-secret-token"
    assert req.headers["x-team"] == "sre"
    assert "proxy-secret-token" not in req.url
    assert req.json["options"] == {"num_predict": 128, "num_ctx": 8192}
    assert (req.json["think"], req.json["keep_alive"]) == (True, "10m")


def test_wire_shape() -> None:
    wire: Wire = OllamaWire()
    assert (wire.name, wire.framing) == ("ollama", "ndjson")
    assert isinstance(get_wire("ollama"), OllamaWire)


# --- prepare against a tiny Ollama look-alike -----------------------------------------------


@dataclass
class FakeOllama:
    url: str = ""
    loaded: list[dict[str, Any]] = field(default_factory=list)
    load_seconds: float = 0.05
    ps_status: int = 200
    generate_status: int = 200
    generate_body: dict[str, Any] | None = None
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)

    async def ps(self, request: web.Request) -> web.Response:
        self.requests.append(("ps", dict(request.headers), None))
        if self.ps_status != 200:
            return web.json_response({"error": "boom"}, status=self.ps_status)
        return web.json_response({"models": self.loaded})

    async def generate(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(("generate", dict(request.headers), body))
        if self.generate_status != 200:
            return web.json_response(self.generate_body, status=self.generate_status)
        await asyncio.sleep(self.load_seconds)
        name = body["model"] if ":" in body["model"] else body["model"] + ":latest"
        ctx = (body.get("options") or {}).get("num_ctx", 4096)
        self.loaded = [m for m in self.loaded if m["name"] != name]
        self.loaded.append({"name": name, "model": name, "size": 1, "context_length": ctx})
        return web.json_response(
            {
                "model": body["model"],
                "created_at": "2026-11-02T10:00:00Z",
                "response": "",
                "done": True,
                "done_reason": "load",
                "load_duration": int(self.load_seconds * 1e9),
            }
        )


@pytest.fixture
async def ollama() -> AsyncIterator[FakeOllama]:
    fake = FakeOllama()
    app = web.Application()
    app.router.add_get("/api/ps", fake.ps)
    app.router.add_post("/api/generate", fake.generate)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


class CountingClock(SystemClock):
    def __init__(self) -> None:
        self.calls = 0

    def monotonic(self) -> float:
        self.calls += 1
        return time.monotonic()


async def test_prepare_loads_once_then_reports_nothing(ollama: FakeOllama) -> None:
    wire, clock = OllamaWire(), CountingClock()
    async with aiohttp.ClientSession() as session:
        first = await wire.prepare(session, target(ollama.url), clock, 5.0)
        assert first is not None
        assert 0.05 <= first < 1.0
        assert clock.calls == 2
        second = await wire.prepare(session, target(ollama.url), clock, 5.0)
        assert second is None
    assert [r[0] for r in ollama.requests] == ["ps", "generate", "ps"]
    assert ollama.requests[1][2] == {"model": "llama3.2", "prompt": "", "stream": False}
    assert all(r[1].get("Connection", "").lower() == "close" for r in ollama.requests)
    assert all("Authorization" not in r[1] for r in ollama.requests)


@pytest.mark.parametrize(
    ("listed", "wanted"),
    [
        ("llama3.2:latest", "llama3.2"),
        ("llama3.2:latest", "llama3.2:latest"),
        ("qwen3:0.6b", "qwen3:0.6b"),
        ("hf.co/bartowski/Llama-3.2-1B-GGUF:Q4_K_M", "hf.co/bartowski/Llama-3.2-1B-GGUF:Q4_K_M"),
        ("localhost:5000/team/model:latest", "localhost:5000/team/model"),
    ],
)  # fmt: skip
async def test_prepare_matches_loaded_names(ollama: FakeOllama, listed: str, wanted: str) -> None:
    ollama.loaded = [
        {"name": "other:latest", "model": "other:latest"},
        {"name": listed, "model": listed},
    ]
    async with aiohttp.ClientSession() as session:
        got = await OllamaWire().prepare(
            session, target(ollama.url, provider_model=wanted), SystemClock(), 5.0
        )
    assert got is None
    assert [r[0] for r in ollama.requests] == ["ps"]


async def test_prepare_does_not_confuse_tags(ollama: FakeOllama) -> None:
    ollama.loaded = [{"name": "qwen3:8b", "model": "qwen3:8b"}]
    ollama.load_seconds = 0
    async with aiohttp.ClientSession() as session:
        got = await OllamaWire().prepare(
            session, target(ollama.url, provider_model="qwen3"), SystemClock(), 5.0
        )
    assert got is not None


async def test_prepare_reloads_with_the_configured_context_and_key(ollama: FakeOllama) -> None:
    ollama.loaded = [
        {"name": "llama3.2:latest", "model": "llama3.2:latest", "context_length": 4096}
    ]
    t = target(ollama.url, api_key="tok", extra_body={"options": {"num_ctx": 8192}})
    async with aiohttp.ClientSession() as session:
        first = await OllamaWire().prepare(session, t, SystemClock(), 5.0)
        second = await OllamaWire().prepare(session, t, SystemClock(), 5.0)
    assert first is not None and second is None
    assert ollama.requests[1][2]["options"] == {"num_ctx": 8192}
    assert all(r[1]["Authorization"] == "Bearer tok" for r in ollama.requests)


async def test_prepare_falls_back_to_loading_when_ps_is_missing(ollama: FakeOllama) -> None:
    ollama.ps_status = 404
    async with aiohttp.ClientSession() as session:
        got = await OllamaWire().prepare(session, target(ollama.url), SystemClock(), 5.0)
    assert got is not None and got >= 0.05


async def test_prepare_without_ps_or_generate_endpoints_skips_preloading(
    ollama: FakeOllama,
) -> None:
    ollama.ps_status = 404
    ollama.generate_status = 404
    ollama.generate_body = None  # aiohttp answers "null"; a Go mux "404 page not found"
    async with aiohttp.ClientSession() as session:
        got = await OllamaWire().prepare(session, target(ollama.url), SystemClock(), 5.0)
    assert got is None
    assert [r[0] for r in ollama.requests] == ["ps", "generate"]


async def test_prepare_without_ps_still_reports_a_missing_model(ollama: FakeOllama) -> None:
    ollama.ps_status = 404
    ollama.generate_status = 404
    ollama.generate_body = {"error": "model 'llama3.2' not found"}
    async with aiohttp.ClientSession() as session:
        with pytest.raises(StreamError) as caught:
            await OllamaWire().prepare(session, target(ollama.url), SystemClock(), 5.0)
    assert "ollama pull llama3.2" in caught.value.info.detail


async def test_prepare_ps_error_status_raises_stream_error(ollama: FakeOllama) -> None:
    ollama.ps_status = 500
    async with aiohttp.ClientSession() as session:
        with pytest.raises(StreamError) as caught:
            await OllamaWire().prepare(session, target(ollama.url), SystemClock(), 5.0)
    assert caught.value.info.outcome is Outcome.HTTP_ERROR
    assert caught.value.info.detail == "GET /api/ps: HTTP 500: boom"


async def test_prepare_missing_model_raises_with_pull_hint(ollama: FakeOllama) -> None:
    ollama.generate_status = 404
    ollama.generate_body = {"error": 'model "nope" not found, try pulling it first'}
    async with aiohttp.ClientSession() as session:
        with pytest.raises(StreamError) as caught:
            await OllamaWire().prepare(
                session, target(ollama.url, provider_model="nope"), SystemClock(), 5.0
            )
    assert caught.value.info.outcome is Outcome.HTTP_ERROR
    assert "ollama pull nope" in caught.value.info.detail
    assert caught.value.info.detail.startswith("loading the model (POST /api/generate): HTTP 404")


async def test_prepare_busy_server_is_overloaded(ollama: FakeOllama) -> None:
    ollama.generate_status = 503
    ollama.generate_body = {"error": "server busy, please try again."}
    async with aiohttp.ClientSession() as session:
        with pytest.raises(StreamError) as caught:
            await OllamaWire().prepare(session, target(ollama.url), SystemClock(), 5.0)
    assert caught.value.info.outcome is Outcome.OVERLOADED


async def test_prepare_times_out(ollama: FakeOllama) -> None:
    ollama.load_seconds = 2.0
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TimeoutError):
            await OllamaWire().prepare(session, target(ollama.url), SystemClock(), 0.2)


async def test_prepare_connection_refused_is_a_client_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            await OllamaWire().prepare(
                session, target(f"http://127.0.0.1:{port}"), SystemClock(), 5.0
            )


# --- property ---------------------------------------------------------------------------

KEYS = [
    "message", "content", "thinking", "role", "done", "done_reason", "error",
    "prompt_eval_count", "eval_count", "total_duration", "load_duration",
    "prompt_eval_duration", "eval_duration",
]  # fmt: skip

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["stop", "server busy", "assistant"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), children, max_size=5)
    ),
    max_leaves=25,
)
payloads = st.one_of(st.text(max_size=40), json_values.map(json.dumps))


@settings(max_examples=400, deadline=None)
@given(st.lists(payloads, min_size=1, max_size=8))
def test_garbage_raises_only_value_error_or_stream_error(lines: list[str]) -> None:
    decoder = OllamaDecoder()
    for data in lines:
        try:
            reasoning, answer = decoder.feed("", data)
        except (ValueError, StreamError):
            continue
        assert reasoning >= 0 and answer >= 0
        assert all(isinstance(v, float) for v in decoder.server_timings.values())


@settings(max_examples=200, deadline=None)
@given(st.integers(100, 599), payloads)
def test_classify_error_never_raises(status: int, body: str) -> None:
    info = OllamaWire().classify_error(status, body)
    assert info.detail and len(info.detail) <= 300
