from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from speed_kings.ledger import (
    BudgetCaps,
    Caps,
    Ledger,
    LedgerError,
    Refusal,
    Reservation,
    SpendRow,
)

T = TypeVar("T")
UTC = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")


class FakeClock:
    """Wall time that only moves when a test says so."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when.timestamp()


def at(tz: ZoneInfo, y: int, mo: int, d: int, h: int, mi: int, s: int = 0, fold: int = 0) -> float:
    return datetime(y, mo, d, h, mi, s, tzinfo=tz, fold=fold).timestamp()


def caps(daily: float | None = None, monthly: float | None = None, **providers: Caps) -> BudgetCaps:
    return BudgetCaps(Caps(daily, monthly), providers)


async def in_worker(ledger: Ledger, fn: Callable[[], T]) -> T:
    """Runs `fn` in the ledger's own database thread (the connection lives there)."""
    return await asyncio.get_running_loop().run_in_executor(ledger._executor, fn)


def conn(ledger: Ledger) -> sqlite3.Connection:
    assert ledger._store._conn is not None
    return ledger._store._conn


def reserved(result: Reservation | Refusal) -> Reservation:
    assert isinstance(result, Reservation), str(result)
    return result


def refused(result: Reservation | Refusal) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


@pytest.fixture
def clock() -> FakeClock:  # overrides the SystemClock fixture of conftest
    return FakeClock(at(UTC, 2026, 11, 22, 12, 0))


@pytest.fixture
async def open_ledger(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Callable[..., Any]]:
    """open_ledger(caps, tz=UTC, path=tmp_path/state) -> Ledger, closed at the end."""
    opened: list[Ledger] = []

    async def make(
        budget: BudgetCaps | None = None, tz: ZoneInfo = UTC, path: Path | None = None
    ) -> Ledger:
        ledger = await Ledger.open(path or tmp_path / "state", budget or BudgetCaps(), tz, clock)
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        await ledger.close()


# -- arithmetic -------------------------------------------------------------------------


async def test_reserve_settle_release_arithmetic(open_ledger: Any) -> None:
    ledger: Ledger = await open_ledger(caps(daily=1.0))
    a = reserved(await ledger.reserve("groq", 0.25))
    b = reserved(await ledger.reserve("groq", 0.25))
    assert (a.provider, a.amount, a.day, a.month) == ("groq", 0.25, "2026-11-22", "2026-11")
    assert b.id > a.id
    assert ledger.spent("global", "day") == 0.5
    assert ledger.spent("groq", "month") == 0.5
    await ledger.settle(a, 0.1)
    assert ledger.spent("global", "day") == pytest.approx(0.35)
    await ledger.release(b)
    assert ledger.spent("global", "day") == pytest.approx(0.1)
    assert ledger.spent("groq", "day") == pytest.approx(0.1)
    assert ledger.spent("cerebras", "day") == 0.0


async def test_settle_above_the_worst_case_records_the_bill(open_ledger: Any) -> None:
    ledger: Ledger = await open_ledger(caps(daily=1.0))
    r = reserved(await ledger.reserve("groq", 0.9))
    await ledger.settle(r, 1.2)  # the provider billed more than our worst case
    assert ledger.spent("global", "day") == pytest.approx(1.2)
    refusal = refused(await ledger.reserve("groq", 0.01))
    assert refusal.spent == pytest.approx(1.2)


async def test_settle_negative_nan_and_tiny(open_ledger: Any) -> None:
    ledger: Ledger = await open_ledger()
    r = reserved(await ledger.reserve("a", 0.5))
    await ledger.settle(r, -3.0)  # never less than 0
    assert ledger.spent("a", "day") == 0.0
    r = reserved(await ledger.reserve("a", 0.5))
    await ledger.settle(r, math.nan)  # cost unknown: keep the worst case
    assert ledger.spent("a", "day") == 0.5
    r = reserved(await ledger.reserve("b", 0.001))
    with pytest.raises(ValueError, match="actual cost"):
        await ledger.settle(r, 2e9)  # a bad value leaves the reservation open
    await ledger.settle(r, 3e-9)  # a few tokens of a cheap model is not rounded to 0
    assert ledger.spent("b", "day") == pytest.approx(3e-9)


