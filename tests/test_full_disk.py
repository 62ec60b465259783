"""A full disk and a read-only state dir, for real: the state dir on a small tmpfs that the
test fills up (and frees) or remounts read-only, under a running `speed-kings run`.

What must happen, each time:
- a clear error: a `ledger_unavailable` / `ledger_write_failed` log event whose message
  names the path and the fix, `speedkings_budget_ledger_up 0`, a banner on the status page;
- paid providers stop being probed (skipped_budget, and the simulator sees no request for
  them: nothing is spent that the ledger could not record), free providers go on;
- once space (or write access) is back, the ledger is used again without a restart
  (`ledger_available`, `speedkings_budget_ledger_up 1`, paid probes succeed);
- afterwards the ledger is intact and counts at least what the simulator served.

Mounting needs root (or CAP_SYS_ADMIN): elsewhere these tests skip, and say why; the last
test (the retry, in-process, with the state dir under a file) runs anywhere.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from speed_kings import daemon as daemon_module
from speed_kings.catalog import load_catalog
from speed_kings.clock import SystemClock
from speed_kings.config import parse_config
from speed_kings.daemon import Daemon, DaemonOptions
from speed_kings.logs import make_logger
from speed_kings.simulator import PROFILES, Simulator
from tests.procs import (
    DaemonProcess,
    clean_environ,
    http,
    sample,
    simulator_process,
    wait_for,
)
from tests.test_crash_random import provider
from tests.test_daemon import KEY, Running, comparison
from tests.test_daemon import provider as daemon_provider

PRICE = (100.0, 200.0)
PAID_PROFILE, FREE_PROFILE = "fast", "crlf"  # truths are told apart by profile
TMPFS_SIZE = "2m"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30)


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, unmounted afterwards."""
    mount_point = tmp_path / "volume"
    mount_point.mkdir()
    done = run("mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount_point))
    if done.returncode != 0:
        pytest.skip(
            "mounting a tmpfs is not permitted here (needs root or CAP_SYS_ADMIN), so a real "
            f"full disk cannot be made: {done.stderr.strip()}"
        )
    try:
        yield mount_point
    finally:
        if run("umount", str(mount_point)).returncode != 0:
            run("umount", "-l", str(mount_point))


def fill(volume: Path) -> int:
    """Writes a file until the volume has no byte left; returns its size."""
    written = 0
    fd = os.open(volume / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for size in (1 << 16, 4096, 512, 1):
            block = b"\0" * size
            while True:
                try:
                    written += os.write(fd, block)
                except OSError:
                    break
    finally:
        os.close(fd)
    assert os.statvfs(volume).f_bavail == 0
    return written


def free(volume: Path) -> None:
    (volume / "filler").unlink()


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with simulator_process("--seed", "5") as url:
        yield url


def start(sim: str, state: Path, folder: Path) -> DaemonProcess:
    doc = {
        "state_dir": str(state),
        "log": {"format": "json"},
        "concurrency": 2,
        "providers": {
            "paid": provider(sim, PAID_PROFILE, PRICE),
            "free": provider(sim, FREE_PROFILE, (0.0, 0.0)),
        },
        "comparisons": [
            {
                "name": f"c-{name}",
                "model": "llama-3.1-8b",
                "providers": [name],
                "schedule": {"interval": "200ms"},
                "max_tokens": 20,
            }
            for name in ("paid", "free")
        ],
        "budget": {"global": {"daily": 1000.0}},
    }
    path = folder / "speed-kings.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    daemon = DaemonProcess(
        ["--config", str(path)], out_dir=folder, env=clean_environ(SIM_KEY="sim-key")
    )
    daemon.wait_healthy()
    return daemon


def served(sim: str, profile: str) -> list[dict[str, Any]]:
    """The simulator's log of requests it served on `profile`, oldest first."""
    status, _, body = http(f"{sim}/_sim/requests")
    assert status == 200
    return [t for t in json.loads(body) if t["profile"] == profile]


class Watch:
    """What the daemon and the simulator say, read on demand."""

    def __init__(self, daemon: DaemonProcess, sim: str) -> None:
        self.daemon = daemon
        self.sim = sim

    def ledger_up(self) -> float:
        return sample(self.daemon.metrics(), "speedkings_budget_ledger_up")

    def count(self, provider: str, outcome: str) -> float:
        return sample(
            self.daemon.metrics(), "speedkings_probes_total", provider=provider, outcome=outcome
        )

    def requests(self, profile: str) -> int:
        return len(served(self.sim, profile))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.daemon.events() if e.get("event") == name]

    def last_paid(self) -> dict[str, Any]:
        probes = [p for p in self.daemon.probes() if p["provider"] == "paid"]
        assert probes
        return probes[0]

    def banner(self) -> bool:
        return 'class="ledger-error"' in self.daemon.get("/")


