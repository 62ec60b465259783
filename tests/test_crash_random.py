"""Crash safety of the budget, many times over: the real daemon (`speed-kings run`) with
paid providers on `speed-kings simulate`, probing every 200 ms under tight caps, is
SIGKILLed at random moments and restarted on the same state dir, again and again.

Kill moments (seeded, `SPEED_KINGS_CRASH_SEED` replays a run):
- `startup`: 0.15-0.7 s after exec, while the ledger opens and recovers the last run's
  open reservations, and the first probes reserve;
- `write`: 0-3 ms after the ledger's WAL file changed, i.e. in or right after a commit
  (reserve or settle), before the daemon has acted on it;
- `probe`: 5-250 ms after a ledger write, while the probe it reserved for is in flight or
  settling;
- `random`: anywhere in the first 1.5 s of a healthy daemon.

After every kill, with the daemon dead, the ledger file is read directly (read-only):
- `PRAGMA integrity_check` is ok;
- spend, counted as the next start will count it (open reservations at their worst
  case), never decreased for any scope, period and window since the previous kill;
- no cap (global daily, provider daily) is exceeded;
- at most one reservation per paid provider is open (one probe in flight each);
- independently of the ledger, the simulator's own request log priced at the configured
  prices (what the provider would bill) is within every cap and never above what the
  ledger counts: each request sent was reserved for first.
After every restart, /metrics' `speedkings_budget_spent_dollars` starts at or above the
spend on disk, and at or above the previous run's scrape less what its open reservations
could give back (the gauge counts them at their worst case until they settle).

The test runs KILLS kills (`SPEED_KINGS_CRASH_KILLS` raises it); `python -m
benchmarks.crash` runs hundreds and prints the figures docs/crash-safety.md quotes.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from speed_kings.config import load_config
from speed_kings.plans import build_plan
from tests.procs import (
    DaemonProcess,
    clean_environ,
    http,
    sample,
    simulator_process,
    wait_for,
)

KILLS = int(os.environ.get("SPEED_KINGS_CRASH_KILLS", "24"))
MODES = ("startup", "write", "probe", "random")
NANO = 10**9
PRICE = (200.0, 400.0)  # $/M input, output: a probe costs cents, so caps bite quickly
MAX_TOKENS = 60
# Paid providers and the simulator profile each uses (truths are told apart by profile).
PAID = {"paid-a": "groq", "paid-b": "fast"}  # ~0.3 s and ~0.05 s a probe
FREE = ("free-c", "crlf")  # price 0: never touches the ledger, probed whatever happens


# --- the ledger file, read directly -----------------------------------------------------------
@dataclass(frozen=True)
class LedgerFile:
    """What the next start will count, read without the exporter's code."""

    integrity: list[str]
    sums: dict[tuple[str, str, str], int]  # (scope, "day"|"month", window) -> nano-dollars
    per_provider: dict[str, int]  # provider -> nano-dollars, all windows
    open: dict[str, int]  # provider -> reservations still open
    entries: int
    torn_frames: int  # WAL frames after the last commit frame: a write cut by the kill


def read_ledger(state: Path) -> LedgerFile:
    db = state / "ledger.db"
    if not db.exists():
        return LedgerFile(["ok"], {}, {}, {}, 0, 0)
    torn = torn_wal_frames(state / "ledger.db-wal")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        integrity = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        rows = (
            conn.execute(
                "SELECT provider, day, month, state, reserved_nanousd, actual_nanousd FROM entries"
            ).fetchall()
            if "entries" in tables
            else []
        )
    finally:
        conn.close()
    sums: dict[tuple[str, str, str], int] = {}
    per_provider: dict[str, int] = {}
    open_: dict[str, int] = {}
    for provider, day, month, state_, reserved, actual in rows:
        counted = {"settled": actual, "reserved": reserved, "released": 0}[state_]
        if state_ == "reserved":
            open_[provider] = open_.get(provider, 0) + 1
        per_provider[provider] = per_provider.get(provider, 0) + counted
        for scope in (provider, "global"):
            for key in ((scope, "day", day), (scope, "month", month)):
                sums[key] = sums.get(key, 0) + counted
    return LedgerFile(integrity, sums, per_provider, open_, len(rows), torn)


