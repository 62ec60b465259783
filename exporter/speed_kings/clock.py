"""Clocks are passed in so tests can steer time; nothing else calls `time` directly."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a monotonic clock (system-wide CLOCK_MONOTONIC on Linux)."""

    def time(self) -> float:
        """Wall-clock seconds since the Unix epoch."""


class SystemClock:
    """The real clock. `time.monotonic` is CLOCK_MONOTONIC on Linux, shared by every
    process on the machine, so a simulator in another process reports comparable times."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()
