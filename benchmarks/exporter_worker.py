"""An exporter with N configured series, in a process of its own so its RSS is the
exporter's alone: `python -m benchmarks.exporter_worker --sim URL --series N`.

It runs the real Daemon and WebServer (what `speed-kings run` runs) on a config of
10 providers x M models x P prompts = N (provider, model, prompt) series against the
simulator's short `bench-bg` stream, waits until every series has been probed once (real
probes, so every per-series family holds real observations), then observes each series'
values. It prints `ready URL` and serves: the exposition of a fresh start (the `*_by_hour`
families hold the current hour only). On SIGUSR1 it observes each series' last values in
the other 23 hours of the day too, the `*_by_hour` families as they are after a day of
running (the exposition's steady-state size), and prints `day`. It stops on SIGTERM (or
after `--max-seconds`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import speed_kings.cli  # noqa: F401 (loaded as in `speed-kings run`, for a faithful RSS)
from benchmarks.exporter import running_exporter
from benchmarks.profiles import API_KEY, BACKGROUND
from speed_kings.catalog import load_catalog
from speed_kings.config import Config, parse_config
from speed_kings.metrics import Metrics

KEY_ENV = "SPEEDKINGS_BENCH_API_KEY"
PROVIDERS = 10


def layout(series: int) -> tuple[int, int]:
    """(models, prompts) with PROVIDERS x models x prompts = series."""
    per_provider = max(1, series // PROVIDERS)
    prompts = 5 if per_provider % 5 == 0 else 1
    return per_provider // prompts, prompts


def config_for(sim_url: str, series: int) -> Config:
    models, prompts = layout(series)
    model_names = [f"bench-m{j:02d}" for j in range(models)]
    prompt_names = [f"bench-q{i}" for i in range(prompts)]
    providers: dict[str, Any] = {
        f"bench-p{i:02d}": {
            "base_url": f"{sim_url}/{BACKGROUND}/v1",
            "wire": "openai",
            "hardware": "GPU",
            "api_key_env": KEY_ENV,
            "models": {m: {"id": m} for m in model_names},
            "default_price": {
                "input": 0,
                "output": 0,
                "checked": "2026-01-01",
                "source": "benchmark",
            },
        }
        for i in range(PROVIDERS)
    }
    data = {
        "defaults": {"max_tokens": 20},
        "concurrency": 8,
        "providers": providers,
        "prompts": {name: f"Benchmark prompt {name}." for name in prompt_names},
        "comparisons": [
            {
                "name": model,
                "model": model,
                "providers": sorted(providers),
                "prompts": prompt_names,
                "schedule": {"interval": "1h"},  # one round at start, then quiet
            }
            for model in model_names
        ],
    }
    return parse_config(data, "<benchmark>", catalog=load_catalog())


def every_hour(metrics: Metrics, results: list[dict[str, Any]]) -> None:
    """Each series' last values observed in every other hour of the day, once."""
    now = f"{datetime.now(UTC).hour:02d}"
    for entry in results:
        provider, model = entry["provider"], entry["model"]
        ttft = entry.get("time_to_first_token_seconds")
        tps = entry.get("output_tokens_per_second")
        for hour in (f"{h:02d}" for h in range(24)):
            if hour == now:
                continue
            if ttft is not None:
                metrics.ttft_by_hour.labels(provider, model, hour).observe(ttft)
            if tps is not None:
                metrics.tps_by_hour.labels(provider, model, hour).observe(tps)


async def serve(sim_url: str, series: int, max_seconds: float) -> None:
    config = config_for(sim_url, series)
    environ = {**os.environ, KEY_ENV: API_KEY}
    stop, day = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, day.set)
    async with running_exporter(config, load_catalog(), environ) as exporter:
        deadline = time.monotonic() + max_seconds
        results: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not stop.is_set():
            results = exporter.daemon.snapshot().last_results
            if len(results) >= series:
                break
            await asyncio.sleep(0.2)
        ok = sum(1 for r in results if r.get("outcome") == "success")
        print(f"ready {exporter.url} series={len(results)} ok={ok}", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                _first(stop.wait(), day.wait()), max(0.0, deadline - time.monotonic())
            )
        if day.is_set() and not stop.is_set():
            every_hour(exporter.daemon.metrics, results)
            print("day", flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, deadline - time.monotonic()))


async def _first(*waits: Coroutine[Any, Any, bool]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.exporter_worker")
    parser.add_argument("--sim", required=True, help="the benchmark simulator's base URL")
    parser.add_argument("--series", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.sim, args.series, args.max_seconds))


if __name__ == "__main__":
    main()
