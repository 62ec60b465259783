from __future__ import annotations

import pytest

from speed_kings.cooldown import MAX_PROVIDER_WAIT, Cooldown, Cooldowns
from speed_kings.result import Outcome, ProbeResult, RateLimitInfo

T0 = 1_800_000_000.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now - T0

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cooldowns(clock: FakeClock) -> Cooldowns:
    return Cooldowns(clock)  # backoff 30 s doubling up to 3600 s


def probe(
    clock: FakeClock,
    outcome: Outcome,
    *,
    status: int | None = None,
    rate_limit: RateLimitInfo | None = None,
    started_at: float | None = None,
) -> ProbeResult:
    """A probe that started a moment ago (fresh evidence) unless told otherwise."""
    return ProbeResult(
        provider="groq",
        model="llama-3.3-70b",
        provider_model="llama-3.3-70b-versatile",
        prompt="short",
        wire="openai",
        nonce="n",
        started_at=clock.time() - 0.5 if started_at is None else started_at,
        outcome=outcome,
        http_status=status,
        rate_limit=rate_limit or RateLimitInfo(),
    )


def rate_limited(clock: FakeClock, retry_after: float | None = None) -> ProbeResult:
    return probe(
        clock,
        Outcome.RATE_LIMITED,
        status=429,
        rate_limit=RateLimitInfo(retry_after_seconds=retry_after),
    )


def test_retry_after_below_our_backoff_waits_for_the_backoff(
    clock: FakeClock, cooldowns: Cooldowns
) -> None:
    # We never come back sooner than our own backoff, even if the provider would allow it.
    cd = cooldowns.observe("groq", rate_limited(clock, 7))
    assert cd == Cooldown("groq", T0 + 30, "rate limited (429): retry-after 7s", 1)
    assert cooldowns.active("groq") == cd


def test_retry_after_above_backoff_is_honoured(clock: FakeClock, cooldowns: Cooldowns) -> None:
    cd = cooldowns.observe("groq", rate_limited(clock, 90))
    assert cd is not None
    assert cd.until == T0 + 90
    assert cd.reason == "rate limited (429): retry-after 90s"


def test_consecutive_429s_double_up_to_max(clock: FakeClock, cooldowns: Cooldowns) -> None:
    waits = []
    for _ in range(10):
        cd = cooldowns.observe("groq", rate_limited(clock))
        assert cd is not None
        waits.append(cd.until - clock.time())
        clock.now = cd.until  # the scheduler retries once the cooldown is over
        assert cooldowns.active("groq") is None
    assert waits == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert cooldowns.attempt("groq") == 10


def test_backoff_is_safe_for_huge_attempt_counts(cooldowns: Cooldowns) -> None:
    assert cooldowns.backoff(0) == 0
    assert cooldowns.backoff(5000) == 3600


def test_overloaded_counts_as_a_consecutive_backoff_outcome(
    clock: FakeClock, cooldowns: Cooldowns
) -> None:
    cooldowns.observe("anthropic", rate_limited(clock))
    clock.advance(30)
    cd = cooldowns.observe("anthropic", probe(clock, Outcome.OVERLOADED, status=529))
    assert cd == Cooldown("anthropic", clock.time() + 60, "overloaded (529)", 2)


def test_mid_stream_rate_limit_without_status(clock: FakeClock, cooldowns: Cooldowns) -> None:
    cd = cooldowns.observe("groq", probe(clock, Outcome.RATE_LIMITED))
    assert cd is not None
    assert cd.reason == "rate limited"


def test_cerebras_day_quota_reset_is_honoured_above_backoff_max(
    clock: FakeClock, cooldowns: Cooldowns
) -> None:
    info = RateLimitInfo(
        remaining={"requests_day": 0, "tokens_minute": 59000},
        reset_seconds={"requests_day": 33011.38, "tokens_minute": 12.0},
    )
    cd = cooldowns.observe(
        "cerebras", probe(clock, Outcome.RATE_LIMITED, status=429, rate_limit=info)
    )
    assert cd is not None
    assert cd.until == pytest.approx(T0 + 33011.38)
    assert cd.reason == "rate limited (429): requests_day resets in 33011.4s"


def test_provider_wait_is_capped_at_a_day(clock: FakeClock, cooldowns: Cooldowns) -> None:
    cd = cooldowns.observe("groq", rate_limited(clock, 365 * 86400))
    assert cd is not None
    assert cd.until == T0 + MAX_PROVIDER_WAIT


