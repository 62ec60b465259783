from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speed_kings.result import Outcome, ProbeResult, TokenUsage
from speed_kings.throttle import ThrottleDetector, ThrottleSignal

KEY = ("groq", "llama-3.3-70b", "short")
TOKENS = 201  # 200 intervals after the first token


def probe(
    ttft: float | None = 0.2, tps: float | None = 500.0, outcome: Outcome = Outcome.SUCCESS
) -> ProbeResult:
    """A probe with the given TTFT and output tokens/s ((tokens - 1) / generation time)."""
    last = None if ttft is None or tps is None else ttft + (TOKENS - 1) / tps
    return ProbeResult(
        provider=KEY[0],
        model=KEY[1],
        provider_model="llama-3.3-70b-versatile",
        prompt=KEY[2],
        wire="openai",
        nonce="n",
        started_at=1_800_000_000.0,
        outcome=outcome,
        time_to_first_token=ttft,
        time_to_last_token=last,
        tokens=TokenUsage(output=TOKENS if tps is not None else None),
    )


def feed(det: ThrottleDetector, *probes: ProbeResult) -> list[ThrottleSignal]:
    signals: list[ThrottleSignal] = []
    for p in probes:
        signals += det.observe(KEY, p)
    return signals


def test_nothing_flagged_before_min_samples() -> None:
    det = ThrottleDetector(min_samples=5)
    assert feed(det, probe(0.2), probe(5.0), probe(0.1), probe(9.0)) == []
    assert det.baseline(KEY) == (None, None)
    assert feed(det, probe(0.2)) == []
    assert det.baseline(KEY)[0] == 0.2  # median of 0.1, 0.2, 0.2, 5, 9


def test_ttft_spike_flagged_with_its_baseline() -> None:
    det = ThrottleDetector()
    feed(det, *(probe(t) for t in (0.20, 0.22, 0.18, 0.20, 0.21)))
    (sig,) = det.observe(KEY, probe(0.80))
    assert sig.key == KEY and sig.signal == "ttft"
    assert sig.value == 0.80 and sig.baseline == 0.20
    assert sig.factor == pytest.approx(4.0)


def test_throughput_drop_flagged() -> None:
    det = ThrottleDetector()
    feed(det, *(probe(tps=v) for v in (500, 480, 520, 500, 510)))
    (sig,) = det.observe(KEY, probe(tps=100))
    assert sig.signal == "throughput"
    assert sig.value == pytest.approx(100)
    assert sig.baseline == pytest.approx(500)
    assert sig.factor == pytest.approx(5.0)


def test_both_signals_at_once_and_exactly_factor_is_not_flagged() -> None:
    det = ThrottleDetector(factor=3.0)
    feed(det, *(probe(0.5, 300) for _ in range(5)))
    assert feed(det, probe(1.5, 300)) == []  # exactly 3x: not *more* than factor
    signals = feed(det, probe(2.0, 50))
    assert [s.signal for s in signals] == ["ttft", "throughput"]


def test_failures_and_missing_values_are_ignored() -> None:
    det = ThrottleDetector(min_samples=2)
    feed(det, probe(0.2), probe(0.2))
    assert feed(det, probe(30.0, outcome=Outcome.TIMEOUT)) == []
    assert feed(det, probe(30.0, outcome=Outcome.RATE_LIMITED)) == []
    assert feed(det, probe(None, None)) == []
    assert feed(det, probe(ttft=float("nan")), probe(ttft=0.0)) == []
    ttft, tps = det.baseline(KEY)
    assert ttft == 0.2
    assert tps == pytest.approx(500)
    assert det.baseline(("other", "m", "p")) == (None, None)


def test_flagged_samples_do_not_poison_the_baseline() -> None:
    det = ThrottleDetector(window=20, min_samples=5)
    feed(det, *(probe(0.2) for _ in range(5)))
    # 15 slow probes: with them in the baseline the median would be 2.0 and they'd stop
    # being flagged; kept out, every one is flagged against 0.2.
    signals = feed(det, *(probe(2.0) for _ in range(15)))
    assert len([s for s in signals if s.signal == "ttft"]) == 15
    assert all(s.baseline == 0.2 for s in signals if s.signal == "ttft")
    assert det.baseline(KEY)[0] == 0.2
    assert feed(det, probe(0.21)) == []  # back to normal; the streak is broken


