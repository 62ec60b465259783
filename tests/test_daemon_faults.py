"""The fault matrix through the running daemon: every simulator fault on every wire.

One real `speed-kings run --config FILE` probes one provider per (wire, fault) pair, plus a
clean one per wire and one per wire whose port nothing listens on, every second, against a
real `speed-kings simulate` over loopback (`http://127.0.0.1:PORT/fast@FAULT/...`). Every
provider is priced, so every probe also reserves and settles in the budget ledger. While
it runs:

- it stays up: `/healthz` answers 200 at every poll, and it exits 0 on SIGTERM with no
  traceback in its output;
- each outcome is counted right: every series' `speedkings_probes_total{outcome}` holds
  only the outcome the probe-level matrix (tests/test_probe_faults.py) expects for its
  fault, plus `skipped_cooldown` for the faults that start a cooldown (429/503/529);
- it leaks nothing: its open fds, sockets, threads (from /proc/PID), asyncio tasks and gc
  objects (from `/api/status` "runtime") and RSS are taken after a warm-up and again after
  many more rounds (a few hundred probes), each as the floor of several samples (probes in
  flight hold a socket and a task each), and must return to within a bound. The bounds are
  far below the probe count, so a leak of one fd, socket, task or thread per probe fails.

`SPEEDKINGS_FAULT_REPORT=FILE` writes the matrix and the counts as Markdown (the table in
docs/reliability.md comes from it).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from benchmarks.soak import FAULT_DEFAULTS

from speed_kings.result import Outcome
from speed_kings.runtime import fd_counts, rss_bytes, thread_count
from speed_kings.simulator.profiles import FAULTS, WIRES
from tests.procs import (
    DaemonProcess,
    clean_environ,
    free_port,
    http,
    samples,
    simulator_process,
    wait_for,
)
from tests.test_probe_faults import FAULTS as EXPECTED

MODEL = "llama-3.1-8b"
KEY_ENV = "FAULTS_API_KEY"
SUFFIX = {"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta", "ollama": ""}
COOLING = frozenset({Outcome.RATE_LIMITED, Outcome.OVERLOADED})  # outcomes that cool down
WARMUP_ROUNDS = 3  # probes of each clean series before the first count
MEASURED_PROBES = 400  # probes (every outcome) between the two counts, at least
SAMPLES = 8  # each count is the floor of this many samples...
SAMPLE_GAP = 0.15  # ...this far apart (seconds)
REPORT_ENV = "SPEEDKINGS_FAULT_REPORT"

# What may grow between the counts (after - before). A per-probe leak of one fd, socket,
# thread or task grows by >= MEASURED_PROBES; objects and RSS are watched for gross leaks
# here (per-probe object counts are asserted tightly by tests/test_soak.py).
BOUNDS: dict[str, float] = {
    "open_fds": 8,
    "sockets": 8,
    "threads": 16,  # a thread pool may start its workers in between (bounded)
    "asyncio_tasks": 8,
    "gc_objects": 10_000,
    "rss_bytes": 24 * 1024 * 1024,
}


# Every simulator fault, none, and one more of the network's own: nothing listening.
REFUSED = "refused"
SCENARIOS: tuple[str | None, ...] = (None, *FAULTS, REFUSED)


def provider_name(wire: str, fault: str | None) -> str:
    return f"{wire}-{fault or 'ok'}".replace("_", "-")


def expected(fault: str | None) -> Outcome:
    if fault is None:
        return Outcome.SUCCESS
    return Outcome.CONNECTION_ERROR if fault == REFUSED else EXPECTED[fault]


def base_url(sim: str, closed: str, wire: str, fault: str | None) -> str:
    if fault == REFUSED:
        return f"{closed}{SUFFIX[wire]}"
    return f"{sim}/{f'fast@{fault}' if fault else 'fast'}{SUFFIX[wire]}"


def build_config(sim: str, closed: str, state_dir: Path) -> dict[str, Any]:
    """`closed`: the base URL of a port nothing listens on."""
    providers: dict[str, Any] = {}
    for wire in WIRES:
        for fault in SCENARIOS:
            providers[provider_name(wire, fault)] = {
                "base_url": base_url(sim, closed, wire, fault),
                "wire": wire,
                "hardware": "GPU",
                "api_key_env": KEY_ENV,
                # Priced, so every probe goes through the budget ledger too (reserve, settle).
                "default_price": {
                    "input": 0.1,
                    "output": 0.2,
                    "checked": date(2026, 11, 22),
                    "source": "test",
                },
            }
    return {
        "state_dir": str(state_dir),
        "log": {"format": "json", "level": "info"},
        "concurrency": len(providers),
        "defaults": dict(FAULT_DEFAULTS),
        "rate_limits": {"backoff_initial": "1s", "backoff_max": "2s"},
        "providers": providers,
        "comparisons": [
            {
                "name": name,
                "model": MODEL,
                "providers": [name],
                "schedule": {"interval": "1s"},
                "max_tokens": 20,
            }
            for name in providers
        ],
    }


# --- counting ----------------------------------------------------------------------------------
def counts_by_series(daemon: DaemonProcess) -> dict[str, Counter[str]]:
    """provider -> outcome -> probes, from /metrics."""
    out: dict[str, Counter[str]] = {}
    for labels, value in samples(daemon.metrics(), "speedkings_probes_total"):
        if value:
            out.setdefault(labels["provider"], Counter())[labels["outcome"]] += int(value)
    return out


def total_probes(daemon: DaemonProcess) -> int:
    return sum(sum(c.values()) for c in counts_by_series(daemon).values())


def resources(daemon: DaemonProcess) -> dict[str, float]:
    """One sample of the daemon's resources: /proc/PID from outside, the rest from inside."""
    runtime = json.loads(daemon.get("/api/status"))["runtime"]
    fds = fd_counts(daemon.pid)
    threads = thread_count(daemon.pid)
    rss = rss_bytes(daemon.pid)
    assert fds is not None and threads is not None and rss is not None, "no /proc"
    return {
        "open_fds": fds[0],
        "sockets": fds[1],
        "threads": threads,
        "asyncio_tasks": runtime["asyncio_tasks"],
        "gc_objects": runtime["gc_objects"],
        "rss_bytes": rss,
    }


