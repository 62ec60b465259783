"""Child processes of the benchmark: started from the repository root with this Python,
waited for until they print their ready line, and always stopped."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Child:
    proc: subprocess.Popen[bytes]
    stderr: IO[bytes]  # a file, not a pipe: a chatty child can never block on a full pipe
    out: bytes = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()[-4000:].decode(errors="replace")


def start(module: str, *args: str) -> Child:
    err = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=err,
    )
    return Child(proc, err)


def wait_line(child: Child, pattern: str, timeout: float = 120.0) -> re.Match[str]:
    """The first stdout line matching `pattern` (raw reads: no hidden buffering)."""
    assert child.proc.stdout is not None
    fd = child.proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    regex = re.compile(pattern)
    while True:
        for line in child.out.decode(errors="replace").splitlines():
            match = regex.search(line)
            if match:
                return match
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(
                f"{child.proc.args!r}: no line matching {pattern!r} in time: "
                f"{child.out!r} {child.errors()}"
            )
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                child.proc.wait(timeout=15)
                raise RuntimeError(
                    f"{child.proc.args!r} exited early: {child.out!r} {child.errors()}"
                )
            child.out += chunk


def stop(child: Child) -> bytes:
    """SIGTERM, then SIGKILL if it lingers. Returns all it printed to stdout."""
    proc = child.proc
    rest = b""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            rest, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
    elif proc.stdout is not None and not proc.stdout.closed:
        rest = proc.stdout.read()
    if proc.stdout is not None and not proc.stdout.closed:
        proc.stdout.close()
    child.stderr.close()
    child.out += rest or b""
    return child.out


@contextmanager
def simulator(seed: int) -> Iterator[tuple[str, int]]:
    """The benchmark simulator in its own process: yields (base URL, pid)."""
    child = start("benchmarks.simserver", "--seed", str(seed))
    try:
        url = wait_line(child, r"listening on (http://\S+)").group(1)
        yield url, child.pid
    finally:
        stop(child)
