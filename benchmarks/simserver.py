"""The simulator in its own process, serving the benchmark's streams and the demo's
providers: `python -m benchmarks.simserver [--seed N]` prints `listening on URL`, then
serves until SIGTERM/SIGINT (or `--max-seconds`, so a forgotten one stops by itself).

`speed-kings simulate` serves only the built-in profiles; the benchmark needs exact rates
(50 to 200,000 tokens/s, 1 or 8 tokens per chunk), hence this launcher. The truth is read
over HTTP: GET {URL}/_sim/requests/{x-request-id}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from benchmarks.profiles import bench_profiles
from speed_kings.run_cli import demo_profiles
from speed_kings.simulator import Simulator


async def serve(seed: int, max_seconds: float) -> None:
    sim = Simulator({**demo_profiles(), **bench_profiles()}, seed=seed, max_truths=20_000)
    url = await sim.start("127.0.0.1", 0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on {url}", flush=True)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max_seconds)
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.simserver")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.seed, args.max_seconds))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
