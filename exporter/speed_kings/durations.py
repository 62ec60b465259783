"""Durations in configs: "500ms", "30s", "15m", "1h", "1d", "1h30m", or plain seconds.

Values are float seconds (not `timedelta`): schedulers, timeouts and backoffs all take
seconds, and a float survives YAML, JSON and Prometheus without conversion.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

UNITS: Mapping[str, float] = MappingProxyType(
    {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
)
"""Unit suffixes, largest first: a compound duration lists them in this order."""

_PART = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|d|h|m|s)")
_NUMBER = re.compile(r"[+-]?(\d+(?:\.\d*)?|\.\d+)")

DURATION_FIX = 'use a number and a unit (ms, s, m, h, d), like "30s", "15m", "1h30m"'


class DurationError(ValueError):
    """A value that is not a duration; `problem` says why and `fix` what is accepted."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}; {fix}")
        self.problem = problem
        self.fix = fix


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _seconds(value: object) -> float:
    """Seconds of any accepted form, without the sign check."""
    # bool is an int, and YAML turns `yes`/`on` into True: never a duration.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DurationError(f"invalid duration {_shown(value)}", DURATION_FIX)
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        seconds = float(text) if _NUMBER.fullmatch(text) else _compound(text, value)
    if not math.isfinite(seconds):
        raise DurationError(f"invalid duration {_shown(value)}", DURATION_FIX)
    return seconds


def _compound(text: str, original: str) -> float:
    sign = -1.0 if text.startswith("-") else 1.0
    body = text[1:] if text[:1] in "+-" else text
    total, pos, last_rank = 0.0, 0, -1
    ranks = list(UNITS)
    while pos < len(body):
        match = _PART.match(body, pos)
        if match is None:
            raise DurationError(f"invalid duration {_shown(original)}", DURATION_FIX)
        number, unit = match.groups()
        rank = ranks.index(unit)
        # "30m1h" or "1m1m" is more likely a typo than a wish: largest unit first, once.
        if rank <= last_rank:
            raise DurationError(
                f"invalid duration {_shown(original)}: units must go from largest to smallest, "
                "each once",
                DURATION_FIX,
            )
        last_rank = rank
        total += float(number) * UNITS[unit]
        pos = match.end()
    if last_rank < 0:  # empty, or only a sign
        raise DurationError(f"invalid duration {_shown(original)}", DURATION_FIX)
    return sign * total


def parse_duration(value: object, *, allow_zero: bool = False) -> float:
    """Seconds from "500ms", "30s", "15m", "1h", "1d", "1h30m" or a plain number of seconds.

    Zero is rejected unless `allow_zero` (e.g. a jitter of 0); negatives always are.
    Raises `DurationError` (a ValueError) whose message says what is accepted.
    """
    seconds = _seconds(value)
    if seconds < 0 or (seconds == 0 and not allow_zero):
        need = "zero or positive" if allow_zero else "positive"
        example = '0 or "30s"' if allow_zero else '"30s"'
        raise DurationError(f"duration must be {need}, got {_shown(value)}", f"use e.g. {example}")
    return seconds


def _pydantic(allow_zero: bool) -> Any:
    def validate(value: object) -> float:
        try:
            return parse_duration(value, allow_zero=allow_zero)
        except DurationError as exc:
            # The message goes through ctx, not the template: user text may contain braces.
            raise PydanticCustomError(
                "duration", "{problem}", {"problem": exc.problem, "fix": exc.fix}
            ) from None

    return BeforeValidator(validate)


Duration = Annotated[float, _pydantic(allow_zero=False)]
"""A config field holding a positive duration, stored as float seconds."""

DurationOrZero = Annotated[float, _pydantic(allow_zero=True)]
"""Like `Duration` but 0 is allowed (a jitter of 0 means none)."""


def format_duration(seconds: float) -> str:
    """The shortest compound form: 900 -> "15m", 5400 -> "1h30m", 0.5 -> "500ms"."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    parts = []
    rest = seconds
    for unit in ("d", "h", "m"):
        count = int(rest // UNITS[unit])
        if count:
            parts.append(f"{count}{unit}")
            rest -= count * UNITS[unit]
    rest = round(rest, 3)
    if rest or not parts:
        parts.append(f"{rest:g}s")
    return "".join(parts)
