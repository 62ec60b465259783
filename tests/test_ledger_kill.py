"""A real `kill -9`: a child process reserves and settles in a loop, printing each step
once it has returned (so is committed); the test kills it at random points and checks
that the reopened ledger counts everything the child reported, and nothing it could not
have committed."""

from __future__ import annotations

import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from speed_kings.ledger import BudgetCaps, Caps, Ledger
from tests.test_ledger import FakeClock

NOW = 1_795_000_000.0
# `python -m benchmarks.crash --ledger-rounds N` runs many more rounds; the caps grow with
# them so that reservations keep being written instead of refused after the first few.
ROUNDS = int(os.environ.get("SPEED_KINGS_LEDGER_KILL_ROUNDS", "5"))
SCALE = max(1.0, ROUNDS / 5)  # the caps are reached in the last rounds, whatever the count
GLOBAL_CAP = round(1_000_000_000 * SCALE)  # nano-dollars: $1.00 a day (5 rounds)
A_CAP = round(600_000_000 * SCALE)  # provider a: $0.60 a day (5 rounds)

CHILD = f"""
import asyncio, random, sys
from pathlib import Path
from zoneinfo import ZoneInfo
from speed_kings.ledger import BudgetCaps, Caps, Ledger, Reservation

class Clock:
    def time(self): return {NOW!r}
    def monotonic(self): return 0.0

def out(line):
    sys.stdout.write(line + "\\n")
    sys.stdout.flush()

async def main(state, seed):
    rng = random.Random(seed)
    caps = BudgetCaps(Caps(daily={GLOBAL_CAP / 1e9!r}), {{"a": Caps(daily={A_CAP / 1e9!r})}})
    ledger = await Ledger.open(Path(state), caps, ZoneInfo("UTC"), Clock())
    out(f"open {{ledger.recovered}}")
    while True:
        provider, nanos = rng.choice("ab"), rng.randint(1_000_000, 80_000_000)
        out(f"intent {{provider}} {{nanos}}")
        result = await ledger.reserve(provider, nanos / 1e9)
        if not isinstance(result, Reservation):
            out("refused")
            await asyncio.sleep(0.002)
            continue
        out(f"R {{result.id}} {{provider}} {{nanos}}")
        await asyncio.sleep(rng.uniform(0, 0.004))
        actual = rng.randint(0, nanos)
        out(f"settling {{result.id}} {{actual}}")
        await ledger.settle(result, actual / 1e9)
        out(f"S {{result.id}} {{actual}}")

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


@dataclass
class Reported:
    """What the child printed, i.e. what it knew to be committed."""

    reserved: dict[int, tuple[str, int]] = field(default_factory=dict)  # id -> provider, nanos
    settling: dict[int, int] = field(default_factory=dict)  # settle called with this actual
    settled: dict[int, int] = field(default_factory=dict)  # settle returned
    last_intent: tuple[str, int] | None = None  # a reserve() that may or may not have committed
    refused = 0

    def read(self, lines: list[str]) -> None:
        self.last_intent = None
        for line in lines:
            kind, *rest = line.split()
            if kind == "intent":
                self.last_intent = (rest[0], int(rest[1]))
            elif kind == "R":
                self.reserved[int(rest[0])] = (rest[1], int(rest[2]))
                self.last_intent = None
            elif kind == "refused":
                self.refused += 1
                self.last_intent = None
            elif kind == "settling":
                self.settling[int(rest[0])] = int(rest[1])
            elif kind == "S":
                self.settled[int(rest[0])] = int(rest[1])


def run_child(state: Path, seed: int, kill_after: int, rng: random.Random) -> list[str]:
    """Starts the child, SIGKILLs it a little after its `kill_after`-th committed step,
    and returns every line it managed to print."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(state), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    fd, out, deadline = proc.stdout.fileno(), b"", time.monotonic() + 15
    while out.count(b"\nR ") + out.count(b"\nrefused") < kill_after:
        assert time.monotonic() < deadline, out.decode()
        if select.select([fd], [], [], 0.5)[0]:
            chunk = os.read(fd, 65536)
            assert chunk, f"the child died: {out.decode()} {proc.stderr.read().decode()}"
            out += chunk
    time.sleep(rng.uniform(0, 0.005))  # land anywhere: mid-reserve, mid-probe, mid-settle
    proc.send_signal(signal.SIGKILL)
    rest, err = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL, err.decode()
    return (out + rest).decode().splitlines()


async def test_kill_9_never_loses_committed_spend(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    state, reported, recovered = tmp_path / "state", Reported(), 0
    caps = BudgetCaps(Caps(daily=GLOBAL_CAP / 1e9), {"a": Caps(daily=A_CAP / 1e9)})
    for round_ in range(ROUNDS):
        why = f"seed {seed}, round {round_}"
        lines = run_child(state, rng.randrange(2**32), rng.randint(3, 30), rng)
        assert lines[0] == "open 0", why  # the previous round's leftovers were recovered here
        reported.read(lines[1:])

        ledger = await Ledger.open(state, caps, ZoneInfo("UTC"), FakeClock(NOW))
        spent = {s: round(ledger.spent(s, "day") * 1e9) for s in ("global", "a", "b")}
        recovered += ledger.recovered
        assert ledger.recovered <= 1, why  # the child has at most one probe in flight
        await ledger.close()

        with sqlite3.connect(state / "ledger.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)], why
            rows = db.execute(
                "SELECT id, provider, reserved_nanousd, actual_nanousd, state FROM entries"
            ).fetchall()
        db.close()
        counted = {"global": 0, "a": 0, "b": 0}
        for entry_id, provider, nanos, actual, entry_state in rows:
            assert entry_state == "settled", (why, entry_id)  # open ones were recovered
            if entry_id in reported.settled:
                assert actual == reported.settled[entry_id], why
            elif entry_id in reported.settling:  # killed mid-settle: either value is durable
                assert actual in (reported.settling[entry_id], nanos), why
            elif entry_id in reported.reserved:  # killed mid-probe: its worst case
                assert actual == nanos, why
            else:  # committed, killed before it could say so: only the last reserve() call
                assert reported.last_intent == (provider, nanos), (why, entry_id)
                reported.reserved[entry_id] = (provider, nanos)
            counted["global"] += actual
            counted[provider] += actual
        assert {entry_id for entry_id, *_ in rows} >= set(reported.reserved), why
        assert spent == counted, why

        floor = sum(
            reported.settled.get(i, reported.settling.get(i, nanos))
            for i, (_, nanos) in reported.reserved.items()
        )
        assert spent["global"] >= floor, why  # at least what the child knew was committed
        assert spent["global"] <= GLOBAL_CAP and spent["a"] <= A_CAP, why
        durable = {entry_id: actual for entry_id, _, _, actual, _ in rows}
        for entry_id in reported.reserved:  # resolved now: later rounds cannot change them
            reported.settled.setdefault(entry_id, durable[entry_id])

    print(
        f"kill -9: {ROUNDS} rounds, {len(reported.reserved)} reservations committed, "
        f"{recovered} recovered, {reported.refused} refused, "
        f"${spent['global'] / 1e9:.4f} of ${GLOBAL_CAP / 1e9:.2f} spent (seed {seed})"
    )