def test_gemini_retry_info_via_retry_after(clock: FakeClock, cooldowns: Cooldowns) -> None:
    # The Gemini adapter puts RetryInfo.retryDelay ("34.4s") into retry_after_seconds.
    cooldowns = Cooldowns(clock, backoff_initial=10, backoff_max=600)
    cd = cooldowns.observe("gemini", rate_limited(clock, 34.4))
    assert cd is not None
    assert cd.until == pytest.approx(T0 + 34.4)
    assert cd.reason == "rate limited (429): retry-after 34.4s"


def test_anthropic_exhausted_tokens_on_a_success_cools_down_pre_emptively(
    clock: FakeClock, cooldowns: Cooldowns
) -> None:
    info = RateLimitInfo(
        limit={"requests": 50, "tokens": 40000},
        remaining={"requests": 49, "tokens": 0},
        reset_seconds={"requests": 1.0, "tokens": 42.0},
    )
    cd = cooldowns.observe("anthropic", probe(clock, Outcome.SUCCESS, rate_limit=info))
    assert cd == Cooldown("anthropic", T0 + 42, "quota exhausted: tokens", 0)
    assert cooldowns.active("anthropic") == cd
    clock.advance(42)
    assert cooldowns.active("anthropic") is None


def test_pre_emptive_day_quota(clock: FakeClock, cooldowns: Cooldowns) -> None:
    info = RateLimitInfo(remaining={"requests_day": 0}, reset_seconds={"requests_day": 33011.38})
    cd = cooldowns.observe("cerebras", probe(clock, Outcome.SUCCESS, rate_limit=info))
    assert cd is not None
    assert cd.reason == "quota exhausted: requests_day"
    assert cd.until == pytest.approx(T0 + 33011.38)


def test_success_with_quota_left_sets_nothing(clock: FakeClock, cooldowns: Cooldowns) -> None:
    info = RateLimitInfo(remaining={"requests": 3}, reset_seconds={"requests": 60.0})
    assert cooldowns.observe("groq", probe(clock, Outcome.SUCCESS, rate_limit=info)) is None
    # remaining 0 but no reset known: nothing to wait for
    info = RateLimitInfo(remaining={"requests": 0})
    assert cooldowns.observe("groq", probe(clock, Outcome.SUCCESS, rate_limit=info)) is None
    assert cooldowns.all_active() == []


def test_success_clears_and_resets_attempt(clock: FakeClock, cooldowns: Cooldowns) -> None:
    for _ in range(3):
        cd = cooldowns.observe("groq", rate_limited(clock))
        assert cd is not None
        clock.now = cd.until
    cooldowns.observe("groq", rate_limited(clock))
    assert cooldowns.attempt("groq") == 4
    clock.advance(1)  # a probe that started after the cooldown was set succeeds
    assert cooldowns.observe("groq", probe(clock, Outcome.SUCCESS, started_at=clock.time())) is None
    assert cooldowns.active("groq") is None
    assert cooldowns.attempt("groq") == 0
    cd = cooldowns.observe("groq", rate_limited(clock))
    assert cd is not None
    assert cd.until == clock.time() + 30  # back to the initial backoff


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome.HTTP_ERROR,
        Outcome.TIMEOUT,
        Outcome.CONNECTION_ERROR,
        Outcome.PROTOCOL_ERROR,
        Outcome.SKIPPED_BUDGET,
        Outcome.SKIPPED_COOLDOWN,
    ],
)
def test_other_failures_leave_the_state_alone(
    clock: FakeClock, cooldowns: Cooldowns, outcome: Outcome
) -> None:
    first = cooldowns.observe("groq", rate_limited(clock))
    clock.advance(5)
    info = RateLimitInfo(remaining={"requests": 0}, reset_seconds={"requests": 9999.0})
    assert cooldowns.observe("groq", probe(clock, outcome, status=500, rate_limit=info)) is None
    assert cooldowns.active("groq") == first
    assert cooldowns.attempt("groq") == 1
    clock.advance(25)
    cooldowns.observe("groq", probe(clock, outcome))
    cd = cooldowns.observe("groq", rate_limited(clock))
    assert cd is not None
    assert cd.attempt == 2  # still consecutive: the failure in between did not reset it