async def test_settle_or_release_twice_is_an_error(open_ledger: Any) -> None:
    ledger: Ledger = await open_ledger()
    r = reserved(await ledger.reserve("a", 0.5))
    await ledger.settle(r, 0.2)
    with pytest.raises(ValueError, match="not open"):
        await ledger.settle(r, 0.2)
    with pytest.raises(ValueError, match="not open"):
        await ledger.release(r)
    assert ledger.spent("a", "day") == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("budget", "scope", "period"),
    [
        (caps(groq=Caps(daily=1.0)), "groq", "day"),
        (caps(groq=Caps(monthly=1.0)), "groq", "month"),
        (caps(daily=1.0), "global", "day"),
        (caps(monthly=1.0), "global", "month"),
        (caps(daily=5, monthly=1.0, groq=Caps(2, 3)), "global", "month"),
        (caps(daily=1.0, monthly=1.0, groq=Caps(1.0, 1.0)), "groq", "day"),  # narrowest first
    ],
)
async def test_refusal_names_the_cap(
    open_ledger: Any, budget: BudgetCaps, scope: str, period: str
) -> None:
    ledger: Ledger = await open_ledger(budget)
    reserved(await ledger.reserve("groq", 0.6))
    refusal = refused(await ledger.reserve("groq", 0.6))
    assert (refusal.scope, refusal.period) == (scope, period)
    assert (refusal.limit, refusal.spent, refusal.needed) == (1.0, 0.6, 0.6)
    assert ledger.spent("global", "day") == 0.6  # a refusal reserves nothing


def test_refusal_reads_as_a_sentence() -> None:
    refusal = Refusal("groq", "day", 1.0, 0.95, 0.000012)
    assert str(refusal) == (
        "provider groq daily budget cap $1.00 would be exceeded: $0.95 spent + $0.000012 for "
        "this probe"
    )
    assert str(Refusal("global", "month", 30, 29.5, 1)).startswith(
        "global monthly budget cap $30.00"
    )


async def test_provider_and_global_caps_both_apply(open_ledger: Any) -> None:
    ledger: Ledger = await open_ledger(caps(daily=1.0, groq=Caps(daily=0.5)))
    reserved(await ledger.reserve("groq", 0.5))
    assert refused(await ledger.reserve("groq", 0.1)).scope == "groq"
    reserved(await ledger.reserve("cerebras", 0.5))  # no cap of its own, the global one left
    refusal = refused(await ledger.reserve("cerebras", 0.1))
    assert (refusal.scope, refusal.period, refusal.spent) == ("global", "day", 1.0)


async def test_no_caps_always_allowed(open_ledger: Any) -> None:
    ledger: Ledger = await open_ledger()
    for _ in range(20):
        reserved(await ledger.reserve("a", 1e6))
    assert ledger.spent("global", "month") == 2e7


async def test_a_free_probe_is_allowed_even_past_a_cap(open_ledger: Any) -> None:
    ledger: Ledger = await open_ledger(caps(daily=0.0))
    assert isinstance(await ledger.reserve("ollama", 0.0), Reservation)
    assert isinstance(await ledger.reserve("groq", 1e-9), Refusal)


async def test_exact_decimal_fit(open_ledger: Any) -> None:
    # 0.1 + 0.2 > 0.3 in binary floats; in the ledger's nano-dollars it fits exactly.
    ledger: Ledger = await open_ledger(caps(daily=0.3))
    reserved(await ledger.reserve("a", 0.1))
    reserved(await ledger.reserve("a", 0.2))
    assert ledger.spent("global", "day") == 0.3
    assert isinstance(await ledger.reserve("a", 1e-9), Refusal)