def assert_paused(watch: Watch, fix: str) -> None:
    """Paid skipped (no request reaches the simulator), free probed, the error shown."""
    assert watch.ledger_up() == 0
    assert watch.banner()
    status = json.loads(watch.daemon.get("/api/status"))
    assert fix in status["ledger_error"], status["ledger_error"]
    paid_sent = watch.requests(PAID_PROFILE)
    free_ok = watch.count("free", "success")
    skipped = watch.count("paid", "skipped_budget")
    wait_for(
        lambda: (
            watch.count("paid", "skipped_budget") >= skipped + 3
            and watch.count("free", "success") >= free_ok + 3
        ),
        timeout=30,
        what="more paid probes skipped and free probes done",
    )
    assert watch.requests(PAID_PROFILE) == paid_sent, "a paid request was sent blind"
    last = watch.last_paid()
    assert last["outcome"] == "skipped_budget" and fix in last["error"], last


def assert_resumed(watch: Watch) -> None:
    paid_ok = watch.count("paid", "success")
    wait_for(
        lambda: watch.ledger_up() == 1 and watch.count("paid", "success") > paid_ok,
        timeout=30,
        what="the ledger back in use and a paid probe done",
    )
    assert not watch.banner()
    assert json.loads(watch.daemon.get("/api/status"))["ledger_error"] is None


def check_ledger_file(state: Path, sim: str, earlier: int) -> None:
    """Intact, and counting at least what was served since the `earlier` paid requests of
    other tests. (A settle that failed on the full disk leaves its reservation open on
    disk: the next start counts it at its worst case.)"""
    conn = sqlite3.connect(f"file:{state / 'ledger.db'}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        counted = conn.execute(
            "SELECT SUM(CASE state WHEN 'settled' THEN actual_nanousd "
            "WHEN 'reserved' THEN reserved_nanousd ELSE 0 END) FROM entries"
        ).fetchone()[0]
    finally:
        conn.close()
    ours = served(sim, PAID_PROFILE)[earlier:]
    assert ours, "no paid probe was ever served"
    billed = sum(
        round((t["input_tokens"] * PRICE[0] + t["output_tokens"] * PRICE[1]) / 1e6 * 1e9)
        for t in ours
    )
    assert counted + len(ours) >= billed, (counted, billed)


def test_full_disk_at_start_and_while_running(sim: str, volume: Path, tmp_path: Path) -> None:
    state = volume / "state"
    fill(volume)
    paid_before = len(served(sim, PAID_PROFILE))
    daemon = start(sim, state, tmp_path)
    try:
        watch = Watch(daemon, sim)
        # 1. Full at start-up: the ledger cannot be created.
        wait_for(lambda: watch.events("ledger_unavailable"), timeout=15, what="the log event")
        event = watch.events("ledger_unavailable")[0]
        assert "database or disk is full" in event["error"]
        assert f"fix: free space on the volume holding state_dir {state}" in event["error"]
        assert_paused(watch, "fix: free space on the volume")
        assert watch.requests(PAID_PROFILE) == paid_before

        # 2. Space comes back: the ledger opens on the next paid probe (retried every 5 s).
        free(volume)
        assert_resumed(watch)
        assert watch.events("ledger_available")

        # 3. The disk fills while running: writes fail, paid probes stop.
        fill(volume)
        wait_for(lambda: watch.ledger_up() == 0, timeout=60, what="a failed ledger write")
        event = watch.events("ledger_write_failed")[0]
        assert "database or disk is full" in event["error"], event
        assert_paused(watch, "fix: free space on the volume")

        # 4. And space comes back again.
        free(volume)
        assert_resumed(watch)
        # One event per change of state, not one per skipped probe: down and up alternate.
        # (On a loaded machine a retry may find room for a moment, so the disk can go down
        # and up more than twice; it must never say the same thing twice in a row.)
        states = [
            "up" if e["event"] == "ledger_available" else "down"
            for e in watch.daemon.events()
            if e.get("event") in ("ledger_available", "ledger_write_failed", "ledger_unavailable")
        ]
        assert states[:2] == ["down", "up"] and states[-1] == "up", states
        assert all(a != b for a, b in itertools.pairwise(states)), states
        assert watch.events("ledger_write_failed")
        code, _ = daemon.terminate()
        assert code == 0
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.output()
    check_ledger_file(state, sim, paid_before)