def torn_wal_frames(wal: Path) -> int:
    """Frames at the WAL's end that no commit frame closes (SQLite ignores them on open):
    a transaction the kill cut in the middle of writing."""
    try:
        data = wal.read_bytes()
    except FileNotFoundError:
        return 0
    if len(data) < 32:
        return 0
    page_size = struct.unpack(">I", data[8:12])[0] or 65536
    salts = data[16:24]
    torn, offset = 0, 32
    while offset + 24 + page_size <= len(data):
        header = data[offset : offset + 24]
        if header[8:16] != salts:
            break  # frames of an earlier WAL generation: not part of this log
        commit = struct.unpack(">I", header[4:8])[0]
        torn = 0 if commit else torn + 1
        offset += 24 + page_size
    return torn


# --- the setup ---------------------------------------------------------------------------------
def provider(sim: str, profile: str, price: tuple[float, float]) -> dict[str, Any]:
    return {
        "base_url": f"{sim}/{profile}/v1",
        "wire": "openai",
        "hardware": "GPU",
        "api_key_env": "SIM_KEY",
        "default_price": {
            "input": price[0],
            "output": price[1],
            "checked": "2026-11-22",
            "source": "test",
        },
    }


def config_doc(sim: str, state: Path, caps: dict[str, Any] | None) -> dict[str, Any]:
    providers = {name: provider(sim, profile, PRICE) for name, profile in PAID.items()}
    providers[FREE[0]] = provider(sim, FREE[1], (0.0, 0.0))
    doc: dict[str, Any] = {
        "state_dir": str(state),
        "timezone": "UTC",
        "log": {"format": "json"},
        "concurrency": 3,
        "defaults": {"timeout": "10s", "read_timeout": "5s", "connect_timeout": "2s"},
        "providers": providers,
        "comparisons": [
            {
                "name": f"c-{name}",
                "model": "llama-3.1-8b",
                "providers": [name],
                "schedule": {"interval": "200ms"},
                "max_tokens": MAX_TOKENS,
            }
            for name in providers
        ],
    }
    if caps is not None:
        doc["budget"] = caps
    return doc


def worst_cases(path: Path, env: dict[str, str]) -> dict[str, float]:
    """What the daemon reserves per probe, by provider (its own plan's figure)."""
    config = load_config(path)
    plan = build_plan(config, config.resolved_providers(config.load_catalog(path)), env)
    return {s.spec.target.provider: s.worst_case_cost() or 0.0 for s in plan.series()}


@dataclass
class Caps:
    global_day: int  # nano-dollars
    a_day: int

    def doc(self) -> dict[str, Any]:
        return {
            "global": {"daily": self.global_day / NANO},
            "providers": {"paid-a": {"daily": self.a_day / NANO}},
        }

    def limit(self, scope: str, period: str) -> int | None:
        if period != "day":
            return None
        return {"global": self.global_day, "paid-a": self.a_day}.get(scope)


