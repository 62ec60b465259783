"""Per-provider cooldowns after rate limiting or overload.

A provider that answers 429 / 503 / 529 is left alone until the later of what it asked for
(`Retry-After`, the reset of an exhausted quota, Gemini's `RetryInfo`) and our own capped
exponential backoff: we never come back sooner than our backoff, even when the provider says
"retry in 1 s", because probing is optional traffic and a quick retry only burns quota.

A success whose headers say a quota is used up (remaining 0 with a reset) starts a
pre-emptive cooldown until that reset, so we don't spend a request just to be told 429.

Deterministic on purpose: no jitter here; spreading retries is the scheduler's job.
Times are wall-clock Unix seconds (`Clock.time`), the same clock as `ProbeResult.started_at`
and the `speedkings_provider_cooldown_until_timestamp_seconds` gauge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from speed_kings.clock import Clock
from speed_kings.result import Outcome, ProbeResult, RateLimitInfo

# Longest provider-given wait we honour. Day quotas (Cerebras resets ~33,000 s ahead) must
# be respected, but a garbled header must not park a provider for a year.
MAX_PROVIDER_WAIT = 24 * 3600.0

_BACKOFF_OUTCOMES = frozenset({Outcome.RATE_LIMITED, Outcome.OVERLOADED})


@dataclass(frozen=True)
class Cooldown:
    provider: str
    until: float  # wall clock, Unix seconds
    reason: str
    attempt: int  # consecutive rate-limited/overloaded outcomes; 0 for a pre-emptive one


@dataclass
class _State:
    attempt: int = 0
    cooldown: Cooldown | None = None
    # Wall-clock time we last started a cooldown on fresh evidence. A result from a probe that
    # started before it (in flight while the 429 came back) is stale: see `observe`.
    decided_at: float = field(default=-math.inf)


def _sane_wait(seconds: float | None) -> float | None:
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_PROVIDER_WAIT)


def _fmt(seconds: float) -> str:
    # 7 -> "7s", 0.012 -> "0.012s", 34.4 -> "34.4s", 33011.38 -> "33011.4s"
    return f"{seconds:.3g}s" if seconds < 10 else f"{round(seconds, 1):g}s"


def _exhausted_quota(info: RateLimitInfo) -> tuple[str, float] | None:
    """The used-up quota (remaining <= 0 with a known reset) that resets last."""
    exhausted = [
        (info.reset_seconds[kind], kind)
        for kind, left in info.remaining.items()
        if left <= 0 and kind in info.reset_seconds
    ]
    if not exhausted:
        return None
    reset, kind = max(exhausted)
    return kind, reset


class Cooldowns:
    def __init__(
        self, clock: Clock, *, backoff_initial: float = 30.0, backoff_max: float = 3600.0
    ) -> None:
        self._clock = clock
        self._states: dict[str, _State] = {}  # one per configured provider: bounded
        self.set_limits(backoff_initial, backoff_max)

    def set_limits(self, backoff_initial: float, backoff_max: float) -> None:
        """Config reload. Cooldowns already running keep their end time."""
        if not (0 < backoff_initial <= backoff_max) or math.isinf(backoff_max):
            raise ValueError(
                f"need 0 < backoff_initial <= backoff_max < inf, "
                f"got {backoff_initial} and {backoff_max}"
            )
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max

    def backoff(self, attempt: int) -> float:
        """Our own wait after `attempt` consecutive rate-limited/overloaded outcomes."""
        if attempt <= 0:
            return 0.0
        # Compare exponents rather than computing 2**attempt: attempt is unbounded.
        if attempt - 1 >= math.log2(self._backoff_max / self._backoff_initial):
            return self._backoff_max
        return min(self._backoff_initial * 2.0 ** (attempt - 1), self._backoff_max)

    def observe(self, provider: str, result: ProbeResult) -> Cooldown | None:
        """Update `provider`'s state from one probe; returns the cooldown now active because
        of it (started or extended), else None.

        Results from probes that started before the current cooldown was decided (several
        models of one provider probed concurrently, all hitting the same 429 burst) are
        stale: that cooldown already answers them, so they neither raise the attempt count
        nor clear it, but a longer provider-given wait in them is still honoured.
        """
        now = self._clock.time()
        state = self._states.setdefault(provider, _State())
        stale = result.started_at < state.decided_at
        if result.outcome in _BACKOFF_OUTCOMES:
            return self._on_backoff(provider, state, result, now, stale)
        if result.outcome is not Outcome.SUCCESS:
            return None  # timeouts, 5xx, garbage: not a request to slow down
        if not stale:
            state.attempt = 0
            state.cooldown = None
        quota = _exhausted_quota(result.rate_limit)
        if quota is None:
            return None
        kind, reset = quota
        wait = _sane_wait(reset) or 0.0
        if wait <= 0:
            return None
        if not stale:
            state.decided_at = now
        cooldown = Cooldown(provider, now + wait, f"quota exhausted: {kind}", state.attempt)
        return self._extend(state, cooldown, now)

    def _on_backoff(
        self, provider: str, state: _State, result: ProbeResult, now: float, stale: bool
    ) -> Cooldown:
        info = result.rate_limit
        given = _sane_wait(info.cooldown_seconds())
        if stale and (state.cooldown is None or now >= state.cooldown.until):
            stale = False  # the cooldown it overlapped is over: this 429 is news again
        if stale:
            wait = given or 0.0
        else:
            state.attempt += 1
            state.decided_at = now
            wait = max(given or 0.0, self.backoff(state.attempt))
        cooldown = Cooldown(provider, now + wait, self._reason(result, given), state.attempt)
        return self._extend(state, cooldown, now)

    @staticmethod
    def _extend(state: _State, cooldown: Cooldown, now: float) -> Cooldown:
        """Keep whichever of the running and the new cooldown ends later."""
        current = state.cooldown
        if current is not None and now < current.until and current.until >= cooldown.until:
            # Keep the end time and reason, but report the up-to-date attempt count.
            cooldown = Cooldown(current.provider, current.until, current.reason, state.attempt)
        state.cooldown = cooldown
        return cooldown

    @staticmethod
    def _reason(result: ProbeResult, given: float | None) -> str:
        what = "rate limited" if result.outcome is Outcome.RATE_LIMITED else "overloaded"
        if result.http_status is not None:
            what += f" ({result.http_status})"
        info = result.rate_limit
        if given is None:
            return what
        if info.retry_after_seconds is not None:
            return f"{what}: retry-after {_fmt(given)}"
        quota = _exhausted_quota(info)
        kind = quota[0] if quota else "quota"
        return f"{what}: {kind} resets in {_fmt(given)}"

    def active(self, provider: str) -> Cooldown | None:
        """The running cooldown, or None once `clock.time() >= until`."""
        state = self._states.get(provider)
        if state is None or state.cooldown is None:
            return None
        if self._clock.time() >= state.cooldown.until:
            state.cooldown = None  # the attempt count survives until a success
            return None
        return state.cooldown

    def all_active(self) -> list[Cooldown]:
        """Running cooldowns, sorted by provider."""
        found = (self.active(p) for p in sorted(self._states))
        return [c for c in found if c is not None]

    def attempt(self, provider: str) -> int:
        """Consecutive rate-limited/overloaded outcomes since the last success."""
        state = self._states.get(provider)
        return state.attempt if state else 0