async def test_amounts_round_up_and_caps_down(open_ledger: Any) -> None:
    ledger: Ledger = await open_ledger(caps(daily=1.0000000019))  # floors to 1.000000001
    r = reserved(await ledger.reserve("a", 0.0000000001))  # ceils to 1e-9
    assert r.amount == 1e-9
    reserved(await ledger.reserve("a", 1.0))
    assert isinstance(await ledger.reserve("a", 1e-10), Refusal)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda lg: lg.reserve("a", -0.1), "amount"),
        (lambda lg: lg.reserve("a", math.nan), "amount"),
        (lambda lg: lg.reserve("a", math.inf), "amount"),
        (lambda lg: lg.reserve("global", 0.1), "provider"),
        (lambda lg: lg.reserve("", 0.1), "provider"),
    ],
)
async def test_invalid_reservations(
    open_ledger: Any, call: Callable[[Ledger], Any], message: str
) -> None:
    ledger: Ledger = await open_ledger()
    with pytest.raises(ValueError, match=message):
        await call(ledger)


def test_invalid_caps() -> None:
    with pytest.raises(ValueError, match="daily cap"):
        Caps(daily=-1)
    with pytest.raises(ValueError, match="monthly cap"):
        Caps(monthly=math.nan)
    with pytest.raises(ValueError, match="global"):
        BudgetCaps(providers={"global": Caps(1.0)})


# -- windows ------------------------------------------------------------------------------


async def test_day_and_month_rollover(open_ledger: Any, clock: FakeClock) -> None:
    ledger: Ledger = await open_ledger(caps(daily=1.0, monthly=1.5))
    clock.now = at(UTC, 2026, 11, 30, 23, 59, 59)
    reserved(await ledger.reserve("a", 1.0))
    assert isinstance(await ledger.reserve("a", 0.1), Refusal)
    clock.now += 1  # 2026-12-01 00:00:00: new day and new month
    assert ledger.spent("global", "day") == 0.0
    assert ledger.spent("global", "month") == 0.0
    reserved(await ledger.reserve("a", 1.0))
    clock.now = at(UTC, 2026, 12, 2, 0, 0)  # new day, same month
    assert ledger.spent("global", "day") == 0.0
    assert ledger.spent("global", "month") == 1.0
    refusal = refused(await ledger.reserve("a", 0.6))
    assert (refusal.scope, refusal.period) == ("global", "month")


async def test_a_reservation_counts_in_the_window_it_was_made_in(
    open_ledger: Any, clock: FakeClock
) -> None:
    ledger: Ledger = await open_ledger(caps(daily=1.0))
    clock.now = at(UTC, 2026, 11, 22, 23, 59, 59)
    r = reserved(await ledger.reserve("a", 0.8))
    clock.now += 5  # the probe ends after midnight
    await ledger.settle(r, 0.5)
    assert (r.day, ledger.spent("a", "day"), ledger.spent("a", "month")) == ("2026-11-22", 0, 0.5)
    reserved(await ledger.reserve("a", 1.0))  # today is untouched by yesterday's probe
    clock.now -= 5  # a wall clock stepped back sees yesterday's spend again
    assert ledger.spent("a", "day") == 0.5


async def test_spring_forward_day_is_23_hours_in_new_york(
    open_ledger: Any, clock: FakeClock
) -> None:
    ledger: Ledger = await open_ledger(caps(daily=1.0), tz=NEW_YORK)
    clock.now = at(NEW_YORK, 2026, 3, 7, 23, 59, 59)
    assert reserved(await ledger.reserve("a", 1.0)).day == "2026-03-07"
    clock.now += 1
    r = reserved(await ledger.reserve("a", 1.0))  # midnight EST: a new day
    assert r.day == "2026-03-08"
    clock.now += 23 * 3600 - 1  # 23:59:59 EDT: still the 8th, an hour short of 24 h
    assert refused(await ledger.reserve("a", 0.1)).period == "day"
    clock.now += 1  # 00:00 EDT on the 9th, 23 hours after the previous midnight
    assert reserved(await ledger.reserve("a", 1.0)).day == "2026-03-09"


