"""OpenAI-compatible stream decoding over every usage placement in the reference."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speed_kings.result import Outcome
from speed_kings.wire.base import StreamError, Target
from speed_kings.wire.openai import OpenAIDecoder, OpenAIWire


def run(chunks: list[Any]) -> tuple[OpenAIDecoder, list[tuple[int, int]]]:
    decoder = OpenAIDecoder()
    out = [decoder.feed("", c if isinstance(c, str) else json.dumps(c)) for c in chunks]
    return decoder, out


def delta(**kw: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": kw, "finish_reason": None}], "usage": None}


def finish(reason: str = "stop", **extra: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}], **extra}


USAGE = {
    "prompt_tokens": 19,
    "completion_tokens": 238,
    "total_tokens": 257,
    "prompt_tokens_details": {"cached_tokens": 3},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


def test_openai_separate_usage_chunk_after_role_only_first_chunk() -> None:
    dec, out = run(
        [
            delta(role="assistant", content="", refusal=None),
            delta(content="The"),
            finish(usage=None),
            {"choices": [], "usage": USAGE},
            "[DONE]",
        ]
    )
    assert out == [(0, 0), (0, 3), (0, 0), (0, 0), (0, 0)]
    assert (dec.usage.input, dec.usage.output, dec.usage.cached_input) == (19, 238, 3)
    assert dec.usage.source == "reported" and dec.done and dec.finish_reason == "stop"


def test_deepseek_reasoning_content_then_content_usage_on_finish() -> None:
    dec, out = run(
        [
            delta(role="assistant", content=None, reasoning_content=""),
            delta(content=None, reasoning_content="Let me think"),
            delta(content="Answer"),
            finish(
                usage={
                    "prompt_tokens": 97,
                    "completion_tokens": 106,
                    "completion_tokens_details": {"reasoning_tokens": 88},
                    "prompt_cache_hit_tokens": 5,
                    "prompt_cache_miss_tokens": 92,
                }
            ),
            "[DONE]",
        ]
    )
    assert out[:3] == [(0, 0), (12, 0), (0, 6)]
    assert (dec.usage.output, dec.usage.reasoning, dec.usage.cached_input) == (106, 88, 5)


def test_moonshot_usage_inside_choice() -> None:
    chunk = finish()
    chunk["choices"][0]["usage"] = {"prompt_tokens": 8, "completion_tokens": 50}
    dec, _ = run([delta(role="assistant"), delta(content="x"), chunk, "[DONE]"])
    assert (dec.usage.input, dec.usage.output) == (8, 50)


def test_groq_x_groq_usage_and_server_timings_and_reasoning_field() -> None:
    dec, out = run(
        [
            {"choices": [{"delta": {"role": "assistant", "content": ""}}], "x_groq": {"id": "r"}},
            delta(reasoning="hmm"),
            delta(content="ok"),
            finish(
                x_groq={
                    "id": "req_1",
                    "usage": {
                        "queue_time": 0.1717,
                        "prompt_tokens": 17,
                        "prompt_time": 0.00079,
                        "completion_tokens": 1107,
                        "completion_time": 3.206,
                        "total_tokens": 1124,
                        "total_time": 3.207,
                        "completion_tokens_details": {"reasoning_tokens": 963},
                    },
                }
            ),
        ]
    )
    assert out[1:3] == [(3, 0), (0, 2)]
    assert (dec.usage.output, dec.usage.reasoning) == (1107, 963)
    assert dec.server_timings == {
        "queue_time": 0.1717,
        "prompt_time": 0.00079,
        "completion_time": 3.206,
        "total_time": 3.207,
    }
    assert dec.done  # no [DONE] needed once finish_reason arrived


def test_cerebras_time_info_and_sambanova_metrics_and_openrouter_cost() -> None:
    dec, _ = run(
        [
            delta(content="a"),
            finish(
                usage={
                    "prompt_tokens": 5,
                    "completion_tokens": 9,
                    "time_to_first_token": 0.05,
                    "total_latency": 0.2,
                    "completion_tokens_after_first_per_sec": 900.0,
                    "cost": 0.00042,
                },
                time_info={"queue_time": 0.001, "prompt_time": 0.002, "completion_time": 0.1},
            ),
        ]
    )
    assert dec.reported_cost == pytest.approx(0.00042)
    assert dec.server_timings["time_to_first_token"] == 0.05
    assert dec.server_timings["completion_tokens_after_first_per_sec"] == 900.0
    assert dec.server_timings["prompt_time"] == 0.002


def test_together_text_field() -> None:
    _, out = run([{"choices": [{"text": "tok", "delta": {"token_id": 5}}]}])
    assert out == [(0, 0)]  # delta present without content: no text
    _, out = run([{"choices": [{"text": "tok"}]}])
    assert out == [(0, 3)]


@pytest.mark.parametrize(
    ("chunk", "outcome"),
    [
        (
            {"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded"}},
            "rate_limited",
        ),
        ({"error": {"message": "Overloaded", "code": 529}}, "overloaded"),
        ({"error": {"message": "boom", "code": "server_error"}}, "http_error"),
        ({"x_groq": {"error": {"message": "over capacity"}}, "choices": []}, "overloaded"),
        (
            {"choices": [{"delta": {}, "finish_reason": "error"}], "error": {"message": "gone"}},
            "http_error",
        ),
    ],
)
def test_mid_stream_errors(chunk: dict[str, Any], outcome: str) -> None:
    with pytest.raises(StreamError) as err:
        run([delta(content="a"), chunk])
    assert err.value.info.outcome == Outcome(outcome)


def test_malformed_chunk_is_value_error() -> None:
    with pytest.raises(ValueError):
        run(['{"choices": ['])
    with pytest.raises(ValueError):
        run(["[1, 2]"])


def test_request_shape_keeps_key_out_of_url() -> None:
    target = Target(
        "groq",
        "https://api.groq.com/openai/v1",
        "openai",
        "llama-3.1-8b",
        "llama-3.1-8b-instant",
        api_key="gsk_secret",
        extra_body={"seed": 1},
    )
    req = OpenAIWire().build_request(target, "hello", 300)
    assert req.url == "https://api.groq.com/openai/v1/chat/completions"
    assert "gsk_secret" not in req.url
    assert req.headers["authorization"] == "Bearer gsk_secret"
    assert req.json["stream"] is True and req.json["stream_options"] == {"include_usage": True}
    assert req.json["model"] == "llama-3.1-8b-instant" and req.json["max_tokens"] == 300
    assert req.json["seed"] == 1


def test_classify_error_bodies() -> None:
    wire = OpenAIWire()
    info = wire.classify_error(
        429, json.dumps({"error": {"message": "slow down", "code": "rate_limit_exceeded"}})
    )
    assert info.outcome == Outcome.RATE_LIMITED and "rate_limit_exceeded" in info.detail
    assert wire.classify_error(503, "<html>busy</html>").outcome == Outcome.OVERLOADED
    assert wire.classify_error(401, "").outcome == Outcome.HTTP_ERROR


@given(st.text(max_size=300))
def test_arbitrary_data_raises_only_value_or_stream_errors(data: str) -> None:
    with contextlib.suppress(ValueError, StreamError):
        OpenAIDecoder().feed("", data)