def floor_of_samples(daemon: DaemonProcess) -> dict[str, float]:
    """The least of each count over SAMPLES samples: the daemon between probes."""
    taken = []
    for _ in range(SAMPLES):
        taken.append(resources(daemon))
        time.sleep(SAMPLE_GAP)
    return {key: min(s[key] for s in taken) for key in taken[0]}


# --- the run -----------------------------------------------------------------------------------
@dataclass
class Run:
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    probes_before: int = 0
    probes_after: int = 0
    hours: tuple[int, int] = (0, 0)  # hour of day (UTC, the config's zone) at each count
    healthz_polls: int = 0
    healthz_failures: list[str] = field(default_factory=list)
    errors: dict[str, set[str]] = field(default_factory=dict)  # provider -> error details
    exit_code: int | None = None
    output: str = ""
    seconds: float = 0.0


def poll_healthz(daemon: DaemonProcess, run: Run) -> None:
    run.healthz_polls += 1
    try:
        status, _, body = http(daemon.url + "/healthz", timeout=5)
    except OSError as exc:
        run.healthz_failures.append(f"{type(exc).__name__}: {exc}")
        return
    if status != 200 or body != "ok":
        run.healthz_failures.append(f"{status} {body[:100]}")


def run_until(daemon: DaemonProcess, run: Run, done: Any, *, timeout: float, what: str) -> None:
    """Polls /healthz (and `done`) until `done()` holds."""

    def check() -> bool:
        poll_healthz(daemon, run)
        return bool(done())

    wait_for(check, timeout=timeout, interval=0.25, what=what)


@pytest.fixture(scope="module")
def matrix_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    folder = tmp_path_factory.mktemp("faults")
    run = Run()
    started = time.monotonic()
    with simulator_process("--seed", "7") as sim:
        config = build_config(sim, f"http://127.0.0.1:{free_port()}", folder / "state")
        path = folder / "speed-kings.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        env = clean_environ(**{KEY_ENV: "fault-matrix-test-key"})
        daemon = DaemonProcess(["--config", str(path)], out_dir=folder, env=env)
        try:
            daemon.wait_healthy()
            names = set(config["providers"])
            clean = {provider_name(wire, None) for wire in WIRES}
            run_until(
                daemon,
                run,
                lambda: (
                    set(counts := counts_by_series(daemon)) >= names
                    and all(sum(counts[n].values()) >= WARMUP_ROUNDS for n in clean)
                ),
                timeout=90,
                what=f"a probe of every series and {WARMUP_ROUNDS} of each clean one",
            )
            run.hours = (datetime.now(UTC).hour, 0)
            run.probes_before = total_probes(daemon)
            run.before = floor_of_samples(daemon)
            run_until(
                daemon,
                run,
                lambda: total_probes(daemon) >= run.probes_before + MEASURED_PROBES,
                timeout=120,
                what=f"{MEASURED_PROBES} more probes",
            )
            run.after = floor_of_samples(daemon)
            run.probes_after = total_probes(daemon)
            run.hours = (run.hours[0], datetime.now(UTC).hour)
            run.counts = counts_by_series(daemon)
            for probe in json.loads(daemon.get("/api/probes"))["last_results"]:
                run.errors.setdefault(probe["provider"], set()).add(probe["error"] or "")
            run.exit_code, _ = daemon.terminate()
        finally:
            daemon.stop()
            run.output = daemon.output()
    run.seconds = time.monotonic() - started
    if os.environ.get(REPORT_ENV):
        Path(os.environ[REPORT_ENV]).write_text(report(run))
    yield run


