"""Real processes for tests: the simulator as `speed-kings simulate`, lines read without
hidden buffering, and everything stopped afterwards."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

SPEED_KINGS = [sys.executable, "-m", "speed_kings"]


def read_lines(proc: subprocess.Popen[bytes], until: str, timeout: float = 15.0) -> list[str]:
    """Lines printed so far, up to one starting with `until` (raw reads: no hidden buffer)."""
    assert proc.stdout is not None
    fd, out = proc.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    while True:
        lines = out.decode().splitlines()
        if any(line.startswith(until) for line in lines):
            return lines
        left = deadline - time.monotonic()
        assert left > 0, f"no {until!r} line in time: {lines}"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 65536)
            assert chunk, f"the process exited early: {lines}"
            out += chunk


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then SIGKILL if it lingers; closes the pipes. Returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    return proc.returncode


@contextmanager
def simulator_process(*args: str) -> Iterator[str]:
    """`speed-kings simulate --port 0 ARGS` running; yields its base URL."""
    proc = subprocess.Popen(
        [*SPEED_KINGS, "simulate", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        lines = read_lines(proc, "truth:")
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", lines[0])
        assert match, lines
        yield match.group(1)
    finally:
        stop(proc)
