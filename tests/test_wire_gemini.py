"""Gemini streamGenerateContent (SSE) decoding, error classification and request building."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speed_kings.clock import SystemClock
from speed_kings.result import Outcome
from speed_kings.wire import get_wire
from speed_kings.wire.base import StreamError, Target, Wire
from speed_kings.wire.gemini import GeminiDecoder, GeminiWire, parse_duration


def run(chunks: list[Any]) -> tuple[GeminiDecoder, list[tuple[int, int]]]:
    decoder = GeminiWire().decoder()
    out = [decoder.feed("", c if isinstance(c, str) else json.dumps(c)) for c in chunks]
    return decoder, out


def chunk(
    parts: list[dict[str, Any]] | None,
    usage: dict[str, int] | None = None,
    finish: str | None = None,
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"index": 0}
    if parts is not None:
        candidate["content"] = {"parts": parts, "role": "model"}
    if finish:
        candidate["finishReason"] = finish
    doc: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-2.5-flash"}
    if usage:
        doc["usageMetadata"] = usage
    doc["responseId"] = "mKJ3aO7bHaGFkdUP"
    return doc


def first(out: list[tuple[int, int]], which: int) -> int:
    return next(i for i, c in enumerate(out) if c[which] > 0)


def test_reference_transcript() -> None:
    dec, out = run(
        [
            chunk([{"text": "Here"}], {"promptTokenCount": 10, "totalTokenCount": 10}),
            chunk([{"text": " is a"}], {"promptTokenCount": 10, "totalTokenCount": 10}),
            chunk(
                [{"text": " story."}],
                {"promptTokenCount": 10, "candidatesTokenCount": 49, "totalTokenCount": 59},
                finish="STOP",
            ),
        ]
    )
    assert out == [(0, 4), (0, 5), (0, 7)]
    assert dec.usage.input == 10
    assert dec.usage.output == 49
    assert dec.usage.reasoning is None
    assert dec.usage.cached_input is None
    assert dec.usage.source == "reported"
    assert (dec.finish_reason, dec.done) == ("STOP", True)


def test_usage_before_any_candidate_tokens() -> None:
    dec, _ = run([chunk([{"text": "Hi"}], {"promptTokenCount": 7, "totalTokenCount": 7})])
    assert (dec.usage.input, dec.usage.output, dec.usage.source) == (7, None, "reported")
    assert not dec.done


def test_thinking_model_thoughts_then_answer_then_signature_only_chunk() -> None:
    dec, out = run(
        [
            chunk(
                [{"text": "**Considering the question**\n", "thought": True}],
                {"promptTokenCount": 12, "totalTokenCount": 80, "thoughtsTokenCount": 68},
            ),
            chunk(
                [{"text": "The answer", "thought": False}],
                {
                    "promptTokenCount": 12,
                    "candidatesTokenCount": 2,
                    "totalTokenCount": 82,
                    "thoughtsTokenCount": 68,
                },
            ),
            chunk(
                [{"text": " is 42."}],
                {
                    "promptTokenCount": 12,
                    "candidatesTokenCount": 6,
                    "totalTokenCount": 86,
                    "thoughtsTokenCount": 68,
                    "cachedContentTokenCount": 4,
                },
            ),
            chunk(
                [{"thoughtSignature": "CiQB0e2Kb0pZ" * 10}],
                {
                    "promptTokenCount": 12,
                    "candidatesTokenCount": 6,
                    "totalTokenCount": 86,
                    "thoughtsTokenCount": 68,
                    "cachedContentTokenCount": 4,
                },
                finish="STOP",
            ),
        ]
    )
    assert out == [(29, 0), (0, 10), (0, 7), (0, 0)]
    assert first(out, 0) == 0 < first(out, 1) == 1
    assert dec.usage.input == 12
    assert dec.usage.output == 74  # candidates (6) + thoughts (68)
    assert dec.usage.reasoning == 68
    assert dec.usage.cached_input == 4
    assert dec.done and dec.finish_reason == "STOP"


def test_thinking_phase_counts_thoughts_as_output() -> None:
    dec, _ = run(
        [
            chunk(
                [{"text": "hmm", "thought": True}],
                {"promptTokenCount": 5, "thoughtsTokenCount": 30},
            )
        ]
    )
    assert (dec.usage.output, dec.usage.reasoning) == (30, 30)


def test_mixed_parts_in_one_chunk() -> None:
    _, out = run(
        [
            chunk(
                [
                    {"text": "think", "thought": True},
                    {"text": "say"},
                    {"thoughtSignature": "abc"},
                    {"functionCall": {"name": "f", "args": {}}},
                    {"text": ""},
                ]
            )
        ]
    )
    assert out == [(5, 3)]


@pytest.mark.parametrize("reason", ["MAX_TOKENS", "SAFETY", "RECITATION", "OTHER"])
def test_any_finish_reason_ends_the_stream(reason: str) -> None:
    dec, out = run([chunk(None, {"promptTokenCount": 3, "candidatesTokenCount": 0}, finish=reason)])
    assert out == [(0, 0)]
    assert (dec.finish_reason, dec.done) == (reason, True)
    assert dec.usage.output == 0


def test_no_finish_reason_is_not_done() -> None:
    dec, _ = run([chunk([{"text": "cut off"}]), chunk([{"text": " mid"}])])
    assert not dec.done and dec.finish_reason is None


def test_chunks_without_candidates_or_content_are_ignored() -> None:
    dec, out = run(
        [
            {"usageMetadata": {"promptTokenCount": 9}},
            {"candidates": []},
            {"candidates": [{"index": 0}]},
            {"candidates": [{"content": {"role": "model"}}]},
            {"somethingNew": {"x": 1}},
        ]
    )
    assert out == [(0, 0)] * 5
    assert dec.usage.input == 9 and not dec.done


@pytest.mark.parametrize(
    ("error", "outcome", "retry"),
    [
        (
            {
                "code": 429,
                "status": "RESOURCE_EXHAUSTED",
                "message": "Quota exceeded",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}
                ],
            },
            Outcome.RATE_LIMITED,
            12.0,
        ),
        (
            {"code": 503, "status": "UNAVAILABLE", "message": "The model is overloaded."},
            Outcome.OVERLOADED,
            None,
        ),
        (
            {"code": 500, "status": "INTERNAL", "message": "Internal error"},
            Outcome.HTTP_ERROR,
            None,
        ),
        ({"code": 429, "message": "no status"}, Outcome.RATE_LIMITED, None),
        ({"code": 503}, Outcome.OVERLOADED, None),
        ("just a string", Outcome.HTTP_ERROR, None),
    ],
)
def test_mid_stream_error(error: Any, outcome: Outcome, retry: float | None) -> None:
    decoder = GeminiDecoder()
    decoder.feed("", json.dumps(chunk([{"text": "partial"}])))
    with pytest.raises(StreamError) as caught:
        decoder.feed("", json.dumps({"error": error}))
    assert caught.value.info.outcome is outcome
    assert caught.value.info.retry_after_seconds == retry
    if isinstance(error, dict) and "status" in error:
        assert caught.value.info.detail == f"{error['status']}: {error['message']}"


def test_blocked_prompt_is_an_error_after_recording_usage() -> None:
    decoder = GeminiDecoder()
    blocked = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
    }
    with pytest.raises(StreamError) as caught:
        decoder.feed("", json.dumps(blocked))
    assert caught.value.info.outcome is Outcome.HTTP_ERROR
    assert caught.value.info.detail == "blocked: PROHIBITED_CONTENT"
    assert decoder.usage.input == 8


def test_prompt_feedback_without_block_is_fine() -> None:
    _, out = run([{"promptFeedback": {"safetyRatings": []}}])
    assert out == [(0, 0)]


@pytest.mark.parametrize(
    "data",
    [
        '{"candidates": [{"content": {"parts": [{"text": "abc"',
        "[1, 2, 3]",
        "[DONE]",
        "",
        '{"candidates": "nope"}',
        '{"candidates": {"0": 1}}',
        '{"candidates": [5]}',
        '{"candidates": [{"content": {"parts": [{"text": 5}]}}]}',
        '{"candidates": [{"content": {"parts": ["text"]}}]}',
        '{"candidates": [{"content": "text"}]}',
        '{"usageMetadata": [1]}',
        "{" * 50_000,
    ],
)
def test_malformed_chunks_raise_value_error(data: str) -> None:
    with pytest.raises(ValueError):
        GeminiDecoder().feed("", data)


# --- classify_error ---------------------------------------------------------------------

QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. "
    "* Quota exceeded for metric: generativelanguage.googleapis.com/"
    "generate_content_free_tier_requests, limit: 10, model: gemini-2.5-flash\n"
    "Please retry in 34.456397135s."
)


def quota_body(delay: str | None) -> str:
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/"
                    "generate_content_free_tier_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [{"url": "https://ai.google.dev"}],
        },
    ]
    if delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay})
    return json.dumps(
        {
            "error": {
                "code": 429,
                "message": QUOTA_MESSAGE,
                "status": "RESOURCE_EXHAUSTED",
                "details": details,
            }
        },
        indent=2,
    )


@pytest.mark.parametrize(
    ("delay", "seconds"),
    [
        ("34.4s", 34.4),
        ("1.5s", 1.5),
        ("2s", 2.0),
        ("0.5s", 0.5),
        ("0s", 0.0),
        ("34.456397135s", 34.456397135),
        (None, None),
        ("soon", None),
        ("12", None),
        ("-1s", None),
        ("nans", None),
        ("infs", None),
    ],
)
def test_classify_429_retry_info(delay: str | None, seconds: float | None) -> None:
    info = GeminiWire().classify_error(429, quota_body(delay))
    assert info.outcome is Outcome.RATE_LIMITED
    assert info.detail.startswith("RESOURCE_EXHAUSTED: You exceeded your current quota")
    assert len(info.detail) <= 300
    assert info.retry_after_seconds == seconds


def test_parse_duration_object_form() -> None:
    assert parse_duration({"seconds": 3, "nanos": 500_000_000}) == 3.5
    assert parse_duration({"seconds": "x"}) is None
    assert parse_duration({"seconds": 10**400}) is None
    assert parse_duration(12) is None


def test_classify_503_unavailable() -> None:
    body = json.dumps(
        {
            "error": {
                "code": 503,
                "message": "The model is overloaded. Please try again later.",
                "status": "UNAVAILABLE",
            }
        }
    )
    info = GeminiWire().classify_error(503, body)
    assert info.outcome is Outcome.OVERLOADED
    assert info.detail == "UNAVAILABLE: The model is overloaded. Please try again later."
    assert info.retry_after_seconds is None


def test_classify_400_invalid_argument() -> None:
    body = '{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}'
    info = GeminiWire().classify_error(400, body)
    assert (info.outcome, info.detail) == (
        Outcome.HTTP_ERROR,
        "INVALID_ARGUMENT: API key not valid.",
    )


def test_classify_array_wrapped_error() -> None:
    body = '[{"error":{"code":404,"message":"models/nope is not found","status":"NOT_FOUND"}}]'
    info = GeminiWire().classify_error(404, body)
    assert (info.outcome, info.detail) == (
        Outcome.HTTP_ERROR,
        "NOT_FOUND: models/nope is not found",
    )


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            "<html><body>Error 502 (Server Error)!!1</body></html>",
            "<html><body>Error 502 (Server Error)!!1</body></html>",
        ),
        ("", "HTTP 502"),
        ('{"error": "flat string"}', '{"error": "flat string"}'),
        ('{"error": {"code": 502}}', "HTTP 502"),
    ],
)
def test_classify_odd_bodies(body: str, detail: str) -> None:
    info = GeminiWire().classify_error(502, body)
    assert (info.outcome, info.detail) == (Outcome.HTTP_ERROR, detail)


# --- build_request ----------------------------------------------------------------------


def target(**kw: Any) -> Target:
    base: dict[str, Any] = {
        "provider": "gemini",
        "base_url": "https://generativelanguage.googleapis.com/v1beta",
        "wire": "gemini",
        "model": "gemini-2.5-flash",
        "provider_model": "gemini-2.5-flash",
        "api_key": "AIzaSyTESTKEY0123456789abcdef",
    }
    base.update(kw)
    return Target(**base)


def test_build_request() -> None:
    req = GeminiWire().build_request(target(), "Tell me a story [nonce 7]", 400)
    assert req.method == "POST"
    assert req.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
        ":streamGenerateContent?alt=sse"
    )
    assert "AIza" not in req.url and "key=" not in req.url
    assert req.headers["x-goog-api-key"] == "AIzaSyTESTKEY0123456789abcdef"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["accept-encoding"] == "identity"
    assert req.json == {
        "contents": [{"role": "user", "parts": [{"text": "Tell me a story [nonce 7]"}]}],
        "generationConfig": {"maxOutputTokens": 400},
    }


def test_build_request_model_prefix_and_extras() -> None:
    t = target(
        provider_model="models/gemini-2.5-pro",
        api_key=None,
        extra_headers={"X-Goog-User-Project": "proj"},
        extra_body={
            "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}, "temperature": 0},
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        },
    )
    req = GeminiWire().build_request(t, "p", 256)
    assert req.url.endswith("/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse")
    assert "x-goog-api-key" not in req.headers
    assert req.headers["x-goog-user-project"] == "proj"
    # nested generationConfig is merged, not replaced: maxOutputTokens survives
    assert req.json["generationConfig"] == {
        "maxOutputTokens": 256,
        "thinkingConfig": {"thinkingBudget": 0},
        "temperature": 0,
    }
    assert req.json["safetySettings"][0]["threshold"] == "BLOCK_NONE"


def test_wire_shape() -> None:
    wire: Wire = GeminiWire()
    assert (wire.name, wire.framing) == ("gemini", "sse")
    assert isinstance(get_wire("gemini"), GeminiWire)


async def test_prepare_does_nothing() -> None:
    assert await GeminiWire().prepare(None, target(), SystemClock(), 1.0) is None  # type: ignore[arg-type]


# --- property ---------------------------------------------------------------------------

KEYS = [
    "candidates", "content", "parts", "text", "thought", "thoughtSignature", "finishReason",
    "usageMetadata", "promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount",
    "cachedContentTokenCount", "error", "code", "status", "message", "details", "@type",
    "retryDelay", "promptFeedback", "blockReason", "seconds", "nanos",
]  # fmt: skip
VALUES = [
    "STOP", "RESOURCE_EXHAUSTED", "UNAVAILABLE", "SAFETY",
    "type.googleapis.com/google.rpc.RetryInfo", "34.4s", "nans", "1e400s",
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
@given(st.lists(payloads, min_size=1, max_size=8))
def test_garbage_raises_only_value_error_or_stream_error(chunks: list[str]) -> None:
    decoder = GeminiDecoder()
    for data in chunks:
        try:
            reasoning, answer = decoder.feed("", data)
        except (ValueError, StreamError):
            continue
        assert reasoning >= 0 and answer >= 0


@settings(max_examples=200, deadline=None)
@given(st.integers(100, 599), payloads)
def test_classify_error_never_raises(status: int, body: str) -> None:
    info = GeminiWire().classify_error(status, body)
    assert info.detail and len(info.detail) <= 300
