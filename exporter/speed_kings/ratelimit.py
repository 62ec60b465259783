"""Rate-limit signals from response headers, normalised to seconds and plain counts.

Formats differ per provider: Retry-After in seconds or as an HTTP date; OpenAI/Groq reset
durations (`6m0s`, `12ms`); Cerebras float seconds (`33011.38`); Anthropic RFC 3339 times.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

from speed_kings.result import RateLimitInfo

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")


def parse_duration(text: str) -> float | None:
    """`6m0s` → 360, `12ms` → 0.012, `33011.38` → 33011.38, `34.4s` → 34.4."""
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


def _seconds_until(text: str, now: float) -> float | None:
    """A reset given as a duration, float seconds, or an RFC 3339 / HTTP date."""
    value = parse_duration(text)
    if value is not None:
        return value
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def parse_rate_limit_headers(headers: Mapping[str, str], now: float) -> RateLimitInfo:
    """Reads every rate-limit header present. `now` is wall-clock time (for absolute resets)."""
    info = RateLimitInfo()
    for raw_name, value in headers.items():
        name = raw_name.lower()
        if name == "retry-after":
            info.retry_after_seconds = _seconds_until(value, now)
            continue
        if name == "retry-after-ms":
            ms = _number(value)
            if ms is not None and info.retry_after_seconds is None:
                info.retry_after_seconds = ms / 1000
            continue
        prefix = next((p for p in _PREFIXES if name.startswith(p)), None)
        if prefix is None:
            continue
        rest = name[len(prefix) :]
        # x-ratelimit-{field}-{kind} (OpenAI, Groq, Cerebras, Fireworks) and
        # anthropic-ratelimit-{kind}-{field}.
        for field in ("limit", "remaining", "reset"):
            if rest.startswith(field + "-"):
                kind = rest[len(field) + 1 :]
                break
            if rest.endswith("-" + field):
                kind = rest[: -len(field) - 1]
                break
        else:
            continue
        kind = kind.replace("-", "_")
        if field == "reset":
            seconds = _seconds_until(value, now)
            if seconds is not None:
                info.reset_seconds[kind] = seconds
        else:
            number = _number(value)
            if number is not None:
                (info.limit if field == "limit" else info.remaining)[kind] = number
    return info
