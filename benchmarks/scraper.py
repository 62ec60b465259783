"""A Prometheus stand-in in its own process: `python -m benchmarks.scraper URL` GETs URL
every `--interval` seconds until SIGTERM (or `--max-seconds`), then prints one JSON line:
how many scrapes, their median and slowest latency in milliseconds, and when each was in
flight (CLOCK_MONOTONIC, comparable with the other processes' times)."""

from __future__ import annotations

import argparse
import json
import signal
import time
import urllib.request
from types import FrameType

from speed_kings.stats import percentile


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scraper")
    parser.add_argument("url")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    args = parser.parse_args(argv)
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("scraping", flush=True)
    latencies: list[float] = []
    windows: list[tuple[float, float]] = []
    errors = 0
    deadline = time.monotonic() + args.max_seconds
    next_at = time.monotonic()
    while not stopping and time.monotonic() < deadline:
        start = time.monotonic()
        try:
            with urllib.request.urlopen(args.url, timeout=30) as resp:
                resp.read()
            end = time.monotonic()
            latencies.append((end - start) * 1000)
            windows.append((start, end))
        except OSError:
            errors += 1
        next_at += args.interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # after a SIGTERM the loop ends within one interval
    print(
        json.dumps(
            {
                "scrapes": len(latencies),
                "errors": errors,
                "p50_ms": percentile(latencies, 50),
                "max_ms": max(latencies, default=None),
                "windows": windows,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
