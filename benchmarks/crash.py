"""`python -m benchmarks.crash [--kills 200] [--ledger-rounds 200] [--seed N]`: the crash
tests of the test command, many times longer.

1. `--kills` SIGKILLs of a real `speed-kings run` probing paid simulated providers under
   tight caps, at random moments biased towards ledger commits and probes in flight, each
   followed by a restart on the same state dir (tests/test_crash_random.py: every check
   of the test runs after every kill: integrity, spend never decreasing, caps, the
   simulator's own request log against the ledger).
2. `--ledger-rounds` rounds of tests/test_ledger_kill.py: a process reserving and settling
   in a loop, SIGKILLed a few milliseconds after a random committed step, the reopened
   ledger checked against what the process reported as committed.

Prints one summary line per part; docs/crash-safety.md quotes them. Progress on stderr.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.test_crash_random import run_campaign


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crash", description=__doc__)
    parser.add_argument("--kills", type=int, default=200, help="daemon SIGKILLs (0: none)")
    parser.add_argument(
        "--ledger-rounds", type=int, default=200, help="ledger-level SIGKILL rounds (0: none)"
    )
    parser.add_argument("--seed", type=int, default=None, help="replay a campaign")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"command: python -m benchmarks.crash {' '.join(argv or sys.argv[1:])}".rstrip())
    print(
        f"date: {now}; machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
    if args.kills:
        with tempfile.TemporaryDirectory(prefix="speedkings-crash-") as folder:
            campaign = run_campaign(
                args.kills,
                seed,
                Path(folder),
                progress=lambda line: print(line, file=sys.stderr, flush=True),
            )
        print(f"daemon: {campaign.summary()}")
    if args.ledger_rounds:
        # The test's caps are module constants sized by the round count: a process of its own.
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/test_ledger_kill.py", "-q", "-s",
             "-p", "no:cacheprovider"],
            capture_output=True,
            text=True,
            env={**os.environ, "SPEED_KINGS_LEDGER_KILL_ROUNDS": str(args.ledger_rounds)},
            cwd=Path(__file__).resolve().parent.parent,
            check=False,
        )  # fmt: skip
        lines = [line for line in done.stdout.splitlines() if "kill -9:" in line]
        if done.returncode != 0 or not lines:
            print(done.stdout[-5000:] + done.stderr[-2000:])
            return 1
        print(f"ledger: {lines[-1].strip()}; {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
