"""Anthropic Messages stream decoding, error classification and request building."""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speed_kings.clock import SystemClock
from speed_kings.result import Outcome
from speed_kings.wire import get_wire
from speed_kings.wire.anthropic import AnthropicDecoder, AnthropicWire
from speed_kings.wire.base import StreamError, Target, Wire

Event = tuple[str, Any]


def run(events: list[Event]) -> tuple[AnthropicDecoder, list[tuple[int, int]]]:
    decoder = AnthropicWire().decoder()
    out = [
        decoder.feed(name, data if isinstance(data, str) else json.dumps(data))
        for name, data in events
    ]
    return decoder, out


def message_start(**usage: int) -> Event:
    return (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_01",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-sonnet-4-5",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": usage,
            },
        },
    )


def block_start(index: int, block: dict[str, Any]) -> Event:
    return (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


def delta(index: int, **body: Any) -> Event:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": body})


def block_stop(index: int) -> Event:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def message_delta(stop_reason: str | None, **usage: Any) -> Event:
    return (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": usage,
        },
    )


PING: Event = ("ping", {"type": "ping"})
STOP: Event = ("message_stop", {"type": "message_stop"})


def first(out: list[tuple[int, int]], which: int) -> int:
    return next(i for i, chunk in enumerate(out) if chunk[which] > 0)


def test_reference_text_stream() -> None:
    dec, out = run(
        [
            message_start(input_tokens=25, output_tokens=1),
            block_start(0, {"type": "text", "text": ""}),
            PING,
            delta(0, type="text_delta", text="Hello"),
            delta(0, type="text_delta", text=", world"),
            block_stop(0),
            message_delta("end_turn", output_tokens=30),
            STOP,
        ]
    )
    assert out == [(0, 0), (0, 0), (0, 0), (0, 5), (0, 7), (0, 0), (0, 0), (0, 0)]
    assert dec.usage.input == 25
    assert dec.usage.output == 30
    assert dec.usage.cached_input is None
    assert dec.usage.reasoning is None
    assert dec.usage.source == "reported"
    assert dec.finish_reason == "end_turn"
    assert dec.done


def test_output_tokens_from_message_start_until_message_delta() -> None:
    dec, _ = run([message_start(input_tokens=12, output_tokens=1)])
    assert (dec.usage.input, dec.usage.output, dec.usage.source) == (12, 1, "reported")
    assert not dec.done


def test_thinking_before_text_and_signature_carries_no_text() -> None:
    dec, out = run(
        [
            message_start(input_tokens=40, output_tokens=4),
            block_start(0, {"type": "thinking", "thinking": ""}),
            delta(0, type="thinking_delta", thinking="Let me think"),
            PING,
            delta(0, type="thinking_delta", thinking=" about it."),
            delta(0, type="signature_delta", signature="EqQBCkgIARABGAIiQL" * 4),
            block_stop(0),
            block_start(1, {"type": "text", "text": ""}),
            delta(1, type="text_delta", text="42"),
            block_stop(1),
            message_delta("max_tokens", output_tokens=256),
            STOP,
        ]
    )
    assert out[2] == (12, 0)
    assert out[4] == (10, 0)
    assert out[5] == (0, 0)
    assert out[8] == (0, 2)
    assert first(out, 0) == 2 < first(out, 1) == 8
    # output_tokens includes thinking; Anthropic does not report the split.
    assert (dec.usage.output, dec.usage.reasoning) == (256, None)
    assert dec.finish_reason == "max_tokens"
    assert dec.done


def test_block_start_may_carry_initial_text() -> None:
    _, out = run(
        [
            block_start(0, {"type": "thinking", "thinking": "Hmm"}),
            block_start(1, {"type": "text", "text": "Hi"}),
            block_start(2, {"type": "text"}),
            block_start(3, {"type": "text", "text": None}),
        ]
    )
    assert out == [(3, 0), (0, 2), (0, 0), (0, 0)]


