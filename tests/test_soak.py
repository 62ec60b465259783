"""The soak, reduced: counts must not grow between N and 3N probes.

`benchmarks.soak`'s engine, smaller and faster: the real `Daemon` and `WebServer` in this
test's event loop, `speed-kings simulate` in a process of its own, 52 providers on the four
wires (two clean per wire, compared as a round, and one per simulator fault), every
comparison every 500 ms, `/metrics` scraped every second and the status page every 5 s by
processes of their own.

After a warm-up of N probes (every structure that fills up, like the recent-probes log, is
full) tracemalloc starts; once it has seen a few hundred probes (so what is replaced probe
after probe is traced) the first count is taken, the second at 3N. Each count is the floor
of several samples with nothing in flight (`Soak.quiet_sample`: the config reloaded onto
an hourly schedule until no probe finishes for 2 s, then back). Between the counts the
config is also reloaded four times a second under load. Compared are counts, never wall time:
fds, sockets, threads, asyncio tasks, gc-tracked objects (frozen ones included: the
daemon `gc.freeze()`s at each reload), the interpreter's memory blocks
(`sys.getallocatedblocks()`) and tracemalloc's traced bytes. Each bound is a fraction of
the probes in between, so a leak of one fd, task, thread or container object per probe
fails (of two blocks per probe, for the block count); on failure the report lists where
traced memory grew.
"""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from benchmarks.soak import Sample, probes_done, simulator, soaking

WARMUP = 400  # N
TRACED_AFTER = 200  # probes traced before the first count
END = 3 * WARMUP  # 3N
MEASURED = END - WARMUP - TRACED_AFTER  # probes between the counts, at least
RELOAD_EVERY = 0.25  # seconds, between the counts
# Growth allowed between the counts. A leak of one fd/socket/task/thread/object per probe
# grows by >= MEASURED (600); the bounds leave room for a scrape in flight and for the
# recent-probe log holding other outcomes (their entries differ a little in size).
BOUNDS = {
    "open_fds": 3,
    "sockets": 3,
    "threads": 8,  # a thread pool may start its workers in between (bounded)
    "tasks": 3,
    "gc_objects": 200,
    # Every object, strings and floats too: which probes' texts the recent-probe log holds
    # at a count moves this by a few hundred, so it catches leaks of 2+ blocks per probe.
    "blocks": 1200,
    "traced_bytes": 128 * 1024,
}


@dataclass
class Count:
    sample: Sample
    snapshot: Path  # tracemalloc's, dumped: one held in memory would count as growth

    def __getitem__(self, key: str) -> int:
        value = getattr(self.sample, key)
        assert isinstance(value, int), (key, value)
        return value


@dataclass
class Result:
    before: Count
    after: Count
    outcomes: set[str]
    reloads: int  # between the counts


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with simulator(seed=5) as url:
        yield url


def dump_snapshot(path: Path) -> Path:
    tracemalloc.take_snapshot().dump(str(path))
    return path


@contextmanager
def _without_pytest_log_capture(name: str) -> Iterator[None]:
    """pytest attaches its log capture to loggers that do not propagate (APScheduler's, once
    a daemon has run in this process) and keeps every record until the test ends: those
    records, not the exporter, would be the growth measured here."""
    logger = logging.getLogger(name)
    capture = [h for h in logger.handlers if type(h).__module__ == "_pytest.logging"]
    for handler in capture:
        logger.removeHandler(handler)
    try:
        yield
    finally:
        for handler in capture:
            logger.addHandler(handler)


@pytest.fixture(scope="module")
def soak_result(sim_url: str, tmp_path_factory: pytest.TempPathFactory) -> Result:
    folder = tmp_path_factory.mktemp("soak")

    async def run() -> Result:
        # A throttling baseline of 5 probes is full after the warm-up (20 would still fill).
        layout: dict[str, Any] = {"ok_per_wire": 2, "prompts": ("short",), "throttle_window": 5}
        async with soaking(sim_url, interval="500ms", **layout) as soak:
            await soak.wait_probes(WARMUP, timeout=240)
            tracemalloc.start(1)
            try:
                await soak.wait_probes(WARMUP + TRACED_AFTER, timeout=120)
                before = Count(await soak.quiet_sample(), dump_snapshot(folder / "before"))
                reloads = soak.reloads
                # Reloads under load too (a config reloader sidecar), each with probes
                # in flight: a reload must not keep anything of them.
                end = max(END, before["probes"] + MEASURED)
                while probes_done(soak.running) < end:
                    await asyncio.sleep(RELOAD_EVERY)
                    await soak.reload()
                after = Count(await soak.quiet_sample(), dump_snapshot(folder / "after"))
                reloads = soak.reloads - reloads
            finally:
                tracemalloc.stop()
            recent = soak.running.daemon.snapshot().recent_probes
            return Result(before, after, {p["outcome"] for p in recent}, reloads)

    with _without_pytest_log_capture("apscheduler"):
        return asyncio.run(run())


def test_the_soak_exercised_every_outcome(soak_result: Result) -> None:
    assert soak_result.after["probes"] - soak_result.before["probes"] >= MEASURED
    assert soak_result.reloads >= 10
    # The last 100 probes alone hold most outcomes: the soak is not only successes.
    assert {"success", "timeout", "protocol_error", "http_error"} <= soak_result.outcomes


@pytest.mark.parametrize("key", sorted(BOUNDS))
def test_no_growth(soak_result: Result, key: str) -> None:
    before, after = soak_result.before, soak_result.after
    probes = after["probes"] - before["probes"]
    growth = after[key] - before[key]
    print(f"{key}: {before[key]} -> {after[key]} ({growth:+}) over {probes} probes")  # for -s
    assert BOUNDS[key] * 3 <= MEASURED or key in ("blocks", "traced_bytes")
    if growth > BOUNDS[key]:
        snapshots = [tracemalloc.Snapshot.load(str(c.snapshot)) for c in (after, before)]
        top = snapshots[0].compare_to(snapshots[1], "lineno")[:15]
        where = "\n".join(str(stat) for stat in top)
        pytest.fail(
            f"{key} grew by {growth} over {probes} probes "
            f"({before[key]} -> {after[key]}); traced memory grew at:\n{where}"
        )