def test_sustained_change_becomes_the_new_baseline_after_a_window() -> None:
    det = ThrottleDetector(window=10, min_samples=5)
    feed(det, *(probe(tps=500) for _ in range(10)))
    signals = feed(det, *(probe(tps=100) for _ in range(10)))
    assert len(signals) == 10  # the whole window is flagged against the old baseline
    assert det.baseline(KEY)[1] == pytest.approx(100)  # then it is the new normal
    assert feed(det, probe(tps=95), probe(tps=110)) == []
    # ... and a further drop from the new normal is flagged against it
    (sig,) = feed(det, probe(tps=20))
    assert sig.baseline == pytest.approx(100)


def test_an_interrupted_run_does_not_reset_the_baseline() -> None:
    det = ThrottleDetector(window=6, min_samples=3)
    feed(det, *(probe(0.2) for _ in range(6)))
    for _ in range(4):  # intermittent throttling: never `window` flagged in a row
        assert len(feed(det, *(probe(3.0) for _ in range(5)))) == 5
        assert feed(det, probe(0.2)) == []
    assert det.baseline(KEY)[0] == 0.2


def test_series_are_independent() -> None:
    det = ThrottleDetector(min_samples=2)
    other = ("cerebras", "llama-3.3-70b", "short")
    for _ in range(2):
        det.observe(KEY, probe(0.2))
        det.observe(other, probe(2.0))
    assert det.observe(other, probe(2.5)) == []
    assert len(det.observe(KEY, probe(2.5))) == 1


def test_memory_bounded_by_window() -> None:
    det = ThrottleDetector(window=8, min_samples=3)
    for i in range(500):
        # normal, slow and fast samples interleaved, so both deques see traffic
        det.observe(KEY, probe(0.2 * (1 + (i % 7 == 0) * 10), 500 / (1 + (i % 5 == 0) * 10)))
    for series in (det._series[KEY].ttft, det._series[KEY].tps):
        assert len(series.accepted) <= 8 and len(series.flagged) <= 8
    det.set_params(3.0, 4, 2)
    for series in (det._series[KEY].ttft, det._series[KEY].tps):
        assert series.accepted.maxlen == 4 and len(series.accepted) <= 4
    det.retain([])
    assert det._series == {}


def test_set_params_validation_and_effect() -> None:
    det = ThrottleDetector(min_samples=3)
    feed(det, *(probe(0.2) for _ in range(3)))
    assert feed(det, probe(0.5)) == []
    det.set_params(2.0, 20, 3)
    assert len(feed(det, probe(0.5))) == 1
    for bad in ((1.0, 20, 5), (float("inf"), 20, 5), (3.0, 4, 5), (3.0, 20, 0)):
        with pytest.raises(ValueError):
            det.set_params(*bad)


@given(
    base=st.floats(min_value=1e-3, max_value=1e3),
    factor=st.floats(min_value=1.5, max_value=10),
    ttft_pos=st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=80),
    tps_pos=st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=80),
    window=st.integers(min_value=1, max_value=30),
)
def test_values_within_the_band_are_never_flagged(
    base: float,
    factor: float,
    ttft_pos: list[float],
    tps_pos: list[float],
    window: int,
) -> None:
    # Values within [b / sqrt(factor), b * sqrt(factor)]: the spread (max / min) is at most
    # `factor`, so no value can be more than `factor` off a median of the others. (The wider
    # band [b / factor, b * factor] would not hold: 5 samples at b/factor then one at
    # b*factor is factor**2 off the baseline and rightly flagged.)
    half = math.sqrt(factor) * (1 - 1e-9)  # margin for float rounding in tokens/s

    def band(pos: float) -> float:
        return base * float(half ** (2 * pos - 1))

    det = ThrottleDetector(factor=factor, window=window, min_samples=min(5, window))
    for i in range(max(len(ttft_pos), len(tps_pos))):
        ttft = band(ttft_pos[i % len(ttft_pos)])
        tps = band(tps_pos[i % len(tps_pos)]) * 100
        assert det.observe(KEY, probe(ttft, tps)) == []