def test_read_only_state_dir(sim: str, volume: Path, tmp_path: Path) -> None:
    state = volume / "state"
    state.mkdir()
    done = run("mount", "-o", "remount,ro", str(volume))
    assert done.returncode == 0, done.stderr
    paid_before = len(served(sim, PAID_PROFILE))
    daemon = start(sim, state, tmp_path)
    try:
        watch = Watch(daemon, sim)
        wait_for(lambda: watch.events("ledger_unavailable"), timeout=15, what="the log event")
        event = watch.events("ledger_unavailable")[0]
        assert f"state_dir {state} is not writable" in event["error"]
        assert "Read-only file system" in event["error"]
        assert_paused(watch, "fix: mount a writable volume there")
        assert watch.requests(PAID_PROFILE) == paid_before

        done = run("mount", "-o", "remount,rw", str(volume))
        assert done.returncode == 0, done.stderr
        assert_resumed(watch)
        code, _ = daemon.terminate()
        assert code == 0
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.output()
    check_ledger_file(state, sim, paid_before)


async def test_unusable_ledger_is_retried_without_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recovery path without a mount (runs anywhere): the state dir's parent is a file,
    so the ledger cannot open; once the file is gone, the retry opens it."""
    monkeypatch.setattr(daemon_module, "LEDGER_RETRY_SECONDS", 0.2)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    sim = Simulator({"fast": PROFILES["fast"], "fast2": PROFILES["fast"]}, seed=3)
    await sim.start()
    catalog = load_catalog()
    free_price = {"input": 0.0, "output": 0.0, "checked": "2026-11-22", "source": "test"}
    config = parse_config(
        {
            "state_dir": str(blocker / "state"),
            "providers": {
                "paid": daemon_provider(sim, "fast"),
                "free": daemon_provider(sim, "fast2", price=free_price),
            },
            "comparisons": [
                comparison("c-paid", ["paid"], "200ms"),
                comparison("c-free", ["free"], "200ms"),
            ],
        },
        "<test>",
        catalog=catalog,
    )
    registry = CollectorRegistry()
    log = io.StringIO()
    daemon = Daemon(
        load_config=lambda: (config, catalog),
        config=config,
        catalog=catalog,
        clock=SystemClock(),
        registry=registry,
        logger=make_logger(fmt="json", stream=log),
        environ={"TEST_KEY": KEY},
        options=DaemonOptions(config_path="<test>", state_dir=blocker / "state"),
    )
    await daemon.start()
    try:
        run = Running(daemon, sim, registry, log)
        up = "speedkings_budget_ledger_up"
        paid_ok = {"provider": "paid", "model": "m", "prompt": "short", "outcome": "success"}
        await run.until(lambda: len(run.probes()) >= 6)
        assert run.sample(up) == 0
        assert daemon.snapshot().ledger_error is not None
        assert "is not writable" in (daemon.snapshot().ledger_error or "")
        assert {t.profile for t in sim.truths()} == {"fast2"}  # nothing sent to the paid one
        blocker.unlink()
        await run.until(lambda: (run.sample("speedkings_probes_total", **paid_ok) or 0) >= 1)
        assert run.sample(up) == 1
        assert daemon.snapshot().ledger_error is None
    finally:
        await daemon.stop()
        await sim.stop()
    events = [json.loads(line)["event"] for line in log.getvalue().splitlines()]
    assert events.count("ledger_unavailable") == 1  # once, not once per retry
    assert events.count("ledger_available") == 1