def report(run: Run) -> str:
    """The matrix and the counts as Markdown."""
    lines = [
        "| fault | expected outcome | " + " | ".join(WIRES) + " |",
        "|---|---|" + "---|" * len(WIRES),
    ]
    for fault in SCENARIOS:
        cells = []
        for wire in WIRES:
            counts = run.counts.get(provider_name(wire, fault), Counter())
            cells.append(", ".join(f"{o} {n}" for o, n in sorted(counts.items())))
        lines.append(
            f"| {fault or '(none)'} | {expected(fault).value} | " + " | ".join(cells) + " |"
        )
    lines += ["", "| fault | error detail of the last probe (openai wire) |", "|---|---|"]
    for fault in SCENARIOS[1:]:
        details = sorted(run.errors.get(provider_name("openai", fault), set()))
        shown = "; ".join(d.replace("|", "\\|") for d in details)
        lines.append(f"| {fault} | {shown} |")
    lines += [
        "",
        f"probes: {run.probes_before} at the first count, {run.probes_after} at the second "
        f"({run.probes_after - run.probes_before} in between); /healthz polled "
        f"{run.healthz_polls} times, {len(run.healthz_failures)} failures; "
        f"exit status {run.exit_code}; {run.seconds:.0f} s in all",
        "",
        "| count | before | after | growth | bound |",
        "|---|---|---|---|---|",
    ]
    for key, bound in BOUNDS.items():
        before, after = run.before.get(key, 0), run.after.get(key, 0)
        if key == "rss_bytes":
            mib = 1024 * 1024
            lines.append(
                f"| RSS (MiB) | {before / mib:.1f} | {after / mib:.1f} | "
                f"{(after - before) / mib:+.1f} | {bound / mib:.0f} |"
            )
        else:
            lines.append(
                f"| {key} | {before:.0f} | {after:.0f} | {after - before:+.0f} | {bound:.0f} |"
            )
    return "\n".join(lines) + "\n"


# --- the assertions ------------------------------------------------------------------------------
def test_daemon_stays_up(matrix_run: Run) -> None:
    assert matrix_run.healthz_polls >= 10
    assert not matrix_run.healthz_failures, matrix_run.healthz_failures[:5]
    assert matrix_run.exit_code == 0, matrix_run.output[-3000:]
    assert "Traceback" not in matrix_run.output, matrix_run.output[-3000:]


@pytest.mark.parametrize("fault", SCENARIOS)
@pytest.mark.parametrize("wire", WIRES)
def test_each_outcome_counted_right(matrix_run: Run, wire: str, fault: str | None) -> None:
    name = provider_name(wire, fault)
    counts = matrix_run.counts.get(name, Counter())
    want = expected(fault)
    assert counts[want.value] >= 1, (name, dict(counts))
    allowed = {want.value}
    if want in COOLING:
        allowed.add(Outcome.SKIPPED_COOLDOWN.value)
    else:  # a series that never cools down is probed every round
        assert counts[want.value] >= WARMUP_ROUNDS, (name, dict(counts))
    assert set(counts) <= allowed, (name, dict(counts))


def test_failures_say_why_and_none_is_a_bug(matrix_run: Run) -> None:
    """Every failed probe carries its reason; none is an unanticipated exception (the
    probe runner's catch-all for bugs reports "unexpected ...")."""
    for name, errors in matrix_run.errors.items():
        if name.endswith("-ok"):
            assert errors == {""}, (name, errors)
        else:
            assert "" not in errors, name
        assert not any(e.startswith("unexpected ") for e in errors), (name, errors)


@pytest.mark.parametrize("key", sorted(BOUNDS))
def test_no_leak(matrix_run: Run, key: str) -> None:
    probes = matrix_run.probes_after - matrix_run.probes_before
    assert probes >= MEASURED_PROBES
    # Every bound is well under one per probe, so a per-probe leak cannot hide in it.
    assert key in ("gc_objects", "rss_bytes") or BOUNDS[key] * 10 < probes
    bound = BOUNDS[key]
    if key == "gc_objects" and matrix_run.hours[0] != matrix_run.hours[1]:
        bound *= 3  # a new hour of day adds a child to each series' *_by_hour families
    growth = matrix_run.after[key] - matrix_run.before[key]
    assert growth <= bound, (key, matrix_run.before[key], matrix_run.after[key], probes)
