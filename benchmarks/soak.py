"""The soak: a compressed long run, watching what a leak would make grow.

`python -m benchmarks.soak` (or `bash scripts/bench.sh soak`) runs the exporter (the real
`Daemon` and `WebServer`, assembled as `speed-kings run` does, logs rendered as JSON)
against `speed-kings simulate` in a process of its own, on a fast schedule, until 60,000
probes are done (`--probes`). By default: 60 providers on the four wires, each comparison
every second; per wire four clean providers compared as one round (alternating order) with
two prompts, and one provider per simulator fault (429, 503, 529, 500, mid-stream error,
reset, stall, garbage, huge, truncated, empty). Every probe is priced, so it reserves and
settles in the SQLite ledger. A separate process scrapes `/metrics` every second and
another GETs the status page every 5 s, as Prometheus and a curious operator would; the
config is reloaded every `--reload-every` seconds, as a config reloader sidecar would.

Every `--every` seconds it prints one row of a Markdown table: probes done (every outcome,
skipped ones included) and their rate, this process's CPU, RSS, open fds and sockets,
threads, asyncio tasks, gc-tracked objects (after a full collection; frozen ones
included), memory blocks the interpreter holds (`sys.getallocatedblocks()`: strings and
floats too, which the collector does not track) and the event loop's lag over the interval
(a 5 ms ticker: how late its sleeps wake, p50/p99/max). After the first row and at the end
it takes a "quiet" row: the config is reloaded onto an hourly schedule (twice), and once no
probe has finished for 2 s the least of six samples is taken (nothing in flight), then the
fast schedule is reloaded. It stops once `--probes` probes are done (or after `--max-minutes`)
and prints the growth between the two quiet rows.

`benchmarks/soak.py` is also the engine of the reduced soak in tests/test_soak.py, which
asserts no growth in counts between N and 3N probes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import os
import re
import sys
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from benchmarks import procs
from benchmarks.exporter import Running, running_exporter
from speed_kings.catalog import load_catalog
from speed_kings.config import Config, parse_config
from speed_kings.runtime import fd_counts, rss_bytes
from speed_kings.simulator.profiles import FAULTS, WIRES
from speed_kings.stats import percentile

KEY_ENV = "SPEEDKINGS_SOAK_API_KEY"
KEY = "soak-test-key"  # the simulator only checks that a key is sent
SUFFIX = {"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta", "ollama": ""}
MODEL = "llama-3.1-8b"
TICK = 0.005  # the lag meter's sleep (seconds)
MIB = 1024 * 1024
PROBES_SAMPLE = b"speedkings_probes_total{"
OUTCOME_LABEL = re.compile(rb'outcome="([a-z_]+)"')


# --- the config -------------------------------------------------------------------------------
def soak_config(
    sim_url: str,
    *,
    ok_per_wire: int = 4,
    prompts: Sequence[str] = ("short", "medium"),
    faults: Sequence[str] = FAULTS,
    wires: Sequence[str] = WIRES,
    interval: str = "1s",
    priced: bool = True,
    throttle_window: int | None = None,
) -> Config:
    """Per wire: `ok_per_wire` clean providers compared as one round over `prompts`, and one
    provider per fault probed alone (prompt short). Every comparison every `interval`.
    `priced`: every probe reserves and settles in the ledger (free: none touches it).
    `throttle_window`: a shorter throttling baseline than the default 20 fills sooner."""
    cost = (0.1, 0.2) if priced else (0.0, 0.0)
    price = {"input": cost[0], "output": cost[1], "checked": date(2026, 11, 22), "source": "soak"}
    providers: dict[str, Any] = {}
    comparisons: list[dict[str, Any]] = []

    def provider(name: str, scenario: str, wire: str) -> None:
        providers[name] = {
            "base_url": f"{sim_url}/{scenario}{SUFFIX[wire]}",
            "wire": wire,
            "hardware": "GPU",
            "api_key_env": KEY_ENV,
            "default_price": price,
        }

    for wire in wires:
        clean = [f"{wire}-ok{i}" for i in range(ok_per_wire)]
        for name in clean:
            provider(name, "fast", wire)
        if clean:
            comparisons.append(
                {"name": f"{wire}-clean", "providers": clean, "prompts": list(prompts)}
            )
        for fault in faults:
            name = f"{wire}-{fault}".replace("_", "-")
            provider(name, f"fast@{fault}", wire)
            comparisons.append({"name": name, "providers": [name]})
    for comparison in comparisons:
        comparison.update(model=MODEL, schedule={"interval": interval}, max_tokens=20)
    data = {
        "concurrency": len(providers),
        "defaults": dict(FAULT_DEFAULTS),
        # Large caps: every reservation is checked against them, none is refused.
        "budget": {"global": {"daily": 1000, "monthly": 10000}},
        "rate_limits": {"backoff_initial": "1s", "backoff_max": "2s"},
        "providers": providers,
        "comparisons": comparisons,
    }
    if throttle_window is not None:
        data["throttling"] = {"window": throttle_window, "min_samples": throttle_window}
    return parse_config(data, "<soak>", catalog=load_catalog())


# --- measuring -------------------------------------------------------------------------------
class LagMeter:
    """A ticker on the loop: how much later than asked each `TICK` sleep wakes up."""

    def __init__(self) -> None:
        self.lags: list[float] = []  # seconds, since the last `take()`
        self._skip = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        mono = time.monotonic
        while True:
            start = mono()
            await asyncio.sleep(TICK)
            if self._skip:  # the tick the sampler itself held up (a full gc.collect())
                self._skip -= 1
            else:
                self.lags.append(mono() - start - TICK)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lag-meter")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def take(self) -> list[float]:
        """The lags so far; the next tick is left out (the sample about to be taken holds
        the loop: that is the meter's cost, not the exporter's)."""
        lags, self.lags = self.lags, []
        self._skip = 1
        return lags


@dataclass(frozen=True, slots=True)
class Sample:
    seconds: float  # since the exporter started
    cpu_seconds: float  # this process's CPU time (every thread), since it started
    probes: int  # probes done, every outcome
    rss_bytes: int
    open_fds: int
    sockets: int
    threads: int
    tasks: int
    gc_objects: int
    blocks: int  # memory blocks the interpreter holds (sys.getallocatedblocks()): every object
    traced_bytes: int | None  # tracemalloc's current size, when tracing
    lag_p50: float | None  # seconds, over the interval before the sample
    lag_p99: float | None
    lag_max: float | None

    COUNTS = ("open_fds", "sockets", "threads", "tasks", "gc_objects", "blocks")


# Probe limits for fault runs (shared with tests/test_daemon_faults.py): a stall ends in
# half a second, a huge body at 1 MiB.
FAULT_DEFAULTS = {
    "timeout": "5s",
    "read_timeout": "500ms",
    "connect_timeout": "2s",
    "max_response_bytes": 1024 * 1024,
}


def probe_counts(running: Running) -> dict[str, int]:
    """Probes done by outcome, every series summed, from the exposition the daemon serves
    (`speedkings_probes_total{..., outcome="..."}`)."""
    chunks, _ = running.daemon.render_metrics()
    body = chunks if isinstance(chunks, bytes) else b"".join(chunks)
    totals: dict[str, int] = {}
    for line in body.split(b"\n"):
        if line.startswith(PROBES_SAMPLE):
            match = OUTCOME_LABEL.search(line)
            outcome = match.group(1).decode() if match else "?"
            totals[outcome] = totals.get(outcome, 0) + int(float(line.rsplit(b" ", 1)[1]))
    return totals


def probes_done(running: Running) -> int:
    return sum(probe_counts(running).values())


def take_sample(running: Running, started: float, lags: list[float]) -> Sample:
    """Counts of this process, after a full garbage collection (so objects waiting for the
    cycle collector are not mistaken for growth)."""
    gc.collect()
    fds = fd_counts() or (-1, -1)
    return Sample(
        seconds=time.monotonic() - started,
        cpu_seconds=time.process_time(),
        probes=probes_done(running),
        rss_bytes=rss_bytes() or -1,
        open_fds=fds[0],
        sockets=fds[1],
        threads=threading.active_count(),
        tasks=len(asyncio.all_tasks()),
        # Frozen ones too: the daemon freezes what is alive at start and at each reload.
        gc_objects=len(gc.get_objects()) + gc.get_freeze_count(),
        blocks=sys.getallocatedblocks(),
        traced_bytes=tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None,
        lag_p50=percentile(lags, 50) if lags else None,
        lag_p99=percentile(lags, 99) if lags else None,
        lag_max=max(lags) if lags else None,
    )


# --- the run ----------------------------------------------------------------------------------
@contextmanager
def simulator(seed: int = 0) -> Iterator[str]:
    """`speed-kings simulate` in its own process (its truth log is its memory, not ours)."""
    child = procs.start("speed_kings", "simulate", "--port", "0", "--seed", str(seed))
    try:
        yield procs.wait_line(child, r"listening on (http://\S+)").group(1)
    finally:
        procs.stop(child)


@contextmanager
def scrapers(url: str, *, metrics_every: float = 1.0, page_every: float = 5.0) -> Iterator[None]:
    """GET /metrics and / from processes of their own, until the block ends."""
    children = [
        procs.start("benchmarks.scraper", f"{url}/metrics", "--interval", str(metrics_every)),
        procs.start("benchmarks.scraper", f"{url}/", "--interval", str(page_every)),
    ]
    try:
        for child in children:
            procs.wait_line(child, "scraping")
        yield
    finally:
        for child in children:
            procs.stop(child)


@dataclass
class Soak:
    """The running exporter and its meters. `quiesce()` reloads it onto the same
    comparisons every hour (each runs one more round at once, then none) and waits until
    no probe has finished for a while; `resume()` reloads the fast schedule. Between the
    two, counts are those of an exporter between probes, free of in-flight noise."""

    running: Running
    meter: LagMeter
    fast: Config
    quiet: Config
    loaded: list[Config]  # what the daemon's next reload reads: [config]
    started: float = field(default_factory=time.monotonic)
    reloads: int = 0
    # Held while quiet, so a periodic reload cannot bring the fast schedule back early.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def sample(self) -> Sample:
        return take_sample(self.running, self.started, self.meter.take())

    async def wait_probes(self, count: int, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (done := probes_done(self.running)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{done} probes after {timeout:.0f} s, not {count}")
            await asyncio.sleep(0.25)

    async def _reload(self, config: Config) -> None:
        self.loaded[0] = config
        ok, message = await self.running.daemon.reload()
        if not ok:
            raise RuntimeError(f"reload failed: {message}")
        self.reloads += 1

    async def reload(self) -> None:
        """A reload of the same (fast) config, as a config reloader sidecar does."""
        async with self.lock:
            await self._reload(self.fast)

    async def quiesce(self, *, settle: float = 2.0, timeout: float = 60.0) -> None:
        """Twice: the daemon `gc.freeze()`s at each reload, and the probes in flight at
        the first leave their garbage frozen until the second (then nothing is in flight)."""
        for _ in range(2):
            await self._reload(self.quiet)
            await self._settle(settle, timeout)

    async def _settle(self, settle: float, timeout: float) -> None:
        """Until no probe has finished for `settle` seconds."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while True:
            done, now = probes_done(self.running), time.monotonic()
            if done != last:
                last, since = done, now
            elif now - since >= settle:
                return
            if now > deadline:
                raise TimeoutError(f"probes still finishing after {timeout:.0f} s")
            await asyncio.sleep(0.25)

    async def resume(self) -> None:
        await self._reload(self.fast)

    async def quiet_sample(self, *, samples: int = 6, gap: float = 0.2) -> Sample:
        """Quiesces, takes the floor of `samples` samples (a scrape may be in flight at
        one), resumes."""
        async with self.lock:
            await self.quiesce()
            try:
                taken = []
                for _ in range(samples):
                    taken.append(self.sample())
                    await asyncio.sleep(gap)
            finally:
                await self.resume()
        return floor(taken)


