"""Throttling: a successful probe far off its own series' rolling baseline.

Each series (provider, model, prompt) keeps two rolling baselines, the median of the last
`window` accepted samples of time to first token and of output tokens/s. Once `min_samples`
are in, a probe is flagged when TTFT > factor x baseline or throughput < baseline / factor.
The median shrugs off the odd outlier, which a mean would not.

Flagged samples are kept out of the baseline, so a throttle that lasts keeps being flagged
instead of becoming the new normal. A real, permanent change (a provider moving a model to
other hardware) must still be learnt: after `window` consecutive flagged samples the
baseline is replaced by those flagged samples, and flagging stops until the series moves
away from its new normal.

Memory: per series at most 2 x 2 deques of `window` floats; series come from configuration.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from speed_kings.result import Outcome, ProbeResult

SeriesKey = tuple[str, str, str]  # (provider, model, prompt)
Signal = Literal["ttft", "throughput"]


@dataclass(frozen=True)
class ThrottleSignal:
    key: SeriesKey
    signal: Signal
    value: float
    baseline: float
    # How many times worse than the baseline, always > the configured factor:
    # value / baseline for TTFT, baseline / value for throughput.
    factor: float


@dataclass
class _Series:
    """One signal of one series: the baseline samples and the current run of flagged ones."""

    window: int
    accepted: deque[float] = field(init=False)
    flagged: deque[float] = field(init=False)  # consecutive flagged samples, newest last

    def __post_init__(self) -> None:
        self.accepted = deque(maxlen=self.window)
        self.flagged = deque(maxlen=self.window)

    def resize(self, window: int) -> None:
        self.window = window
        self.accepted = deque(self.accepted, maxlen=window)  # keeps the newest
        self.flagged = deque(self.flagged, maxlen=window)


@dataclass
class _Key:
    ttft: _Series
    tps: _Series


class ThrottleDetector:
    def __init__(self, *, factor: float = 3.0, window: int = 20, min_samples: int = 5) -> None:
        self._series: dict[SeriesKey, _Key] = {}
        self.set_params(factor, window, min_samples)

    def set_params(self, factor: float, window: int, min_samples: int) -> None:
        """Config reload. Samples already collected are kept (the newest `window` of them)."""
        if not factor > 1 or math.isinf(factor):
            raise ValueError(f"throttle factor must be > 1 and finite, got {factor}")
        if not 1 <= min_samples <= window:
            # min_samples > window could never be reached: nothing would ever be flagged.
            raise ValueError(f"need 1 <= min_samples <= window, got {min_samples}, {window}")
        self._factor = factor
        self._window = window
        self._min_samples = min_samples
        for entry in self._series.values():
            entry.ttft.resize(window)
            entry.tps.resize(window)

    def observe(self, key: SeriesKey, result: ProbeResult) -> list[ThrottleSignal]:
        """Feed one probe; returns the signals it tripped (empty when it looks normal)."""
        if result.outcome is not Outcome.SUCCESS:
            return []  # failures say nothing about speed; they are counted elsewhere
        entry = self._series.get(key)
        if entry is None:
            entry = self._series[key] = _Key(_Series(self._window), _Series(self._window))
        signals: list[ThrottleSignal] = []
        ttft, tps = result.time_to_first_token, result.output_tokens_per_second
        if ttft is not None:
            signals += self._check(key, "ttft", entry.ttft, ttft)
        if tps is not None:
            signals += self._check(key, "throughput", entry.tps, tps)
        return signals

    def _check(
        self, key: SeriesKey, signal: Signal, series: _Series, value: float
    ) -> list[ThrottleSignal]:
        if not math.isfinite(value) or value <= 0:
            return []  # not a measurement a baseline can be made of
        base = self._median(series)
        if base is None:
            series.accepted.append(value)
            return []
        slower = value / base if signal == "ttft" else base / value
        if not slower > self._factor:
            series.accepted.append(value)
            series.flagged.clear()  # the run of flagged samples is broken
            return []
        series.flagged.append(value)
        if len(series.flagged) >= self._window:
            # A whole window off the baseline: that is the new normal, not a throttle.
            series.accepted = deque(series.flagged, maxlen=self._window)
            series.flagged = deque(maxlen=self._window)
        return [ThrottleSignal(key, signal, value, base, slower)]

    def _median(self, series: _Series) -> float | None:
        if len(series.accepted) < self._min_samples:
            return None
        return statistics.median(series.accepted)

    def baseline(self, key: SeriesKey) -> tuple[float | None, float | None]:
        """(TTFT seconds, output tokens/s) medians; None until `min_samples` are in."""
        entry = self._series.get(key)
        if entry is None:
            return None, None
        return self._median(entry.ttft), self._median(entry.tps)

    def retain(self, keys: Iterable[SeriesKey]) -> None:
        """Forget series no longer configured (after a reload), keeping memory bounded."""
        keep = set(keys)
        for key in [k for k in self._series if k not in keep]:
            del self._series[key]
