"""Real processes for tests: the simulator as `speed-kings simulate`, lines read without
hidden buffering, and everything stopped afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

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


# --- the exporter as `speed-kings run` ------------------------------------------------------
def free_port() -> int:
    """A port nothing listens on right now (bound to 127.0.0.1:0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def clean_environ(**extra: str) -> dict[str, str]:
    """The test's environment without provider keys, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_API_KEY_FILE"))}
    return {**env, **extra}


def http(
    url: str, *, method: str = "GET", timeout: float = 10.0
) -> tuple[int, dict[str, str], str]:
    """Status, headers and body text; error statuses are answers too, not exceptions."""
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read().decode()


Sample = tuple[str, frozenset[tuple[str, str]]]


def parse_metrics(text: str) -> dict[Sample, float]:
    """Every sample of an exposition: (sample name, labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(metrics: dict[Sample, float], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 if none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in metrics.items() if n == name and want <= ls)


def samples(metrics: dict[Sample, float], name: str) -> list[tuple[dict[str, str], float]]:
    return [(dict(ls), v) for (n, ls), v in metrics.items() if n == name]


class DaemonProcess:
    """`speed-kings run ARGS --listen 127.0.0.1:PORT`, its output in files (a pipe nobody
    reads would fill and block it)."""

    def __init__(self, args: list[str], *, out_dir: Path, env: dict[str, str]) -> None:
        self.started = time.monotonic()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        out_dir.mkdir(parents=True, exist_ok=True)
        n = len(list(out_dir.glob("daemon-*.stdout")))
        self.stdout_path = out_dir / f"daemon-{n}.stdout"
        self.stderr_path = out_dir / f"daemon-{n}.stderr"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [*SPEED_KINGS, "run", *args, "--listen", f"127.0.0.1:{self.port}"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        """Everything it printed so far, stdout then stderr."""
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(
            errors="replace"
        )

    def events(self) -> list[dict[str, Any]]:
        """Its JSON log lines (stderr), in order; other lines (tracebacks) are left out."""
        out = []
        for line in self.stderr_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"the daemon exited early: {self.output()[-3000:]}"
            try:
                if http(self.url + "/healthz", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"no /healthz in time: {self.output()[-3000:]}"
            time.sleep(0.1)

    def get(self, path: str, timeout: float = 10.0) -> str:
        status, _, body = http(self.url + path, timeout=timeout)
        assert status == 200, (path, status, body)
        return body

    def metrics_text(self) -> str:
        return self.get("/metrics")

    def metrics(self) -> dict[Sample, float]:
        return parse_metrics(self.metrics_text())

    def probes(self) -> list[dict[str, Any]]:
        """/api/probes' recent probes, newest first."""
        probes: list[dict[str, Any]] = json.loads(self.get("/api/probes"))["recent_probes"]
        return probes

    def terminate(self, timeout: float = 35.0) -> tuple[int, float]:
        """SIGTERM and wait: (exit status, seconds it took). SIGKILL if it lingers."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"no exit within {timeout}s of SIGTERM") from None
        return code, time.monotonic() - start

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        assert self.proc.returncode == -signal.SIGKILL

    def stop(self) -> None:
        """Whatever state it is in: gone afterwards (SIGTERM, then SIGKILL)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=35)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def daemon_process(
    *args: str, out_dir: Path, env: dict[str, str] | None = None
) -> Iterator[DaemonProcess]:
    """`speed-kings run ARGS` serving (healthy); stopped afterwards whatever happens."""
    daemon = DaemonProcess(list(args), out_dir=out_dir, env=env or clean_environ())
    try:
        daemon.wait_healthy()
        yield daemon
    finally:
        daemon.stop()


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, interval: float = 0.2, what: str = ""
) -> Any:
    """Polls until `predicate()` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(interval)