def floor(samples: Sequence[Sample]) -> Sample:
    """The last sample with the least of each count and size over `samples`."""
    least: dict[str, Any] = {
        key: min(getattr(s, key) for s in samples) for key in (*Sample.COUNTS, "rss_bytes")
    }
    traced = [s.traced_bytes for s in samples if s.traced_bytes is not None]
    least["traced_bytes"] = min(traced) if traced else None
    lags = [s.lag_max for s in samples if s.lag_max is not None]
    return dataclasses.replace(samples[-1], lag_max=max(lags) if lags else None, **least)


@asynccontextmanager
async def soaking(
    sim_url: str, *, scrape: bool = True, interval: str = "1s", **layout: Any
) -> AsyncIterator[Soak]:
    """The exporter running `soak_config(sim_url, interval=interval, **layout)`, the lag
    meter ticking, and (with `scrape`) the scrapers scraping."""
    fast = soak_config(sim_url, interval=interval, **layout)
    quiet = soak_config(sim_url, interval="1h", **layout)
    loaded = [fast]
    catalog = load_catalog()
    environ = {**os.environ, KEY_ENV: KEY}
    async with running_exporter(
        fast, catalog, environ, load_config=lambda: (loaded[0], catalog)
    ) as running:
        meter = LagMeter()
        meter.start()
        try:
            with scrapers(running.url) if scrape else contextlib.nullcontext():
                yield Soak(running, meter, fast, quiet, loaded)
        finally:
            await meter.stop()