def test_non_text_blocks_and_deltas_carry_no_generated_text() -> None:
    _, out = run(
        [
            block_start(0, {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}),
            block_start(1, {"type": "tool_use", "id": "toolu_01", "name": "get", "input": {}}),
            delta(1, type="input_json_delta", partial_json='{"location": "San Fra'),
            delta(2, type="citations_delta", citation={"type": "char_location"}),
            delta(2, type="some_future_delta", text="not counted"),
        ]
    )
    assert out == [(0, 0)] * 5


def test_cache_tokens_count_as_input_and_cache_reads_as_cached() -> None:
    dec, _ = run(
        [
            message_start(
                input_tokens=5,
                cache_creation_input_tokens=100,
                cache_read_input_tokens=2000,
                output_tokens=1,
            ),
            message_delta("end_turn", output_tokens=80),
            STOP,
        ]
    )
    assert dec.usage.input == 2105
    assert dec.usage.cached_input == 2000
    assert dec.usage.output == 80


def test_message_delta_cumulative_input_fields_update_usage() -> None:
    dec, _ = run(
        [
            message_start(input_tokens=10, cache_read_input_tokens=0, output_tokens=1),
            message_delta(
                "end_turn",
                input_tokens=12,
                cache_creation_input_tokens=None,
                cache_read_input_tokens=3,
                output_tokens=77,
            ),
        ]
    )
    assert (dec.usage.input, dec.usage.cached_input, dec.usage.output) == (15, 3, 77)


def test_message_delta_without_usage_numbers_leaves_source_unset() -> None:
    dec, _ = run([message_delta("end_turn")])
    assert dec.usage.source is None and dec.usage.output is None
    assert dec.finish_reason == "end_turn"


def test_event_name_missing_falls_back_to_data_type() -> None:
    dec, out = run(
        [
            (
                "",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "abc"},
                },
            ),
            ("", {"type": "message_stop"}),
        ]
    )
    assert out == [(0, 3), (0, 0)]
    assert dec.done


def test_unknown_events_are_ignored() -> None:
    dec, out = run(
        [
            ("brand_new_event", {"type": "brand_new_event", "whatever": [1, 2]}),
            ("", {"type": "also_new"}),
            ("", {"no_type": True}),
        ]
    )
    assert out == [(0, 0)] * 3
    assert not dec.done and dec.usage.source is None


def test_stream_without_message_stop_is_not_done() -> None:
    dec, _ = run(
        [
            message_start(input_tokens=3, output_tokens=1),
            delta(0, type="text_delta", text="partial"),
            message_delta("end_turn", output_tokens=2),
        ]
    )
    assert not dec.done


@pytest.mark.parametrize(
    ("kind", "outcome"),
    [
        ("overloaded_error", Outcome.OVERLOADED),
        ("rate_limit_error", Outcome.RATE_LIMITED),
        ("api_error", Outcome.HTTP_ERROR),
        ("invalid_request_error", Outcome.HTTP_ERROR),
    ],
)
def test_mid_stream_error_event(kind: str, outcome: Outcome) -> None:
    decoder = AnthropicDecoder()
    decoder.feed("ping", '{"type": "ping"}')
    body = {"type": "error", "error": {"type": kind, "message": "Overloaded"}}
    with pytest.raises(StreamError) as caught:
        decoder.feed("error", json.dumps(body))
    assert caught.value.info.outcome is outcome
    assert caught.value.info.detail == f"{kind}: Overloaded"
    assert caught.value.info.retry_after_seconds is None


def test_mid_stream_error_detail_is_clipped() -> None:
    body = {"type": "error", "error": {"type": "api_error", "message": "x" * 5000}}
    with pytest.raises(StreamError) as caught:
        AnthropicDecoder().feed("error", json.dumps(body))
    assert len(caught.value.info.detail) <= 300


def test_error_event_with_plain_text_data_is_still_a_stream_error() -> None:
    with pytest.raises(StreamError) as caught:
        AnthropicDecoder().feed("error", "upstream connect error")
    assert caught.value.info.outcome is Outcome.HTTP_ERROR
    assert "upstream connect error" in caught.value.info.detail


