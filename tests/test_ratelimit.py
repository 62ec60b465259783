from __future__ import annotations

import pytest

from speed_kings.ratelimit import parse_duration, parse_rate_limit_headers

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6m0s", 360.0),
        ("1s", 1.0),
        ("12ms", 0.012),
        ("1h2m3.5s", 3723.5),
        ("33011.38", 33011.38),
        ("34.4s", 34.4),
        ("soon", None),
        ("5x", None),
    ],
)
def test_durations(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_openai_and_groq_headers() -> None:
    info = parse_rate_limit_headers(
        {
            "X-RateLimit-Limit-Requests": "14400",
            "x-ratelimit-remaining-requests": "14370",
            "x-ratelimit-reset-requests": "2m59.56s",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "7.66s",
            "retry-after": "7",
        },
        NOW,
    )
    assert info.limit == {"requests": 14400}
    assert info.remaining == {"requests": 14370, "tokens": 0}
    assert info.reset_seconds == pytest.approx({"requests": 179.56, "tokens": 7.66})
    assert info.retry_after_seconds == 7
    assert info.cooldown_seconds() == 7


def test_cerebras_day_and_minute_kinds() -> None:
    info = parse_rate_limit_headers(
        {
            "x-ratelimit-remaining-requests-day": "0",
            "x-ratelimit-reset-requests-day": "33011.38",
            "x-ratelimit-remaining-tokens-minute": "59000",
        },
        NOW,
    )
    assert info.remaining == {"requests_day": 0, "tokens_minute": 59000}
    assert info.cooldown_seconds() == pytest.approx(33011.38)  # exhausted quota's reset


def test_anthropic_rfc3339_resets_and_http_date_retry_after() -> None:
    info = parse_rate_limit_headers(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": "2027-01-15T08:00:30Z",
            "anthropic-ratelimit-output-tokens-remaining": "8000",
            "retry-after": "Fri, 15 Jan 2027 08:00:40 GMT",
        },
        1_800_000_000.0,
    )
    expected_reset = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    assert info.limit == {"requests": 50}
    assert info.remaining == {"requests": 49, "output_tokens": 8000}
    assert info.reset_seconds["requests"] == pytest.approx(expected_reset + 30 - NOW)
    assert info.retry_after_seconds == pytest.approx(40)


def test_garbage_headers_are_ignored() -> None:
    info = parse_rate_limit_headers(
        {"x-ratelimit-remaining-requests": "lots", "retry-after": "later", "x-ratelimit-": "1"}, NOW
    )
    assert info.remaining == {} and info.retry_after_seconds is None