# --- the table ---------------------------------------------------------------------------------
def _ms(value: float | None) -> str:
    return "" if value is None else f"{value * 1000:.2f}"


HEADER = (
    "| minute | probes | probes/s | CPU % | RSS MiB | fds | sockets | threads | tasks | gc objects "
    "| blocks | lag p50 ms | lag p99 ms | lag max ms |"
)


def row(sample: Sample, previous: Sample | None, label: str = "") -> str:
    rate = cpu = ""
    if previous is not None and sample.seconds > previous.seconds:
        wall = sample.seconds - previous.seconds
        rate = f"{(sample.probes - previous.probes) / wall:.1f}"
        cpu = f"{(sample.cpu_seconds - previous.cpu_seconds) / wall * 100:.0f}"
    traced = "" if sample.traced_bytes is None else f" ({sample.traced_bytes / MIB:.1f} traced)"
    return (
        f"| {sample.seconds / 60:.1f}{label} | {sample.probes:,} | {rate} | {cpu} "
        f"| {sample.rss_bytes / MIB:.1f}{traced} | {sample.open_fds} | {sample.sockets} "
        f"| {sample.threads} | {sample.tasks} | {sample.gc_objects:,} | {sample.blocks:,} "
        f"| {_ms(sample.lag_p50)} | {_ms(sample.lag_p99)} | {_ms(sample.lag_max)} |"
    )