def test_error_type_without_event_name_is_a_stream_error() -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(StreamError) as caught:
        AnthropicDecoder().feed("", json.dumps(body))
    assert caught.value.info.outcome is Outcome.OVERLOADED


@pytest.mark.parametrize(
    ("event", "data"),
    [
        ("content_block_delta", '{"type": "content_block_delta", "delta": {"type": "text_d'),
        ("content_block_delta", "[1, 2]"),
        ("content_block_delta", '"just a string"'),
        ("content_block_delta", '{"type": "content_block_delta"}'),
        ("content_block_delta", '{"delta": {"type": "text_delta"}}'),
        ("content_block_delta", '{"delta": {"type": "text_delta", "text": 5}}'),
        ("content_block_delta", '{"delta": {"type": "thinking_delta", "thinking": null}}'),
        ("content_block_delta", '{"delta": "text"}'),
        ("content_block_start", '{"content_block": {"type": "text", "text": ["a"]}}'),
        ("message_start", '{"type": "message_start"}'),
        ("message_start", '{"message": []}'),
        ("message_stop", "[DONE]"),
        ("ping", ""),
        ("content_block_delta", "[" * 100_000),
    ],
)
def test_malformed_events_raise_value_error(event: str, data: str) -> None:
    with pytest.raises(ValueError):
        AnthropicDecoder().feed(event, data)


# --- classify_error -------------------------------------------------------------------


def test_classify_429_rate_limit() -> None:
    body = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "This request would exceed your account's rate limit.",
        },
        "request_id": "req_011CcR9mkMvXdaiWP4739PSN",
    }
    info = AnthropicWire().classify_error(429, json.dumps(body))
    assert info.outcome is Outcome.RATE_LIMITED
    assert info.detail == "rate_limit_error: This request would exceed your account's rate limit."
    assert info.retry_after_seconds is None


def test_classify_529_overloaded() -> None:
    body = '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    info = AnthropicWire().classify_error(529, body)
    assert info.outcome is Outcome.OVERLOADED
    assert info.detail == "overloaded_error: Overloaded"


def test_classify_spend_limit_is_named_before_the_message() -> None:
    body = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "You have reached your API usage limits: " + "blah " * 100,
            "details": {"error_code": "enforced_spend_limit_reached"},
        },
    }
    info = AnthropicWire().classify_error(429, json.dumps(body))
    assert info.outcome is Outcome.RATE_LIMITED
    assert info.detail.startswith(
        "rate_limit_error (enforced_spend_limit_reached): You have reached your API usage limits"
    )
    assert len(info.detail) <= 300


def test_classify_spend_limit_code_elsewhere_in_body() -> None:
    body = json.dumps(
        {
            "type": "error",
            "error": {"type": "rate_limit_error", "message": "limit"},
            "error_code": "enforced_spend_limit_reached",
        }
    )
    info = AnthropicWire().classify_error(429, body)
    assert "enforced_spend_limit_reached" in info.detail


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(400, Outcome.HTTP_ERROR), (401, Outcome.HTTP_ERROR), (500, Outcome.HTTP_ERROR)],
)
def test_classify_other_statuses(status: int, outcome: Outcome) -> None:
    body = (
        '{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too big"}}'
    )
    info = AnthropicWire().classify_error(status, body)
    assert info.outcome is outcome
    assert info.detail == "invalid_request_error: max_tokens: too big"


def test_classify_non_json_body_is_clipped_text() -> None:
    html = "<html>\n<head><title>502 Bad Gateway</title></head>\n" + "<p>padding</p>" * 100
    info = AnthropicWire().classify_error(502, html)
    assert info.outcome is Outcome.HTTP_ERROR
    assert info.detail.startswith("<html> <head><title>502 Bad Gateway</title>")
    assert len(info.detail) <= 300


@pytest.mark.parametrize("body", ["", "   ", '{"unexpected": true}', "[]", "null"])
def test_classify_odd_bodies(body: str) -> None:
    info = AnthropicWire().classify_error(503, body)
    assert info.outcome is Outcome.OVERLOADED
    assert info.detail