def test_active_expires_on_time(clock: FakeClock, cooldowns: Cooldowns) -> None:
    assert cooldowns.active("groq") is None
    cooldowns.observe("groq", rate_limited(clock))
    clock.advance(29.999)
    assert cooldowns.active("groq") is not None
    clock.advance(0.001)
    assert cooldowns.active("groq") is None
    assert cooldowns.all_active() == []


def test_all_active_sorted_by_provider(clock: FakeClock, cooldowns: Cooldowns) -> None:
    cooldowns.observe("together", rate_limited(clock))
    cooldowns.observe("groq", rate_limited(clock, 100))
    cooldowns.observe("fireworks", probe(clock, Outcome.SUCCESS))
    assert [c.provider for c in cooldowns.all_active()] == ["groq", "together"]
    clock.advance(50)
    assert [c.provider for c in cooldowns.all_active()] == ["groq"]


def test_a_later_signal_extends_but_never_shortens(clock: FakeClock, cooldowns: Cooldowns) -> None:
    long = cooldowns.observe("groq", rate_limited(clock, 600))
    clock.advance(1)
    # A fresh 429 (started after the first cooldown) with a short wait: attempt 2, but the
    # running 600 s cooldown is kept.
    cd = cooldowns.observe("groq", rate_limited(clock, 5))
    assert long is not None and cd is not None
    assert (cd.until, cd.reason, cd.attempt) == (long.until, long.reason, 2)
    clock.advance(1)
    cd = cooldowns.observe("groq", rate_limited(clock, 1200))
    assert cd is not None
    assert cd.until == clock.time() + 1200


def test_in_flight_probes_from_the_same_burst_are_stale(
    clock: FakeClock, cooldowns: Cooldowns
) -> None:
    # Three models of one provider are probed at once; all three get 429.
    started = clock.time()
    clock.advance(1)
    first = cooldowns.observe("groq", rate_limited(clock))
    clock.advance(0.2)
    for retry_after in (None, 90.0):
        stale = probe(
            clock,
            Outcome.RATE_LIMITED,
            status=429,
            rate_limit=RateLimitInfo(retry_after_seconds=retry_after),
            started_at=started,
        )
        cd = cooldowns.observe("groq", stale)
        assert cd is not None
        assert cd.attempt == 1  # one burst, one backoff step
    assert first is not None and cd is not None
    assert cd.until == clock.time() + 90  # a longer provider wait still counts
    # A success that was in flight when the 429 came back does not clear the cooldown.
    assert cooldowns.observe("groq", probe(clock, Outcome.SUCCESS, started_at=started)) is None
    assert cooldowns.active("groq") == cd
    assert cooldowns.attempt("groq") == 1


def test_a_stale_429_after_the_cooldown_ended_counts_again(
    clock: FakeClock, cooldowns: Cooldowns
) -> None:
    started = clock.time()
    clock.advance(1)
    cooldowns.observe("groq", rate_limited(clock))
    clock.advance(45)  # a slow probe that started before that cooldown ends after it
    late = probe(clock, Outcome.RATE_LIMITED, status=429, started_at=started)
    cd = cooldowns.observe("groq", late)
    assert cd is not None
    assert (cd.until, cd.attempt) == (clock.time() + 60, 2)
    assert cooldowns.active("groq") == cd


def test_set_limits(clock: FakeClock, cooldowns: Cooldowns) -> None:
    cooldowns.set_limits(5, 20)
    waits = []
    for _ in range(4):
        cd = cooldowns.observe("groq", rate_limited(clock))
        assert cd is not None
        waits.append(cd.until - clock.time())
        clock.now = cd.until
    assert waits == [5, 10, 20, 20]
    for bad in ((0, 10), (10, 5), (-1, 10), (1, float("inf"))):
        with pytest.raises(ValueError):
            cooldowns.set_limits(*bad)
    with pytest.raises(ValueError):
        Cooldowns(clock, backoff_initial=60, backoff_max=30)


def test_garbage_provider_waits_are_ignored(clock: FakeClock, cooldowns: Cooldowns) -> None:
    cd = cooldowns.observe("groq", rate_limited(clock, float("nan")))
    assert cd is not None
    assert cd.until == T0 + 30
    assert cd.reason == "rate limited (429)"
    clock.now = cd.until
    cd = cooldowns.observe("groq", rate_limited(clock, -5))
    assert cd is not None
    assert cd.until == clock.time() + 60
