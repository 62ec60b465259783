"""Rate-limit response headers in each provider family's format.

Quotas are fixed, plausible numbers; `remaining` falls with every request the profile served
and is 0 on a simulated 429, and resets count down to the next window on the clock's wall
time, so a client's cooldown arithmetic can be checked.
"""

from __future__ import annotations

from speed_kings.simulator.profiles import RateLimitHeaders
from speed_kings.simulator.render_base import rfc3339


def go_duration(seconds: float) -> str:
    """Durations as OpenAI and Groq write them: `12ms`, `7.66s`, `6m0s`, `2h3m4.5s`."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours or minutes:
        text = f"{int(minutes)}m" + text
    if hours:
        text = f"{int(hours)}h" + text
    return text


def _window(now: float, length: float) -> float:
    """Seconds until the current window of `length` seconds ends."""
    return length - now % length


def rate_limit_headers(
    kind: RateLimitHeaders, *, served: int, tokens: int, unix_time: float, exhausted: bool
) -> dict[str, str]:
    """`served`: requests the profile answered before this one; `tokens`: this request's
    worst-case tokens (prompt + max_tokens)."""
    if kind == "none":
        return {}
    if kind == "anthropic":
        return _anthropic(served, tokens, unix_time, exhausted)
    if kind == "cerebras":
        req_limit, tok_limit = 14_400, 60_000
        req_left, tok_left = (
            _left(req_limit, served, exhausted),
            _tokens_left(tok_limit, tokens, exhausted),
        )
        return {
            "x-ratelimit-limit-requests-day": str(req_limit),
            "x-ratelimit-remaining-requests-day": str(req_left),
            "x-ratelimit-reset-requests-day": f"{_window(unix_time, 86_400):.2f}",
            "x-ratelimit-limit-tokens-minute": str(tok_limit),
            "x-ratelimit-remaining-tokens-minute": str(tok_left),
            "x-ratelimit-reset-tokens-minute": f"{_window(unix_time, 60):.2f}",
        }
    # OpenAI and Groq share names; Groq counts requests per day, tokens per minute.
    req_limit, req_window = (5_000, 60.0) if kind == "openai" else (14_400, 86_400.0)
    tok_limit = 2_000_000 if kind == "openai" else 6_000
    return {
        "x-ratelimit-limit-requests": str(req_limit),
        "x-ratelimit-remaining-requests": str(_left(req_limit, served, exhausted)),
        "x-ratelimit-reset-requests": go_duration(_window(unix_time, req_window)),
        "x-ratelimit-limit-tokens": str(tok_limit),
        "x-ratelimit-remaining-tokens": str(_tokens_left(tok_limit, tokens, exhausted)),
        "x-ratelimit-reset-tokens": go_duration(_window(unix_time, 60.0)),
    }


def _left(limit: int, served: int, exhausted: bool) -> int:
    return 0 if exhausted else limit - 1 - served % limit


def _tokens_left(limit: int, tokens: int, exhausted: bool) -> int:
    return 0 if exhausted else max(limit - tokens, 0)


def _anthropic(served: int, tokens: int, unix_time: float, exhausted: bool) -> dict[str, str]:
    reset = rfc3339(round(unix_time + _window(unix_time, 60)))
    headers: dict[str, str] = {}
    for name, limit in (
        ("requests", 50),
        ("tokens", 90_000),
        ("input-tokens", 50_000),
        ("output-tokens", 10_000),
    ):
        left = (
            _left(limit, served, exhausted)
            if name == "requests"
            else _tokens_left(limit, tokens, exhausted)
        )
        headers[f"anthropic-ratelimit-{name}-limit"] = str(limit)
        headers[f"anthropic-ratelimit-{name}-remaining"] = str(left)
        headers[f"anthropic-ratelimit-{name}-reset"] = reset
    return headers