# --- build_request ----------------------------------------------------------------------


def target(**kw: Any) -> Target:
    base: dict[str, Any] = {
        "provider": "anthropic",
        "base_url": "https://api.anthropic.com/v1",
        "wire": "anthropic",
        "model": "claude-sonnet-4.5",
        "provider_model": "claude-sonnet-4-5-20250929",
        "api_key": "sk-ant-test-0123456789",
    }
    base.update(kw)
    return Target(**base)


def test_build_request() -> None:
    req = AnthropicWire().build_request(target(), "Say hi [nonce 42]", 300)
    assert req.method == "POST"
    assert req.url == "https://api.anthropic.com/v1/messages"
    assert req.headers == {
        "x-api-key": "sk-ant-test-0123456789",
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
        "accept": "text/event-stream",
        "accept-encoding": "identity",
    }
    assert req.json == {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 300,
        "stream": True,
        "messages": [{"role": "user", "content": "Say hi [nonce 42]"}],
    }
    assert "sk-ant" not in req.url


def test_build_request_without_key_and_with_extras() -> None:
    extra_body = MappingProxyType(
        {"thinking": MappingProxyType({"type": "enabled", "budget_tokens": 1024})}
    )
    t = target(
        api_key=None,
        base_url="http://localhost:8080/v1/",
        extra_headers={
            "Anthropic-Beta": "interleaved-thinking-2025-05-14",
            "Accept-Encoding": "gzip",
        },
        extra_body=extra_body,
    )
    req = AnthropicWire().build_request(t, "p", 2048)
    assert req.url == "http://localhost:8080/v1/messages"
    assert "x-api-key" not in req.headers
    assert req.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert req.headers["accept-encoding"] == "gzip"  # overridden, not duplicated
    assert "Accept-Encoding" not in req.headers
    assert req.json["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert type(req.json["thinking"]) is dict
    json.dumps(req.json)  # serialisable even though the config mapping was read-only
    req.json["thinking"]["budget_tokens"] = 1
    assert extra_body["thinking"]["budget_tokens"] == 1024


def test_wire_shape() -> None:
    wire: Wire = AnthropicWire()
    assert (wire.name, wire.framing) == ("anthropic", "sse")
    assert isinstance(get_wire("anthropic"), AnthropicWire)
    assert wire.decoder() is not wire.decoder()


async def test_prepare_does_nothing() -> None:
    assert await AnthropicWire().prepare(None, target(), SystemClock(), 1.0) is None  # type: ignore[arg-type]


# --- property: garbage never escapes as anything but ValueError / StreamError ------------

KEYS = [
    "type", "delta", "text", "thinking", "content_block", "message", "usage", "error",
    "message", "input_tokens", "output_tokens", "cache_read_input_tokens",
    "cache_creation_input_tokens", "stop_reason", "details", "error_code", "index",
]  # fmt: skip
VALUES = [
    "text_delta", "thinking_delta", "signature_delta", "text", "thinking", "error",
    "overloaded_error", "rate_limit_error", "message_start", "content_block_delta",
]  # fmt: skip
EVENTS = [
    "", "message_start", "content_block_start", "content_block_delta", "content_block_stop",
    "message_delta", "message_stop", "ping", "error", "other",
]  # fmt: skip

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(VALUES),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), children, max_size=5)
    ),
    max_leaves=25,
)
payloads = st.one_of(st.text(max_size=40), json_values.map(json.dumps))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(EVENTS), payloads), min_size=1, max_size=8))
def test_garbage_raises_only_value_error_or_stream_error(events: list[tuple[str, str]]) -> None:
    decoder = AnthropicDecoder()
    for name, data in events:
        try:
            reasoning, answer = decoder.feed(name, data)
        except (ValueError, StreamError):
            continue
        assert reasoning >= 0 and answer >= 0


@settings(max_examples=200, deadline=None)
@given(st.integers(100, 599), payloads)
def test_classify_error_never_raises(status: int, body: str) -> None:
    info = AnthropicWire().classify_error(status, body)
    assert info.detail and len(info.detail) <= 300