async def test_fall_back_day_is_25_hours_and_month_turns_at_local_midnight(
    open_ledger: Any, clock: FakeClock
) -> None:
    ledger: Ledger = await open_ledger(caps(daily=1.0, monthly=10.0), tz=NEW_YORK)
    clock.now = at(NEW_YORK, 2026, 10, 31, 23, 59, 59)  # 03:59:59 UTC on 1 November
    r = reserved(await ledger.reserve("a", 1.0))
    assert (r.day, r.month) == ("2026-10-31", "2026-10")
    clock.now += 1
    r = reserved(await ledger.reserve("a", 0.5))
    assert (r.day, r.month) == ("2026-11-01", "2026-11")
    assert ledger.spent("global", "month") == 0.5
    clock.now = at(NEW_YORK, 2026, 11, 1, 1, 30, fold=1)  # the second 01:30 (EST)
    reserved(await ledger.reserve("a", 0.5))
    assert refused(await ledger.reserve("a", 0.1)).period == "day"
    clock.now = at(NEW_YORK, 2026, 11, 1, 23, 59, 59)  # 25 h after midnight, same day
    assert refused(await ledger.reserve("a", 0.1)).period == "day"
    clock.now += 1
    assert reserved(await ledger.reserve("a", 1.0)).day == "2026-11-02"


async def test_windows_follow_the_time_zone(
    open_ledger: Any, clock: FakeClock, tmp_path: Path
) -> None:
    clock.now = at(UTC, 2026, 11, 22, 16, 0)  # 01:00 on the 23rd in Tokyo
    tokyo: Ledger = await open_ledger(tz=ZoneInfo("Asia/Tokyo"), path=tmp_path / "tokyo")
    utc: Ledger = await open_ledger(tz=UTC, path=tmp_path / "utc")
    assert reserved(await tokyo.reserve("a", 1)).day == "2026-11-23"
    assert reserved(await utc.reserve("a", 1)).day == "2026-11-22"


# -- spend rows and caps ------------------------------------------------------------------


async def test_spend_rows(open_ledger: Any, clock: FakeClock) -> None:
    budget = caps(daily=2.0, groq=Caps(monthly=1.0), idle=Caps(), zai=Caps(daily=0.5))
    ledger: Ledger = await open_ledger(budget)
    assert ledger.spend() == [
        SpendRow("global", "day", 2.0, 0.0),
        SpendRow("global", "month", None, 0.0),
        SpendRow("groq", "day", None, 0.0),
        SpendRow("groq", "month", 1.0, 0.0),
        SpendRow("zai", "day", 0.5, 0.0),
        SpendRow("zai", "month", None, 0.0),
    ]
    r = reserved(await ledger.reserve("cerebras", 0.25))  # no cap: listed because it spends
    reserved(await ledger.reserve("groq", 0.5))
    rows = {(row.scope, row.period): row for row in ledger.spend()}
    assert rows["cerebras", "day"] == SpendRow("cerebras", "day", None, 0.25)
    assert rows["global", "day"].spent == 0.75
    assert rows["groq", "month"].spent == 0.5
    assert ("idle", "day") not in rows
    await ledger.release(r)
    clock.now += 86400  # next day, same month: cerebras spent nothing this month now
    rows = {(row.scope, row.period): row for row in ledger.spend()}
    assert ("cerebras", "day") not in rows
    assert rows["groq", "day"].spent == 0.0
    assert rows["groq", "month"].spent == 0.5
    with pytest.raises(ValueError, match="period"):
        ledger.spent("global", "week")


async def test_set_caps_applies_to_the_next_reservation(open_ledger: Any) -> None:
    ledger: Ledger = await open_ledger(caps(daily=1.0))
    reserved(await ledger.reserve("a", 0.8))
    ledger.set_caps(caps(daily=0.5))
    assert refused(await ledger.reserve("a", 0.1)).limit == 0.5
    assert ledger.spend()[0] == SpendRow("global", "day", 0.5, 0.8)
    ledger.set_caps(BudgetCaps())
    reserved(await ledger.reserve("a", 5.0))


