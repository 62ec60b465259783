"""`python -m benchmarks [--quick]`: how much Speed Kings distorts what it measures.

Prints the machine, then one table (Markdown): accuracy against the simulator's truth under
load, CPU per chunk and the ingest ceiling, /metrics latency and RSS by series count, and
PASS/MISS per target. Progress goes to stderr. `bash scripts/bench.sh` installs the `bench`
extra (the `openai` SDK, `httpx`, `httpx-sse`) and runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.util
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

NEEDED = ("openai", "httpx", "httpx_sse")


@dataclass(frozen=True, slots=True)
class Settings:
    iterations: int  # accuracy: rounds over every stream and client
    seconds: float  # accuracy: stream length after the first token
    offline_tokens: int  # ingest: chunks in the pre-rendered stream (ours)
    repeats: int  # ingest: runs per figure (median)
    ladder_seconds: float  # ingest: stream length per ladder rung
    scrapes: int  # /metrics: scrapes per series count


FULL = Settings(
    iterations=15, seconds=0.6, offline_tokens=100_000, repeats=3, ladder_seconds=0.3, scrapes=20
)
QUICK = Settings(
    iterations=1, seconds=0.1, offline_tokens=5_000, repeats=1, ladder_seconds=0.1, scrapes=2
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_lines(command: str) -> list[str]:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"command: {command}",
        f"date: {now}",
        f"machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, "
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few iterations: seconds, not minutes")
    parser.add_argument("--seed", type=int, default=1, help="the simulator's seed")
    args = parser.parse_args(argv)
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"missing {', '.join(missing)}: install the bench extra "
            "(bash scripts/bench.sh does: pip install -e '.[bench]')",
            file=sys.stderr,
        )
        return 2
    # Imported only now: they need the bench extra.
    from benchmarks import procs
    from benchmarks.accuracy import (
        TTFT_TARGET_MAX_RATE,
        accuracy_rows,
        outlier_lines,
        run_accuracy,
    )
    from benchmarks.ingest import ingest_rows, ladder_lines, run_ingest
    from benchmarks.scrape import run_scrapes, scrape_rows
    from benchmarks.table import Row, render, verdict

    settings = QUICK if args.quick else FULL
    command = "python -m benchmarks" + (" --quick" if args.quick else "")
    started = time.monotonic()
    for line in machine_lines(command):
        print(line, flush=True)

    with procs.simulator(args.seed) as (sim_url, _):
        print("ingest (quiet loop)...", file=sys.stderr, flush=True)
        ingest = asyncio.run(
            run_ingest(
                sim_url,
                offline_tokens=settings.offline_tokens,
                repeats=settings.repeats,
                ladder_seconds=settings.ladder_seconds,
                seed=args.seed,
            )
        )
        print("accuracy (under load)...", file=sys.stderr, flush=True)
        accuracy = asyncio.run(
            run_accuracy(
                sim_url, iterations=settings.iterations, seconds=settings.seconds, seed=args.seed
            )
        )
        print("/metrics...", file=sys.stderr, flush=True)
        scrapes = run_scrapes(sim_url, settings.scrapes)

    acc_rows = accuracy_rows(accuracy)
    cpu_ratios: list[float] = []
    ing_rows = ingest_rows(ingest, cpu_ratios)
    met_rows = scrape_rows(scrapes)

    # The targets, each from the rows above.
    ttft_rows = [r for r in acc_rows if r.measure == "TTFT abs error p99 (ms)" and r.target]
    worst_ttft = max(
        (r for r in ttft_rows if isinstance(r.ours, float)),
        key=lambda r: float(r.ours or 0.0),
        default=None,
    )
    ceiling = next(r for r in ing_rows if r.measure.startswith("ingest ceiling"))
    latency = next(r for r in met_rows if r.target and "latency" in r.measure)
    rss = next(r for r in met_rows if r.target and "RSS" in r.measure)
    section = "targets"
    targets = [
        Row(
            section,
            "TTFT abs error p99, worst stream (ms)",
            f"streams <= {TTFT_TARGET_MAX_RATE:,} tok/s, ours"
            + (f" (worst: {worst_ttft.condition})" if worst_ttft else ""),
            None if worst_ttft is None else worst_ttft.ours,
            target="<= 2 ms",
            result=verdict(bool(ttft_rows) and all(r.result == "PASS" for r in ttft_rows)),
            digits=3,
            ratios=False,
        ),
        Row(
            section,
            "ingest ceiling (tok/s)",
            "one stream, ours",
            ceiling.ours,
            target=ceiling.target,
            result=ceiling.result,
            digits=0,
            ratios=False,
        ),
        Row(
            section,
            "CPU per chunk: lowest SDK/ours ratio",
            "over every CPU row above",
            min(cpu_ratios) if cpu_ratios else None,
            target=">= 3.00 (ours <= SDK/3)",
            result=verdict(bool(cpu_ratios) and min(cpu_ratios) >= 3.0),
            ratios=False,
        ),
        Row(
            section,
            "/metrics scrape p50 (ms)",
            latency.condition,
            latency.ours,
            target=latency.target,
            result=latency.result,
            digits=1,
            ratios=False,
        ),
        Row(
            section,
            "exporter RSS (MB)",
            rss.condition,
            rss.ours,
            target=rss.target,
            result=rss.result,
            digits=1,
            ratios=False,
        ),
    ]
    print()
    print(render([*acc_rows, *ing_rows, *met_rows, *targets]))
    print()
    print(
        "ratios are theirs / ours: above 1 means ours is lower (errors, CPU, lag); "
        "for the ceiling and capacity rows (higher is better) below 1 means ours is higher"
    )
    for line in [*ladder_lines(ingest), *outlier_lines(accuracy)]:
        print(line)
    for failure in accuracy.failures[:10]:
        print(f"  failed measurement: {failure}")
    print(f"run time: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