def growth_lines(first: Sample, last: Sample) -> list[str]:
    probes = last.probes - first.probes
    lines = [f"growth between the quiet rows ({probes:,} probes in between):"]
    for key in Sample.COUNTS:
        before, after = getattr(first, key), getattr(last, key)
        lines.append(f"  {key}: {before:,} -> {after:,} ({after - before:+,})")
    lines.append(
        f"  RSS: {first.rss_bytes / MIB:.1f} -> {last.rss_bytes / MIB:.1f} MiB "
        f"({(last.rss_bytes - first.rss_bytes) / MIB:+.1f})"
    )
    if first.traced_bytes is not None and last.traced_bytes is not None:
        lines.append(
            f"  traced: {first.traced_bytes / MIB:.2f} -> {last.traced_bytes / MIB:.2f} MiB "
            f"({(last.traced_bytes - first.traced_bytes) / 1024:+,.0f} KiB)"
        )
    return lines


async def soak(args: argparse.Namespace, sim_url: str) -> int:
    layout = {"ok_per_wire": args.ok_per_wire, "prompts": args.prompts, "priced": not args.free}
    async with soaking(sim_url, interval=args.interval, **layout) as run:
        config = run.fast
        series = sum(len(c.providers) * len(c.prompts) for c in config.comparisons)
        print(
            f"{len(config.providers)} providers, {len(config.comparisons)} comparisons, "
            f"{series} series, every {args.interval}; until {args.probes:,} probes "
            f"(or {args.max_minutes:g} min)",
            flush=True,
        )
        deadline = time.monotonic() + args.max_minutes * 60
        print(HEADER, flush=True)
        print(_separator(), flush=True)
        rows: list[Sample] = []
        quiet: list[Sample] = []

        def show(sample: Sample, label: str = "") -> None:
            print(row(sample, rows[-1] if rows else None, label), flush=True)
            rows.append(sample)

        async def reload_periodically() -> None:
            while args.reload_every > 0:
                await asyncio.sleep(args.reload_every)
                await run.reload()

        reloader = asyncio.get_running_loop().create_task(reload_periodically())
        try:
            while True:
                await asyncio.sleep(args.every)
                show(run.sample())
                if len(rows) == 1:  # after the warm-up: the first count between probes
                    quiet.append(await run.quiet_sample())
                    show(quiet[-1], " quiet")
                if rows[-1].probes >= args.probes or time.monotonic() > deadline:
                    break
            quiet.append(await run.quiet_sample())
            show(quiet[-1], " quiet")
        finally:
            reloader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reloader
        outcomes = probe_counts(run.running)
    print()
    for line in growth_lines(quiet[0], quiet[-1]):
        print(line)
    print(f"reloads: {run.reloads} (3 per quiet row, the others every {args.reload_every:g} s)")
    print("outcomes: " + ", ".join(f"{o} {n:,}" for o, n in sorted(outcomes.items()) if n))
    return 0


def _separator() -> str:
    return "|" + "---|" * (HEADER.count("|") - 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--probes", type=int, default=60_000, help="stop after this many")
    parser.add_argument("--max-minutes", type=float, default=30.0, help="or after this long")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between rows")
    parser.add_argument("--interval", default="1s", help="every comparison's schedule")
    parser.add_argument("--ok-per-wire", type=int, default=4, help="clean providers per wire")
    parser.add_argument(
        "--prompts", nargs="+", default=["short", "medium"], help="of the clean comparisons"
    )
    parser.add_argument(
        "--reload-every", type=float, default=60.0, help="seconds between reloads (0: none)"
    )
    parser.add_argument(
        "--free", action="store_true", help="price 0: no probe touches the budget ledger"
    )
    parser.add_argument("--seed", type=int, default=0, help="the simulator's seed")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also trace Python memory (slower)"
    )
    args = parser.parse_args(argv)
    if args.tracemalloc:
        tracemalloc.start()
    started = time.monotonic()
    with simulator(args.seed) as sim_url:
        code = asyncio.run(soak(args, sim_url))
    print(f"run time: {time.monotonic() - started:.0f} s")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