# -- concurrency --------------------------------------------------------------------------


async def test_fifty_concurrent_reservations_against_a_cap_for_ten(open_ledger: Any) -> None:
    ledger: Ledger = await open_ledger(caps(daily=1.0))
    results = await asyncio.gather(*(ledger.reserve(f"p{i % 3}", 0.1) for i in range(50)))
    accepted = [r for r in results if isinstance(r, Reservation)]
    assert len(accepted) == 10
    assert len({r.id for r in accepted}) == 10
    assert all(isinstance(r, Refusal) and r.scope == "global" for r in results if r not in accepted)
    assert ledger.spent("global", "day") == 1.0
    rows = await in_worker(
        ledger, lambda: conn(ledger).execute("SELECT COUNT(*) FROM entries").fetchone()
    )
    assert rows == (10,)


async def test_concurrent_probes_never_cross_the_cap(open_ledger: Any) -> None:
    ledger: Ledger = await open_ledger(caps(daily=1.0, a=Caps(daily=0.4)))
    peak = 0.0

    async def probe(i: int) -> None:
        nonlocal peak
        result = await ledger.reserve("ab"[i % 2], 0.05 + (i % 7) * 0.01)
        peak = max(peak, ledger.spent("global", "day"))
        if isinstance(result, Reservation):
            await asyncio.sleep(0.001 * (i % 3))
            await (ledger.release(result) if i % 5 == 0 else ledger.settle(result, 0.03))

    await asyncio.gather(*(probe(i) for i in range(120)))
    assert peak <= 1.0
    assert ledger.spent("a", "day") <= 0.4
    assert ledger.spent("global", "day") <= 1.0


async def test_a_cancelled_reservation_is_released(open_ledger: Any) -> None:
    ledger: Ledger = await open_ledger(caps(daily=1.0))
    task = asyncio.create_task(ledger.reserve("a", 0.7))
    await asyncio.sleep(0)  # counted and handed to the worker thread
    assert ledger.spent("a", "day") == 0.7
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    reserved(await ledger.reserve("b", 0.1))  # runs after the release in the worker
    assert ledger.spent("global", "day") == pytest.approx(0.1)
    states = await in_worker(
        ledger, lambda: conn(ledger).execute("SELECT state FROM entries ORDER BY id").fetchall()
    )
    assert states == [("released",), ("reserved",)]


