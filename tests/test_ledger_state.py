"""Stateful property test: random prices, reserve/settle/release, clock jumps, crashes and
restarts against an exact model of the ledger in integer nano-dollars."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from speed_kings.ledger import BudgetCaps, Caps, Ledger, Refusal, Reservation
from tests.test_ledger import FakeClock

NANO = 10**9
TZ = ZoneInfo("America/New_York")
START = datetime(2026, 10, 31, 22, 0, tzinfo=TZ).timestamp()  # month end and DST end ahead
PROVIDERS = ("a", "b", "c")
PERIODS = ("day", "month")

limits = st.one_of(st.none(), st.integers(0, 2 * NANO))
caps_strategy = st.builds(
    lambda g, providers: (g, providers),
    st.tuples(limits, limits),
    st.dictionaries(st.sampled_from(PROVIDERS), st.tuples(limits, limits), max_size=3),
)

Limits = tuple[tuple[int | None, int | None], dict[str, tuple[int | None, int | None]]]


def to_caps(limits: Limits) -> BudgetCaps:
    def caps(pair: tuple[int | None, int | None]) -> Caps:
        return Caps(*(None if n is None else n / NANO for n in pair))

    global_pair, providers = limits
    return BudgetCaps(caps(global_pair), {p: caps(pair) for p, pair in providers.items()})


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.root = Path(tempfile.mkdtemp(prefix="speedkings-ledger-"))
        self.generation = 0
        self.clock = FakeClock(START)
        self.sums: dict[tuple[str, str, str], int] = {}
        self.open: list[tuple[Reservation, int]] = []
        self.limits: Limits = ((None, None), {})
        self.ledger: Ledger | None = None
        self.may_exceed = False  # overbilled, or a cap lowered below what was spent

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def state_dir(self) -> Path:
        return self.root / f"gen{self.generation}"

    def windows(self) -> dict[str, str]:
        local = datetime.fromtimestamp(self.clock.now, TZ)
        return {"day": local.strftime("%Y-%m-%d"), "month": local.strftime("%Y-%m")}

    def limit(self, scope: str, period: str) -> int | None:
        pair = self.limits[0] if scope == "global" else self.limits[1].get(scope, (None, None))
        return pair[PERIODS.index(period)]

    def count(self, provider: str, day: str, month: str, nanos: int) -> None:
        for scope in (provider, "global"):
            for key in ((scope, "day", day), (scope, "month", month)):
                self.sums[key] = self.sums.get(key, 0) + nanos

    @property
    def live(self) -> Ledger:
        assert self.ledger is not None
        return self.ledger

    @initialize(limits=caps_strategy)
    def start(self, limits: Limits) -> None:
        self.limits = limits
        self.ledger = self.run(Ledger.open(self.state_dir(), to_caps(limits), TZ, self.clock))

    @rule(provider=st.sampled_from(PROVIDERS), nanos=st.integers(0, NANO // 2))
    def reserve(self, provider: str, nanos: int) -> None:
        w = self.windows()
        expected: tuple[str, str] | None = None
        if nanos:
            for scope in (provider, "global"):
                for period in PERIODS:
                    limit = self.limit(scope, period)
                    spent = self.sums.get((scope, period, w[period]), 0)
                    if expected is None and limit is not None and spent + nanos > limit:
                        expected = (scope, period)
        result = self.run(self.live.reserve(provider, nanos / NANO))
        if expected is None:
            assert isinstance(result, Reservation), str(result)
            assert (result.day, result.month) == (w["day"], w["month"])
            self.count(provider, w["day"], w["month"], nanos)
            self.open.append((result, nanos))
        else:
            assert isinstance(result, Refusal)
            assert (result.scope, result.period) == expected

    @precondition(lambda self: self.open)
    @rule(index=st.integers(0, 10**6), actual=st.integers(0, NANO), overbill=st.booleans())
    def settle(self, index: int, actual: int, overbill: bool) -> None:
        reservation, nanos = self.open.pop(index % len(self.open))
        if not overbill:
            actual = actual % (nanos + 1)  # at most the worst case, as it should be
        self.may_exceed |= actual > nanos
        self.run(self.live.settle(reservation, actual / NANO))
        self.count(reservation.provider, reservation.day, reservation.month, actual - nanos)

    @precondition(lambda self: self.open)
    @rule(index=st.integers(0, 10**6))
    def release(self, index: int) -> None:
        reservation, nanos = self.open.pop(index % len(self.open))
        self.run(self.live.release(reservation))
        self.count(reservation.provider, reservation.day, reservation.month, -nanos)

    @rule(seconds=st.sampled_from([1, 59, 3600, 5 * 3600, 86400, 90000, 31 * 86400]))
    def advance(self, seconds: int) -> None:
        self.clock.now += seconds

    @rule(limits=caps_strategy)
    def change_caps(self, limits: Limits) -> None:
        self.limits = limits
        self.may_exceed = True  # spend under the old caps may exceed the new ones
        self.live.set_caps(to_caps(limits))

    @rule(clean=st.booleans())
    def crash_or_restart(self, clean: bool) -> None:
        before = self.spent_now()
        old = self.live
        if clean:
            self.run(old.close())
        else:
            # The files as a kill -9 would leave them: the committed WAL, no checkpoint.
            source = self.state_dir()
            self.generation += 1
            self.state_dir().mkdir()
            for name in ("ledger.db", "ledger.db-wal"):
                if (source / name).exists():
                    shutil.copy(source / name, self.state_dir() / name)
        self.ledger = self.run(Ledger.open(self.state_dir(), to_caps(self.limits), TZ, self.clock))
        if not clean:
            self.run(old.close())  # the dead process's files are no longer looked at
        assert self.live.recovered == len(self.open)
        self.open.clear()  # counted at their worst case from now on: the model is unchanged
        after = self.spent_now()
        assert all(after[key] >= before[key] for key in before)  # spend never decreases

    def spent_now(self) -> dict[tuple[str, str], float]:
        return {
            (scope, period): self.live.spent(scope, period)
            for scope in (*PROVIDERS, "global")
            for period in PERIODS
        }

    @invariant()
    def sums_match_the_model(self) -> None:
        if self.ledger is None:
            return
        w = self.windows()
        for (scope, period), spent in self.spent_now().items():
            assert spent == self.sums.get((scope, period, w[period]), 0) / NANO

    @invariant()
    def caps_hold(self) -> None:
        if self.ledger is None or self.may_exceed:
            return
        w = self.windows()
        for scope in (*PROVIDERS, "global"):
            for period in PERIODS:
                limit = self.limit(scope, period)
                if limit is not None:
                    assert self.sums.get((scope, period, w[period]), 0) <= limit

    def teardown(self) -> None:
        if self.ledger is not None:
            self.run(self.ledger.close())
        self.loop.close()
        shutil.rmtree(self.root, ignore_errors=True)


LedgerMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerMachine = LedgerMachine.TestCase
