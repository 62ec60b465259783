"""The budget ledger: reserve a probe's worst-case cost before it runs, settle the actual
cost after, and never let a cap be crossed, whatever the timing or a crash.

Caps apply globally and per provider, per day and per month, in the configured time zone.
Sums per (scope, period, window) live in memory (checked and updated without an await in
between, so concurrent reservations cannot both take the last dollar) and every change is
committed to SQLite (`ledger_store`) in one worker thread before the call returns.

Money is integer nano-dollars inside: reservations round up, caps round down, so the
comparison is exact and errs towards refusing. The API speaks float dollars.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

from speed_kings.clock import Clock
from speed_kings.ledger_store import LedgerError, Store

__all__ = [
    "BudgetCaps",
    "Caps",
    "Ledger",
    "LedgerError",
    "Refusal",
    "Reservation",
    "SpendRow",
]

GLOBAL = "global"
PERIODS = ("day", "month")
NANO = 10**9
MAX_AMOUNT = 1e9  # dollars; keeps every sum far inside SQLite's 64-bit integers


def _nanos(dollars: float, what: str, *, up: bool) -> int:
    """Dollars to nano-dollars via the decimal the float prints as, so $0.000123 is 123000,
    not 123001 (0.000123 * 1e9 is 123000.00000000001 in binary floating point)."""
    if not math.isfinite(dollars) or not 0 <= dollars <= MAX_AMOUNT:
        raise ValueError(f"{what} must be a dollar amount from 0 to {MAX_AMOUNT:g}, not {dollars}")
    scaled = Decimal(repr(float(dollars))).scaleb(9)
    return int(scaled.to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR))


def _usd(dollars: float) -> str:
    whole, _, frac = f"{dollars:.9f}".rstrip("0").partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


@dataclass(frozen=True)
class Caps:
    """Spending caps in dollars for one scope; None means no cap for that period."""

    daily: float | None = None
    monthly: float | None = None

    def __post_init__(self) -> None:
        for name in ("daily", "monthly"):
            value = getattr(self, name)
            if value is not None:
                _nanos(value, f"the {name} cap", up=False)

    def limit(self, period: str) -> float | None:
        return self.daily if period == "day" else self.monthly


@dataclass(frozen=True)
class BudgetCaps:
    global_caps: Caps = Caps()
    providers: Mapping[str, Caps] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if GLOBAL in self.providers:
            raise ValueError(f"{GLOBAL!r} is the global scope and cannot name a provider")


@dataclass(frozen=True)
class Reservation:
    """A committed worst-case reservation. `day` and `month` are the windows (ledger time
    zone, at reserve time) it counts in, even if settled after midnight."""

    id: int
    provider: str
    amount: float
    day: str
    month: str


@dataclass(frozen=True)
class Refusal:
    """Why a reservation was refused: the first cap it would cross."""

    scope: str  # "global" or a provider name
    period: str  # "day" or "month"
    limit: float
    spent: float
    needed: float

    def __str__(self) -> str:
        scope = "global" if self.scope == GLOBAL else f"provider {self.scope}"
        period = "daily" if self.period == "day" else "monthly"
        return (
            f"{scope} {period} budget cap {_usd(self.limit)} would be exceeded: "
            f"{_usd(self.spent)} spent + {_usd(self.needed)} for this probe"
        )


@dataclass(frozen=True)
class SpendRow:
    scope: str
    period: str
    limit: float | None
    spent: float  # dollars in the current window, open reservations at their worst case


@dataclass(frozen=True)
class _Open:
    provider: str
    nanos: int
    day: str
    month: str


_Key = tuple[str, str, str]  # (scope, period, window): ("groq", "day", "2026-11-22")


def _previous_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year - 1:04d}-12" if mon == 1 else f"{year:04d}-{mon - 1:02d}"


class Ledger:
    """Use `await Ledger.open(...)`; one Ledger per state dir (a lock file enforces it)."""

    def __init__(
        self,
        store: Store,
        executor: ThreadPoolExecutor,
        caps: BudgetCaps,
        tz: ZoneInfo,
        clock: Clock,
    ) -> None:
        self._store = store
        self._executor = executor
        self._tz = tz
        self._clock = clock
        self._sums: dict[_Key, int] = {}
        self._open: dict[int, _Open] = {}
        self._last_id = 0
        self._month = ""  # the newest month seen: windows before the one preceding it go
        self._closed = False
        self._recovered = 0
        self._caps = caps
        self._limits: dict[tuple[str, str], int] = {}
        self.set_caps(caps)

    @classmethod
    async def open(cls, state_dir: Path, caps: BudgetCaps, tz: ZoneInfo, clock: Clock) -> Ledger:
        """Creates the state dir and database if needed, takes the lock, recovers
        reservations a dead process left open. Raises LedgerError if unusable."""
        store = Store(Path(state_dir))
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="speedkings-ledger")
        ledger = cls(store, executor, caps, tz, clock)
        _, ledger._month = ledger._windows(clock.time())
        try:
            loaded = await asyncio.get_running_loop().run_in_executor(
                executor, store.open, _previous_month(ledger._month)
            )
        except BaseException:
            # Cancelled mid-open: the queued close still runs after the open finishes.
            executor.submit(store.close)
            executor.shutdown(wait=False)
            raise
        for provider, day, mon, nanos in loaded.totals:
            ledger._count(provider, day, mon, nanos)
        ledger._last_id = loaded.last_id
        ledger._recovered = loaded.recovered
        return ledger

    @property
    def recovered(self) -> int:
        """Reservations found open at start (their process died mid-probe), now counted
        as settled at their worst case."""
        return self._recovered

    @property
    def path(self) -> Path:
        return self._store.db_path

    # -- reserve / settle / release --------------------------------------------------

    async def reserve(self, provider: str, amount: float) -> Reservation | Refusal:
        """Reserves `amount` (the probe's worst case) if no applicable cap would be crossed.
        The reservation is committed to disk before this returns."""
        self._check_usable()
        if not provider or provider == GLOBAL:
            raise ValueError(f"invalid provider name {provider!r}")
        nanos = _nanos(amount, "a reservation", up=True)
        now = self._clock.time()
        day, month = self._windows(now)
        refusal = self._refusal(provider, nanos, day, month)
        if refusal is not None:
            return refusal
        prune_before = self._roll(month)
        # Decided and counted with no await in between: a concurrent reserve sees this one.
        self._last_id += 1
        entry_id = self._last_id
        self._open[entry_id] = _Open(provider, nanos, day, month)
        self._count(provider, day, month, nanos)

        def done(error: BaseException | None) -> None:
            if error is not None and self._open.pop(entry_id, None) is not None:
                self._count(provider, day, month, -nanos)

        args = (entry_id, provider, nanos, now, day, month, prune_before)
        try:
            await self._persist(self._store.insert, args, done)
        except asyncio.CancelledError:
            self._abandon(entry_id)  # the caller never gets it, so it must not stay counted
            raise
        return Reservation(entry_id, provider, nanos / NANO, day, month)

    async def settle(self, reservation: Reservation, actual: float) -> None:
        """Records what the probe cost, replacing the reservation. `actual` above the
        reservation is recorded as is (the provider billed it); below 0 counts as 0; NaN or
        infinite (cost unknown) keeps the worst case."""
        self._check_usable()
        billed = (
            _nanos(max(0.0, actual), "an actual cost", up=True) if math.isfinite(actual) else None
        )
        entry = self._take(reservation)  # after validation: a bad value leaves it open
        nanos = entry.nanos if billed is None else billed
        await self._finish(reservation.id, entry, nanos, "settled")

    async def release(self, reservation: Reservation) -> None:
        """The probe was never sent: its reservation costs nothing."""
        self._check_usable()
        await self._finish(reservation.id, self._take(reservation), 0, "released")

    async def _finish(self, entry_id: int, entry: _Open, nanos: int, state: str) -> None:
        delta = nanos - entry.nanos
        if delta > 0:  # billed above the worst case: count it at once
            self._count(entry.provider, entry.day, entry.month, delta)

        def done(error: BaseException | None) -> None:
            # Money is freed only once the lower cost is on disk, so the in-memory sums never
            # fall below what a crash-and-reopen would count.
            if error is None and delta < 0:
                self._count(entry.provider, entry.day, entry.month, delta)

        await self._persist(self._store.finish, (entry_id, nanos, state), done)

    def _take(self, reservation: Reservation) -> _Open:
        entry = self._open.get(reservation.id)
        if entry is None or entry.provider != reservation.provider:
            raise ValueError(f"reservation {reservation.id} is not open in this ledger")
        del self._open[reservation.id]
        return entry

    # -- reading ----------------------------------------------------------------------

    def spend(self) -> list[SpendRow]:
        """Both periods of the global scope and of every provider with a cap or with spend
        in the current day or month (clock + time zone). Memory only, no I/O."""
        day, month = self._windows(self._clock.time())
        windows = {"day": day, "month": month}
        providers = {p for p, caps in self._caps.providers.items() if caps != Caps()}
        providers.update(
            scope
            for (scope, period, window), nanos in self._sums.items()
            if nanos and scope != GLOBAL and window == windows[period]
        )
        return [
            SpendRow(
                scope,
                period,
                self._scope_caps(scope).limit(period),
                self._sums.get((scope, period, windows[period]), 0) / NANO,
            )
            for scope in [GLOBAL, *sorted(providers)]
            for period in PERIODS
        ]

    def _scope_caps(self, scope: str) -> Caps:
        if scope == GLOBAL:
            return self._caps.global_caps
        return self._caps.providers.get(scope, Caps())

    def spent(self, scope: str, period: str) -> float:
        """Dollars spent (open reservations at their worst case) by `scope` ("global" or a
        provider) in the current "day" or "month"."""
        if period not in PERIODS:
            raise ValueError(f"period must be 'day' or 'month', not {period!r}")
        day, month = self._windows(self._clock.time())
        return self._sums.get((scope, period, day if period == "day" else month), 0) / NANO

    def set_caps(self, caps: BudgetCaps) -> None:
        """New caps apply to the next reservation; spend so far is kept."""
        limits: dict[tuple[str, str], int] = {}
        scopes: list[tuple[str, Caps]] = [(GLOBAL, caps.global_caps), *caps.providers.items()]
        for scope, scope_caps in scopes:
            for period in PERIODS:
                limit = scope_caps.limit(period)
                if limit is not None:
                    limits[scope, period] = _nanos(limit, f"the {scope} {period} cap", up=False)
        self._caps, self._limits = caps, limits

    def _refusal(self, provider: str, nanos: int, day: str, month: str) -> Refusal | None:
        if nanos == 0:
            return None  # a free probe cannot cross a cap, even one already crossed
        for scope in (provider, GLOBAL):  # the narrower cap first: it says more
            for period, window in (("day", day), ("month", month)):
                limit = self._limits.get((scope, period))
                if limit is None:
                    continue
                spent = self._sums.get((scope, period, window), 0)
                if spent + nanos > limit:
                    limit_usd = self._scope_caps(scope).limit(period) or 0.0
                    return Refusal(scope, period, limit_usd, spent / NANO, nanos / NANO)
        return None

    # -- bookkeeping ------------------------------------------------------------------

    def _windows(self, now: float) -> tuple[str, str]:
        local = datetime.fromtimestamp(now, self._tz)
        month = f"{local.year:04d}-{local.month:02d}"
        return f"{month}-{local.day:02d}", month

    def _count(self, provider: str, day: str, month: str, nanos: int) -> None:
        for scope in (provider, GLOBAL):
            for key in ((scope, "day", day), (scope, "month", month)):
                self._sums[key] = self._sums.get(key, 0) + nanos

    def _roll(self, month: str) -> str | None:
        """On the first reservation of a new month: forget windows older than the previous
        month, in memory now and on disk with the insert. Returns the cut-off or None."""
        if month <= self._month:
            return None
        self._month = month
        cutoff = _previous_month(month)
        keep = {o.month for o in self._open.values()}
        for key in [k for k in self._sums if k[2][:7] < cutoff and k[2][:7] not in keep]:
            del self._sums[key]
        return cutoff

    async def _persist(
        self,
        fn: Callable[..., None],
        args: tuple[Any, ...],
        done: Callable[[BaseException | None], None],
    ) -> None:
        """Runs `fn(*args)` in the worker thread. `done(error)` runs on the event loop when
        it finishes, even if the awaiting task was cancelled meanwhile; it is scheduled
        before this coroutine resumes, so the sums are settled when the call returns."""
        loop = asyncio.get_running_loop()
        job = self._executor.submit(fn, *args)
        job.add_done_callback(lambda f: _call_soon(loop, done, f))
        await asyncio.shield(asyncio.wrap_future(job))

    def _abandon(self, entry_id: int) -> None:
        """Releases a reservation whose reserve() was cancelled, after its insert (the one
        worker runs jobs in order). If that write fails it stays counted: never spend blind."""

        def done(error: BaseException | None) -> None:
            entry = self._open.pop(entry_id, None)
            if entry is not None and error is None:
                self._count(entry.provider, entry.day, entry.month, -entry.nanos)

        loop = asyncio.get_running_loop()
        try:
            job = self._executor.submit(self._store.finish, entry_id, 0, "released")
        except RuntimeError:  # executor shut down by close(): recovered at the next open
            return
        job.add_done_callback(lambda f: _call_soon(loop, done, f))

    def _check_usable(self) -> None:
        if self._closed:
            raise RuntimeError("the budget ledger is closed")

    async def close(self) -> None:
        """Waits for pending writes, closes the database and releases the lock. Open
        reservations stay on disk and are counted at their worst case by the next open."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._store.close)
        finally:
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> Ledger:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _call_soon(
    loop: asyncio.AbstractEventLoop,
    done: Callable[[BaseException | None], None],
    job: Future[None],
) -> None:
    error = job.exception() if not job.cancelled() else asyncio.CancelledError()
    with contextlib.suppress(RuntimeError):  # the loop is gone, and the sums with it
        loop.call_soon_threadsafe(done, error)
