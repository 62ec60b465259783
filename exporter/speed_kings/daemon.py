"""The exporter: probes comparisons on schedule within budget, exports what it measured.

One `Daemon` owns every task it starts: the scheduler's round jobs register themselves in
`_inflight` so a SIGTERM can drain them, and a reload swaps the whole plan at once.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import signal
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from structlog.typing import FilteringBoundLogger

from speed_kings import __version__
from speed_kings.catalog import Catalog
from speed_kings.clock import Clock
from speed_kings.config import Config
from speed_kings.cooldown import Cooldowns
from speed_kings.http import make_session
from speed_kings.keys import secrets_from_environ
from speed_kings.ledger import BudgetCaps, Caps, Ledger, LedgerError, Refusal, Reservation
from speed_kings.metrics import Metrics
from speed_kings.plans import Plan, RoundPlan, SeriesPlan, build_plan
from speed_kings.probe import run_probe
from speed_kings.redact import Redactor
from speed_kings.result import Outcome, ProbeResult
from speed_kings.status import BudgetRow, CooldownRow, ProviderRow, StatusSnapshot
from speed_kings.throttle import ThrottleDetector

RECENT_PROBES = 100
# An unusable ledger (full disk, read-only state dir) is opened again at most this often,
# from the probe path: fixed without a restart, paid providers resume.
LEDGER_RETRY_SECONDS = 5.0
# Loads the config file again (and the catalog it names): used at reload.
ConfigLoader = Callable[[], tuple[Config, Catalog]]


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    config_path: str  # shown on the status page; "(built-in demo)" for the demo
    state_dir: Path  # resolved at start; a reload cannot move it
    demo: bool = False
    drain_seconds: float = 30.0  # SIGTERM: how long in-flight probes may finish
    simulated_providers: frozenset[str] = frozenset()


class _StructlogHandler(logging.Handler):
    """Forwards stdlib log records (APScheduler's) to the daemon's structured logger."""

    def __init__(self, logger: FilteringBoundLogger) -> None:
        super().__init__()
        self._log = logger

    def emit(self, record: logging.LogRecord) -> None:
        self._log.log(
            record.levelno,
            "scheduler",
            message=record.getMessage(),
            exception=logging.Formatter().formatException(record.exc_info)
            if record.exc_info
            else None,
        )


def _freeze_long_lived() -> None:
    """Takes what lives as long as the config (modules, catalog, plan, metric families) out
    of the garbage collector's scans. A full collection over them held the loop, on which
    token arrivals are timestamped, for up to ~175 ms at 1,000 series; after `gc.freeze()`
    it takes ~0.01 ms. Probe results made later stay collectable.

    Unfrozen first: frozen objects are never scanned, so a cycle among them (the previous
    config's, or a probe's exception and traceback, in flight at the last freeze) would
    never be freed; each reload leaked ~130 objects that way (tests/test_soak.py)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def budget_caps(config: Config) -> BudgetCaps:
    b = config.budget
    return BudgetCaps(
        global_caps=Caps(b.global_.daily, b.global_.monthly),
        providers={name: Caps(c.daily, c.monthly) for name, c in b.providers.items()},
    )


class Daemon:
    def __init__(
        self,
        *,
        load_config: ConfigLoader,
        config: Config,
        catalog: Catalog,
        clock: Clock,
        registry: CollectorRegistry,
        logger: FilteringBoundLogger,
        environ: Mapping[str, str],
        options: DaemonOptions,
    ) -> None:
        self._load_config = load_config
        self._catalog = catalog
        self._clock = clock
        self._log = logger
        self._environ = environ
        self._options = options
        self.metrics = Metrics(registry, version=__version__)
        self._config = config
        self._tz = ZoneInfo(config.timezone)
        self._plan = self._build_plan(config)
        self._redactor = self._make_redactor(self._plan)
        self._cooldowns = Cooldowns(
            clock,
            backoff_initial=config.rate_limits.backoff_initial,
            backoff_max=config.rate_limits.backoff_max,
        )
        t = config.throttling
        self._throttle = ThrottleDetector(
            factor=t.factor, window=t.window, min_samples=t.min_samples
        )
        self._recent: deque[dict[str, Any]] = deque(maxlen=RECENT_PROBES)
        self._last: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._provider_locks: dict[str, asyncio.Lock] = {}
        self._slots = asyncio.Semaphore(config.concurrency)
        self._inflight: set[asyncio.Task[Any]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._scheduler: AsyncIOScheduler | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ledger: Ledger | None = None
        self._ledger_error: str | None = None
        self._ledger_tried = -math.inf  # monotonic time of the last open attempt
        self._ledger_opening = asyncio.Lock()
        self._started_at = clock.time()
        self._reload_error: str | None = None
        self._stopping = asyncio.Event()
        self._scheduler_log = _StructlogHandler(logger)

    # ---- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        # Free providers keep being probed without it; paid ones are skipped, not spent blind.
        await self._open_ledger()
        self._session = make_session(
            self._clock, fresh_connections=self._config.defaults.fresh_connections
        )
        # APScheduler reports through stdlib logging: keep its warnings (a round still running
        # when the next is due, a job that raised) in our structured log, not bare stderr.
        scheduler_logger = logging.getLogger("apscheduler")
        scheduler_logger.addHandler(self._scheduler_log)
        scheduler_logger.setLevel(logging.WARNING)
        scheduler_logger.propagate = False
        self._scheduler = AsyncIOScheduler(timezone=self._tz)
        self._apply_plan(self._plan, first=True)
        self._scheduler.start()
        self.metrics.reloaded(True, self._clock.time())
        _freeze_long_lived()
        self._log.info(
            "started",
            version=__version__,
            config=self._options.config_path,
            demo=self._options.demo,
            comparisons=sorted(self._plan.rounds),
        )

    async def stop(self) -> None:
        """Graceful: no new rounds; in-flight probes get `drain_seconds` to finish.
        The scheduler is only paused while they do: its shutdown cancels running jobs."""
        self._stopping.set()
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.pause()
        pending = {t for t in self._inflight | self._background if not t.done()}
        if pending:
            self._log.info("draining", probes_in_flight=len(pending))
            _, late = await asyncio.wait(pending, timeout=self._options.drain_seconds)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        logging.getLogger("apscheduler").removeHandler(self._scheduler_log)
        if self._session is not None:
            await self._session.close()
        if self._ledger is not None:
            await self._ledger.close()
        self._log.info("stopped")

    def install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_signal_handler(signal.SIGTERM, self._stopping.set)
        loop.add_signal_handler(signal.SIGINT, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload_in_background)

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    def request_stop(self) -> None:
        self._stopping.set()

    def _reload_in_background(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- configuration ----------------------------------------------------------------

    def _build_plan(self, config: Config) -> Plan:
        providers = config.resolved_providers(self._catalog)
        plan = build_plan(config, providers, self._environ, self._options.simulated_providers)
        for name, why in sorted(plan.skipped_providers.items()):
            self._log.warning("provider_not_probed", provider=name, reason=why)
        return plan

    def _make_redactor(self, plan: Plan) -> Redactor:
        """Every key the plan uses and every secret-looking value of the environment
        (key files re-read, so a rotated key is known too)."""
        return Redactor([*plan.keys.values(), *secrets_from_environ(self._environ)])

    def _apply_plan(self, plan: Plan, *, first: bool) -> None:
        assert self._scheduler is not None
        if not first:
            self._scheduler.remove_all_jobs()
        for series in plan.series():
            t = series.spec.target
            self.metrics.declare(
                t.provider,
                t.model,
                [series.spec.prompt_name],
                series.hardware,
                t.wire,
                series.simulated,
            )
        for name, round_plan in plan.rounds.items():
            self._scheduler.add_job(
                self._run_round,
                self._trigger(round_plan),
                args=[name],
                id=name,
                name=name,
                coalesce=True,  # missed runs collapse into one
                max_instances=1,
                misfire_grace_time=None,
                next_run_time=datetime.now(self._tz),  # data right away, then on schedule
            )
        self._refresh_budget_gauges()

    def _trigger(self, round_plan: RoundPlan) -> IntervalTrigger | CronTrigger:
        schedule = round_plan.comparison.schedule
        if schedule is not None and schedule.cron:
            return CronTrigger.from_crontab(schedule.cron, timezone=self._tz)
        if schedule is not None and schedule.interval:
            return IntervalTrigger(
                seconds=schedule.interval, jitter=schedule.jitter or None, timezone=self._tz
            )
        seconds = self._config.effective_interval(
            round_plan.comparison, round_plan.worst_case_cost()
        )
        self._log.info(
            "budget_derived_interval", comparison=round_plan.comparison.name, seconds=seconds
        )
        return IntervalTrigger(seconds=seconds, jitter=min(60.0, seconds / 10), timezone=self._tz)

    async def reload(self) -> tuple[bool, str]:
        """Loads the config again; an invalid file leaves the running config untouched."""
        try:
            config, catalog = self._load_config()
            self._catalog, previous_catalog = catalog, self._catalog
            try:
                plan = self._build_plan(config)
            except Exception:
                self._catalog = previous_catalog
                raise
        except Exception as exc:  # ConfigError, unknown provider...: keep the old config
            # Config errors quote values: a key pasted into the wrong field must not show.
            message = self._make_redactor(self._plan)(str(exc))
            self._reload_error = message
            self.metrics.reloaded(False, self._clock.time())
            self._log.error("reload_failed", error=message)
            return False, message
        for key in ("listen", "state_dir", "timezone"):
            if getattr(config, key) != getattr(self._config, key):
                self._log.warning("reload_needs_restart", key=key)
        self._config, self._plan, self._reload_error = config, plan, None
        self._redactor = self._make_redactor(plan)
        self._cooldowns.set_limits(
            config.rate_limits.backoff_initial, config.rate_limits.backoff_max
        )
        t = config.throttling
        self._throttle.set_params(t.factor, t.window, t.min_samples)
        kept = {series.key for series in plan.series()}
        self._throttle.retain(kept)
        self.metrics.retain(kept)
        if self._ledger is not None:
            self._ledger.set_caps(budget_caps(config))
        self._apply_plan(plan, first=False)
        self.metrics.reloaded(True, self._clock.time())
        _freeze_long_lived()
        self._log.info("reloaded", comparisons=sorted(plan.rounds))
        return True, f"reloaded: {len(plan.rounds)} comparisons"

    # ---- probing ----------------------------------------------------------------------

    async def _run_round(self, name: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            round_plan = self._plan.rounds.get(name)
            if round_plan is None:
                return
            for series in round_plan.next_order():
                if self._stopping.is_set():
                    return
                await self._probe_series(series)
        finally:
            self._inflight.discard(task)

    def _lock(self, provider: str) -> asyncio.Lock:
        return self._provider_locks.setdefault(provider, asyncio.Lock())

    async def _probe_series(self, series: SeriesPlan) -> None:
        provider = series.spec.target.provider
        async with self._lock(provider), self._slots:
            if self._stopping.is_set():  # queued behind others when SIGTERM came: never start
                return
            result = await self._probe_within_budget(series)
        self._record(series, result)

    async def _probe_within_budget(self, series: SeriesPlan) -> ProbeResult:
        provider = series.spec.target.provider
        cooldown = self._cooldowns.active(provider)
        if cooldown is not None:
            return self._skipped(
                series, Outcome.SKIPPED_COOLDOWN, f"cooling down: {cooldown.reason}"
            )
        worst = series.worst_case_cost()
        reservation: Reservation | None = None
        if worst != 0:  # free (local) providers never touch the ledger
            capped = self._caps_apply(provider)
            if worst is None and capped:
                return self._skipped(
                    series,
                    Outcome.SKIPPED_BUDGET,
                    "no price for this model, so no budget cap can be kept: add a price",
                )
            if self._ledger is None:
                await self._open_ledger()
            if self._ledger is None:
                # Without a ledger no spend can be recorded: paid providers wait for it.
                return self._skipped(
                    series,
                    Outcome.SKIPPED_BUDGET,
                    f"budget ledger unavailable, paid providers paused: {self._ledger_error}",
                )
            try:
                granted = await self._ledger.reserve(provider, worst or 0.0)
            except LedgerError as exc:
                self._ledger_state("ledger_write_failed", exc)
                return self._skipped(series, Outcome.SKIPPED_BUDGET, f"budget ledger failed: {exc}")
            if isinstance(granted, Refusal):
                return self._skipped(series, Outcome.SKIPPED_BUDGET, str(granted))
            self._ledger_state("ledger_available", None)  # it took a write
            reservation = granted
        assert self._session is not None
        result: ProbeResult | None = None
        try:
            result = await run_probe(
                series.spec, self._session, self._clock, redactor=self._redactor
            )
        finally:
            # A probe cancelled by the drain timeout keeps its reservation: spend never drops.
            if reservation is not None and result is not None:
                await self._settle(reservation, result)
        return result

    async def _settle(self, reservation: Reservation, result: ProbeResult) -> None:
        assert self._ledger is not None
        actual = result.cost_usd
        if actual is None:
            # Error statuses and failed connections are not billed; a stream that started
            # but left no usage to price may have been: keep its worst case counted.
            started = result.http_status is not None and result.http_status < 300
            actual = math.nan if started else 0.0
        try:
            await self._ledger.settle(reservation, actual)
        except LedgerError as exc:
            # Still counted at its worst case, in memory and (open) on disk: never spent blind.
            self._ledger_state("ledger_write_failed", exc)
        else:
            self._ledger_state("ledger_available", None)

    async def _open_ledger(self) -> None:
        """Opens the budget ledger, at most every LEDGER_RETRY_SECONDS (the first time at
        start); failures are logged and shown until it opens."""
        async with self._ledger_opening:
            now = self._clock.monotonic()
            if self._ledger is not None or now - self._ledger_tried < LEDGER_RETRY_SECONDS:
                return
            self._ledger_tried = now
            try:
                ledger = await Ledger.open(
                    self._options.state_dir, budget_caps(self._config), self._tz, self._clock
                )
            except LedgerError as exc:
                self._ledger_state("ledger_unavailable", exc)
                return
            self._ledger = ledger
            self._ledger_state("ledger_available", None)
            if ledger.recovered:
                # A previous process died mid-probe: counted at their worst case from now on.
                self._log.warning("ledger_open_reservations_recovered", count=ledger.recovered)
            self._refresh_budget_gauges()

    def _ledger_state(self, event: str, error: LedgerError | None) -> None:
        """Logs a change of the ledger's health (not every failed write: each skipped probe
        says why already) and shows it on /metrics and the status page."""
        message = None if error is None else str(error)
        if message != self._ledger_error:
            if message is None:
                self._log.info(event)
            else:
                self._log.error(event, error=message)
        self._ledger_error = message
        self.metrics.ledger_up.set(0 if message else 1)

    def _caps_apply(self, provider: str) -> bool:
        b = self._config.budget
        return any(
            c is not None and (c.daily is not None or c.monthly is not None)
            for c in (b.global_, b.providers.get(provider))
        )

    def _skipped(self, series: SeriesPlan, outcome: Outcome, why: str) -> ProbeResult:
        t = series.spec.target
        return ProbeResult(
            provider=t.provider,
            model=t.model,
            provider_model=t.provider_model,
            prompt=series.spec.prompt_name,
            wire=t.wire,
            nonce="",
            started_at=self._clock.time(),
            outcome=outcome,
            error=why,
        )

    def _record(self, series: SeriesPlan, result: ProbeResult) -> None:
        now = self._clock.time()
        hour = datetime.fromtimestamp(now, self._tz).hour
        self.metrics.observe(result, hour=hour, finished_at=now)
        provider = result.provider
        cooldown = self._cooldowns.observe(provider, result)
        if cooldown is not None:
            self.metrics.cooldown(provider, cooldown.until)
            self._log.warning(
                "cooldown", provider=provider, until=cooldown.until, reason=cooldown.reason
            )
        for signal_ in self._throttle.observe(series.key, result):
            self.metrics.throttled(*series.key, signal_.signal)
            self._log.warning(
                "throttling",
                provider=provider,
                model=result.model,
                prompt=result.prompt,
                signal=signal_.signal,
                value=signal_.value,
                baseline=signal_.baseline,
                factor=signal_.factor,
            )
        self._refresh_budget_gauges()
        entry = result.to_dict()
        entry["finished_at"] = now
        entry["simulated"] = series.simulated
        self._recent.appendleft(entry)
        self._last[series.key] = entry
        log = self._log.info if result.outcome is Outcome.SUCCESS else self._log.warning
        log("probe", **entry)

    def _refresh_budget_gauges(self) -> None:
        if self._ledger is None:
            return
        for row in self._ledger.spend():
            self.metrics.budget(row.scope, row.period, row.limit, row.spent)

    # ---- StatusSource -----------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        if self._scheduler is None or not self._scheduler.running:
            return False, "scheduler not running"
        if not self._plan.rounds:
            return False, "no comparison has a configured provider (check API keys)"
        return True, "ready"

    def render_metrics(self) -> tuple[Iterable[bytes], str]:
        self._refresh_budget_gauges()
        for provider in self._plan.providers:
            active = self._cooldowns.active(provider)
            self.metrics.cooldown(provider, active.until if active else None)
        return self.metrics.render_chunks(), CONTENT_TYPE_LATEST

    def snapshot(self) -> StatusSnapshot:
        probed = {s.spec.target.provider for s in self._plan.series()}
        providers = [
            ProviderRow(
                name=name,
                hardware=entry.hardware,
                wire=entry.wire,
                status=self._plan.statuses.get(name, ""),
                probed=name in probed,
                simulated=name in self._options.simulated_providers,
            )
            for name, entry in sorted(self._plan.providers.items())
        ]
        budget = (
            [BudgetRow(r.scope, r.period, r.limit, r.spent) for r in self._ledger.spend()]
            if self._ledger is not None
            else []
        )
        cooldowns = [
            CooldownRow(c.provider, c.until, c.reason) for c in self._cooldowns.all_active()
        ]
        return StatusSnapshot(
            version=__version__,
            started_at=self._started_at,
            now=self._clock.time(),
            config_path=self._options.config_path,
            demo=self._options.demo,
            last_reload_ok=self._reload_error is None,
            last_reload_error=self._reload_error,
            providers=providers,
            last_results=sorted(
                self._last.values(), key=lambda e: (e["provider"], e["model"], e["prompt"])
            ),
            recent_probes=list(self._recent),
            budget=budget,
            cooldowns=cooldowns,
            ledger_error=self._ledger_error,
        )