# --- kills ----------------------------------------------------------------------------------
def wal_signature(state: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(state / "ledger.db-wal")
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


def wait_for_write(state: Path, timeout: float) -> bool:
    """Until the WAL changes (a commit being written), polled every half millisecond."""
    before = wal_signature(state)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if wal_signature(state) != before:
            return True
        time.sleep(0.0005)
    return False


@dataclass
class Campaign:
    kills: int
    seed: int
    modes: Counter[str] = field(default_factory=Counter)
    kills_with_open_reservation: int = 0  # a probe was in flight (or unsettled)
    kills_after_write: int = 0  # `write`/`probe` kills that did see a commit start
    torn_writes: int = 0  # kills that cut a WAL transaction mid-write
    recovered: int = 0  # open reservations the next start counted at worst case
    restarts: int = 0
    scrapes_after_restart: int = 0
    integrity_checks: int = 0
    spend_checks: int = 0  # (scope, period, window) comparisons, all non-decreasing
    max_open: int = 0
    requests: dict[str, int] = field(default_factory=dict)  # simulator requests by provider
    final: dict[str, float] = field(default_factory=dict)
    caps: dict[str, float] = field(default_factory=dict)
    skipped_budget: int = 0
    global_capped: bool = False  # the global cap was reached too (by the final run)
    global_capped_at: int | None = None  # the first kill after which it was reached
    seconds: float = 0.0

    def summary(self) -> str:
        modes = ", ".join(f"{m} {self.modes[m]}" for m in MODES)
        return (
            f"{self.kills} SIGKILLs ({modes}), {self.restarts} restarts, seed {self.seed}: "
            f"{self.kills_with_open_reservation} with a reservation open (probe in flight), "
            f"{self.kills_after_write} within ms of a ledger commit, {self.torn_writes} "
            f"cut a WAL transaction mid-write; {self.recovered} reservations recovered at "
            f"worst case; integrity ok {self.integrity_checks}/{self.integrity_checks}; "
            f"spend non-decreasing in {self.spend_checks}/{self.spend_checks} comparisons; "
            f"{self.scrapes_after_restart} first scrapes >= disk; simulator requests "
            f"{self.requests}; final spend {self.final} vs caps {self.caps} (global cap "
            f"{'reached' if self.global_capped else 'not reached'}"
            f"{f' after kill {self.global_capped_at}' if self.global_capped_at else ''}); "
            f"{self.skipped_budget} probes skipped for budget in the last run; "
            f"{self.seconds:.0f} s"
        )


def check_ledger(
    now: LedgerFile, before: LedgerFile, caps: Caps, campaign: Campaign, why: str
) -> None:
    assert now.integrity == ["ok"], (why, now.integrity)
    campaign.integrity_checks += 1
    for key, nanos in before.sums.items():
        assert now.sums.get(key, 0) >= nanos, (why, key, nanos, now.sums.get(key))
        campaign.spend_checks += 1
    for (scope, period, _), nanos in now.sums.items():
        limit = caps.limit(scope, period)
        assert limit is None or nanos <= limit, (why, scope, period, nanos, limit)
    for name, count in now.open.items():
        assert name in PAID and count <= 1, (why, now.open)
    campaign.max_open = max(campaign.max_open, sum(now.open.values()))


def check_truth(sim: str, ledger: LedgerFile, caps: Caps, campaign: Campaign, why: str) -> None:
    """The provider's side: every request the simulator saw, priced as it would bill it."""
    status, _, body = http(f"{sim}/_sim/requests")
    assert status == 200
    by_profile = {profile: name for name, profile in PAID.items()} | {FREE[1]: FREE[0]}
    billed: dict[str, int] = {}
    requests: dict[str, int] = {}
    for truth in json.loads(body):
        name = by_profile[truth["profile"]]
        requests[name] = requests.get(name, 0) + 1
        price = (0.0, 0.0) if name == FREE[0] else PRICE
        dollars = (truth["input_tokens"] * price[0] + truth["output_tokens"] * price[1]) / 1e6
        billed[name] = billed.get(name, 0) + round(dollars * NANO)
    campaign.requests = requests
    for name in PAID:
        slack = requests.get(name, 0)  # nano-dollar rounding, one per request
        assert billed.get(name, 0) <= ledger.per_provider.get(name, 0) + slack, (
            why,
            name,
            billed,
            ledger.per_provider,
        )
    assert billed.get("paid-a", 0) <= caps.a_day + requests.get("paid-a", 0), (why, billed)
    total = sum(billed.get(name, 0) for name in PAID)
    assert total <= caps.global_day + sum(requests.values()), (why, billed)


def spent_metrics(daemon: DaemonProcess) -> dict[tuple[str, str], float]:
    metrics = daemon.metrics()
    return {
        (scope, "day"): sample(
            metrics, "speedkings_budget_spent_dollars", scope=scope, period="day"
        )
        for scope in ("global", *PAID)
    }


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def kill_once(
    daemon: DaemonProcess, state: Path, mode: str, rng: random.Random, campaign: Campaign
) -> None:
    """Kills `daemon` (healthy unless `startup`) the `mode` way."""
    if mode == "startup":
        time.sleep(rng.uniform(0.15, 0.7))
    elif mode == "random":
        time.sleep(rng.uniform(0, 1.5))
    else:
        # Writes stop once every paid cap is reached: then a kill lands anywhere.
        saw = wait_for_write(state, timeout=1.0)
        campaign.kills_after_write += saw
        time.sleep(rng.uniform(0, 0.003) if mode == "write" else rng.uniform(0.005, 0.25))
    daemon.kill9()


def run_campaign(
    kills: int, seed: int, folder: Path, *, progress: Callable[[str], None] | None = None
) -> Campaign:
    rng = random.Random(seed)
    campaign = Campaign(kills, seed)
    started = time.monotonic()
    state = folder / "state"
    env = clean_environ(SIM_KEY="sim-key")
    with simulator_process("--seed", str(seed % 10_000)) as sim:
        path = folder / "speed-kings.yaml"
        path.write_text(yaml.safe_dump(config_doc(sim, state, None), sort_keys=False))
        worst = worst_cases(path, env)
        w_a, w_b = (round(worst[name] * NANO) for name in PAID)
        assert w_a > 0 and w_b > 0 and worst[FREE[0]] == 0
        # paid-a's cap is reached within the first few runs (then it is skipped, and kills
        # test recovery at a full cap); the global cap about four fifths in (a run spends
        # ~1.5 worst cases, measured), so paid-b keeps writing to the ledger for most kills.
        caps = Caps(global_day=8 * w_a + max(16, kills * 13 // 10) * w_b, a_day=8 * w_a)
        in_flight = w_a + w_b  # the most the open reservations can add to the gauge
        campaign.caps = {"global_day": caps.global_day / NANO, "paid-a_day": caps.a_day / NANO}
        doc = config_doc(sim, state, caps.doc())
        path.write_text(yaml.safe_dump(doc, sort_keys=False))

        before = read_ledger(state)
        last_scrape: dict[tuple[str, str], float] | None = None
        day = today()
        for n in range(kills):
            mode = rng.choice(MODES)
            campaign.modes[mode] += 1
            why = f"seed {seed}, kill {n} ({mode})"
            daemon = DaemonProcess(["--config", str(path)], out_dir=folder / "logs", env=env)
            try:
                if n:
                    campaign.restarts += 1
                if mode != "startup":
                    daemon.wait_healthy()
                    first = spent_metrics(daemon)
                    campaign.scrapes_after_restart += 1
                    same_day = today() == day
                    for (scope, period), value in first.items():
                        on_disk = before.sums.get((scope, period, day), 0) / NANO
                        if same_day:
                            assert value >= on_disk - 1e-9, (why, scope, value, on_disk)
                            if last_scrape is not None:
                                # The gauge counts open reservations at their worst case,
                                # and a settle or release returns the difference: it may
                                # drop by that much, one reservation per paid provider.
                                floor = last_scrape[scope, period] - in_flight / NANO
                                assert value >= floor - 1e-9, (why, scope, value, floor)
                        limit = caps.limit(scope, period)
                        assert limit is None or value <= limit / NANO + 1e-9, (why, scope)
                    last_scrape = first
                kill_once(daemon, state, mode, rng, campaign)
            finally:
                daemon.stop()
            now = read_ledger(state)
            check_ledger(now, before, caps, campaign, why)
            check_truth(sim, now, caps, campaign, why)
            campaign.kills_with_open_reservation += bool(now.open)
            campaign.recovered += sum(now.open.values())
            campaign.torn_writes += bool(now.torn_frames)
            before, day = now, today()
            if campaign.global_capped_at is None and (
                now.sums.get(("global", "day", day), 0) + w_b > caps.global_day
            ):
                campaign.global_capped_at = n + 1
            if progress is not None and (n + 1) % 10 == 0:
                progress(f"{n + 1}/{kills} kills, spend {dict(list(now.sums.items())[:3])}")

        # One clean run at the end: it recovers the last kill's reservations, paid-a stays
        # skipped at its cap, the free provider keeps being probed; SIGTERM leaves no
        # reservation open.
        daemon = DaemonProcess(["--config", str(path)], out_dir=folder / "logs", env=env)
        try:
            daemon.wait_healthy()
            campaign.restarts += 1

            def capped_and_free() -> Any:
                metrics = daemon.metrics()
                skipped = sample(
                    metrics, "speedkings_probes_total", provider="paid-a", outcome="skipped_budget"
                )
                free = sample(
                    metrics, "speedkings_probes_total", provider=FREE[0], outcome="success"
                )
                return (skipped, metrics) if skipped and free else None

            skipped, metrics = wait_for(
                capped_and_free, timeout=30, what="paid-a skipped at its cap, free-c probed"
            )
            campaign.skipped_budget = int(skipped)
            code, _ = daemon.terminate()
            assert code == 0
        finally:
            daemon.stop()
        final = read_ledger(state)
        check_ledger(final, before, caps, campaign, f"seed {seed}, final run")
        check_truth(sim, final, caps, campaign, f"seed {seed}, final run")
        assert final.open == {}, final.open  # a graceful stop settles or keeps nothing open
        day = today()
        campaign.final = {
            scope: final.sums.get((scope, "day", day), 0) / NANO for scope in ("global", *PAID)
        }
        spent_a = parse_metrics_value(metrics, "paid-a")
        assert spent_a <= caps.a_day / NANO + 1e-9
        # paid-a really ran into a cap (its own, or the global one in a short campaign): one
        # more reservation would have crossed it.
        spent_global = final.sums.get(("global", "day", day), 0)
        campaign.global_capped = spent_global + w_b > caps.global_day
        assert (
            final.sums.get(("paid-a", "day", day), 0) + w_a > caps.a_day
            or spent_global + w_a > caps.global_day
        )
    campaign.seconds = time.monotonic() - started
    return campaign


def parse_metrics_value(metrics: Any, scope: str) -> float:
    return float(sample(metrics, "speedkings_budget_spent_dollars", scope=scope, period="day"))


def test_random_kills_never_lose_spend_or_cross_a_cap(tmp_path: Path) -> None:
    seed = int(os.environ.get("SPEED_KINGS_CRASH_SEED", random.randrange(2**32)))
    campaign = run_campaign(KILLS, seed, tmp_path)
    print(f"\ncrash campaign: {campaign.summary()}")
    assert campaign.restarts == KILLS
    assert sum(campaign.modes.values()) == KILLS
    # The campaign did what it claims: kills landed with probes in flight, and the ledger
    # was written to between kills.
    assert campaign.kills_with_open_reservation > 0, campaign.summary()
    assert campaign.spend_checks > 0


def test_torn_wal_detection(tmp_path: Path) -> None:
    """`torn_wal_frames` sees frames no commit closes, and only those."""
    db = tmp_path / "ledger.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t (x BLOB)")
    conn.execute("INSERT INTO t VALUES (zeroblob(10000))")
    data = (tmp_path / "ledger.db-wal").read_bytes()
    conn.close()
    wal = tmp_path / "copy-wal"
    wal.write_bytes(data)
    assert torn_wal_frames(wal) == 0
    page_size = struct.unpack(">I", data[8:12])[0]
    # The last transaction's frames with its commit frame cut off: torn.
    wal.write_bytes(data[: len(data) - (24 + page_size)])
    assert torn_wal_frames(wal) >= 1