async def test_database_work_runs_in_one_worker_thread(
    open_ledger: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger: Ledger = await open_ledger()
    threads: set[int] = set()
    insert = ledger._store.insert

    def spy(*args: Any) -> None:
        threads.add(threading.get_ident())
        insert(*args)

    monkeypatch.setattr(ledger._store, "insert", spy)
    await asyncio.gather(*(ledger.reserve("a", 0.1) for _ in range(5)))
    assert len(threads) == 1
    assert threading.get_ident() not in threads
    with pytest.raises(sqlite3.ProgrammingError, match="thread"):
        conn(ledger).execute("SELECT 1")  # the connection belongs to the worker
    mode = await in_worker(ledger, lambda: conn(ledger).execute("PRAGMA journal_mode").fetchone())
    sync = await in_worker(ledger, lambda: conn(ledger).execute("PRAGMA synchronous").fetchone())
    assert (mode, sync) == (("wal",), (2,))  # 2 = FULL


# -- persistence --------------------------------------------------------------------------


async def test_close_and_reopen_keeps_the_sums(open_ledger: Any, tmp_path: Path) -> None:
    budget = caps(daily=10.0, a=Caps(monthly=5.0))
    ledger: Ledger = await open_ledger(budget)
    for provider, amount, actual in [("a", 1.0, 0.5), ("b", 2.0, 1.25), ("a", 0.3, None)]:
        r = reserved(await ledger.reserve(provider, amount))
        await (ledger.settle(r, actual) if actual is not None else ledger.release(r))
    before = ledger.spend()
    last = reserved(await ledger.reserve("a", 0.01))
    await ledger.release(last)
    await ledger.close()
    again: Ledger = await open_ledger(budget)
    assert again.spend() == before
    assert again.recovered == 0
    assert reserved(await again.reserve("a", 0.1)).id > last.id  # ids are never reused


async def test_an_open_reservation_survives_reopen_at_its_worst_case(
    open_ledger: Any, tmp_path: Path
) -> None:
    ledger: Ledger = await open_ledger(caps(daily=1.0))
    r = reserved(await ledger.reserve("a", 0.6))
    reserved(await ledger.reserve("a", 0.3))
    await ledger.settle(r, 0.1)
    await ledger.close()  # the second probe never settled
    again: Ledger = await open_ledger(caps(daily=1.0))
    assert again.recovered == 1
    assert again.spent("global", "day") == pytest.approx(0.4)
    rows = await in_worker(
        again,
        lambda: (
            conn(again)
            .execute("SELECT state, reserved_nanousd, actual_nanousd FROM entries ORDER BY id")
            .fetchall()
        ),
    )
    assert rows == [("settled", 600_000_000, 100_000_000), ("settled", 300_000_000, 300_000_000)]


async def test_windows_older_than_last_month_are_pruned(open_ledger: Any, clock: FakeClock) -> None:
    clock.now = at(UTC, 2026, 9, 1, 0, 0)
    ledger: Ledger = await open_ledger()
    for month in (9, 10, 11):
        clock.now = at(UTC, 2026, month, 15, 12, 0)
        await ledger.settle(reserved(await ledger.reserve("a", 1.0)), 1.0)
    months = await in_worker(
        ledger, lambda: conn(ledger).execute("SELECT month FROM entries ORDER BY id").fetchall()
    )
    assert months == [("2026-10",), ("2026-11",)]  # September went when November began
    assert ledger.spent("a", "month") == 1.0
    clock.now = at(UTC, 2026, 10, 15, 12, 0)  # a clock stepped back still sees October
    assert ledger.spent("a", "month") == 1.0


async def test_closed_ledger(open_ledger: Any) -> None:
    ledger: Ledger = await open_ledger()
    await ledger.close()
    await ledger.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await ledger.reserve("a", 0.1)


# -- unusable state dirs ------------------------------------------------------------------


async def test_state_dir_under_a_file_is_not_writable(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / "file.txt").write_text("x")
    state = tmp_path / "file.txt" / "sub"
    with pytest.raises(LedgerError) as err:
        await Ledger.open(state, BudgetCaps(), UTC, clock)
    message = str(err.value)
    assert f"state_dir {state} is not writable" in message
    assert "fix: mount a writable volume" in message
    assert "set state_dir" in message


async def test_state_dir_in_proc_is_not_writable(clock: FakeClock) -> None:
    # /proc refuses new files even to root, unlike a chmod'ed directory.
    with pytest.raises(LedgerError, match=r"state_dir /proc/self is not writable: .*fix:"):
        await Ledger.open(Path("/proc/self"), BudgetCaps(), UTC, clock)


async def test_db_that_cannot_be_opened(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / "ledger.db").mkdir()
    with pytest.raises(LedgerError, match=r"state_dir .* is not writable: .*fix:"):
        await Ledger.open(tmp_path, BudgetCaps(), UTC, clock)


async def test_garbage_db_is_never_silently_reset(tmp_path: Path, clock: FakeClock) -> None:
    db = tmp_path / "ledger.db"
    garbage = b"this is not a database, it is garbage\x00\xff" * 200
    db.write_bytes(garbage)
    with pytest.raises(LedgerError) as err:
        await Ledger.open(tmp_path, BudgetCaps(), UTC, clock)
    assert f"ledger database {db} is corrupt" in str(err.value)
    assert f"move it aside (mv {db} {db}.corrupt" in str(err.value)
    assert db.read_bytes() == garbage
    # The lock is released on failure: with the file moved aside, it opens.
    db.rename(tmp_path / "ledger.db.corrupt")
    ledger = await Ledger.open(tmp_path, BudgetCaps(), UTC, clock)
    await ledger.close()


async def test_damaged_pages_are_detected(open_ledger: Any, tmp_path: Path) -> None:
    ledger: Ledger = await open_ledger(path=tmp_path)
    for _ in range(300):
        await ledger.release(reserved(await ledger.reserve("provider-" + "x" * 40, 0.1)))
    await ledger.close()
    db = tmp_path / "ledger.db"
    data = bytearray(db.read_bytes())
    assert len(data) > 4 * 4096
    data[2 * 4096 : 4 * 4096] = bytes(range(256)) * 32  # two b-tree pages of nonsense
    db.write_bytes(bytes(data))
    with pytest.raises(LedgerError, match=r"corrupt.*fix: stop speed-kings and move it aside"):
        await Ledger.open(tmp_path, BudgetCaps(), UTC, FakeClock(0))


async def test_newer_schema_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(LedgerError, match="schema version 99"):
        await Ledger.open(tmp_path, BudgetCaps(), UTC, clock)


async def test_one_ledger_per_state_dir(open_ledger: Any, tmp_path: Path) -> None:
    first: Ledger = await open_ledger(path=tmp_path)
    with pytest.raises(LedgerError, match="in use by another speed-kings process"):
        await open_ledger(path=tmp_path)
    await first.close()
    await open_ledger(path=tmp_path)  # the lock went with close()


async def test_disk_full_while_reserving(open_ledger: Any) -> None:
    ledger: Ledger = await open_ledger(caps(daily=1000.0))
    pages = await in_worker(ledger, lambda: conn(ledger).execute("PRAGMA page_count").fetchone())
    # SQLite's page limit gives the same SQLITE_FULL as a full volume.
    await in_worker(ledger, lambda: conn(ledger).execute(f"PRAGMA max_page_count = {pages[0]}"))
    committed = 0
    with pytest.raises(LedgerError) as err:
        for _ in range(10_000):
            reserved(await ledger.reserve("a", 0.01))
            committed += 1
    assert "database or disk is full" in str(err.value)
    assert f"fix: free space on the volume holding state_dir {ledger.path.parent}" in str(err.value)
    assert committed > 0
    assert ledger.spent("a", "day") == pytest.approx(committed * 0.01)  # the failed one undone
    await in_worker(ledger, lambda: conn(ledger).execute("PRAGMA max_page_count = 1000000"))
    reserved(await ledger.reserve("a", 0.01))
    assert ledger.spent("a", "day") == pytest.approx((committed + 1) * 0.01)


async def test_a_failed_settle_keeps_the_worst_case(
    open_ledger: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger: Ledger = await open_ledger(caps(daily=1.0))
    cheap = reserved(await ledger.reserve("a", 0.6))
    dear = reserved(await ledger.reserve("a", 0.2))

    def disk_full(*args: Any) -> None:
        raise LedgerError("disk full")

    monkeypatch.setattr(ledger._store, "finish", disk_full)
    with pytest.raises(LedgerError):
        await ledger.settle(cheap, 0.1)  # not on disk: a crash would count 0.6, so must we
    assert ledger.spent("a", "day") == pytest.approx(0.8)
    with pytest.raises(LedgerError):
        await ledger.settle(dear, 0.3)  # billed above the worst case: counted, durable or not
    assert ledger.spent("a", "day") == pytest.approx(0.9)
    with pytest.raises(ValueError, match="not open"):
        await ledger.release(cheap)  # stays counted until the next open recovers it


async def test_float_amounts_convert_exactly(open_ledger: Any) -> None:
    ledger: Ledger = await open_ledger(caps(daily=0.000123))
    r = reserved(await ledger.reserve("a", 0.000123))  # 0.000123 * 1e9 = 123000.00000000001
    assert r.amount == 0.000123
    assert ledger.spent("a", "day") == 0.000123
