"""/metrics scrape latency and exporter RSS at 10, 100 and 1,000 configured series.

A "series" is one configured (provider, model, prompt), the S of docs/metrics.md. Each size
is a fresh `benchmarks.exporter_worker` process (the real Daemon + WebServer, every series
probed for real), measured twice: as after a fresh start (hour-of-day families hold one
hour) and as after a day of running (every hour seen: the steady state, which the targets
apply to). It is scraped over loopback like Prometheus does, by curl (a C client, as
Prometheus's is Go: one keep-alive connection, one scrape after another); latency is from
sending the GET to the last byte of the body, asked for uncompressed and then gzipped (as
Prometheus asks for it). RSS is
the worker's VmRSS after the scrapes, peak its VmHWM (the high-water mark so far), from /proc.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from benchmarks import procs
from benchmarks.table import Row, p99, verdict

SERIES = (10, 100, 1_000)
FRESH, DAY = "fresh start", "after a day"
LATENCY_TARGET_MS = 50.0  # at 1,000 series
RSS_TARGET_MB = 100.0


@dataclass(slots=True)
class ScrapeResult:
    series: int
    state: str  # "fresh start" or "after a day"
    latencies_ms: list[float]  # uncompressed (Accept-Encoding: identity)
    gzip_latencies_ms: list[float]  # gzip, as Prometheus asks for it
    body_bytes: int
    gzip_bytes: int
    samples: int  # exposition lines that are samples (not # HELP / # TYPE)
    rss_mb: float
    peak_rss_mb: float


def _status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


async def _scrape(
    url: str, count: int, budget: float, encoding: str
) -> tuple[list[float], bytes, int]:
    """`count` scrapes, fewer (at least 2) when they would take longer than `budget` s.
    Returns the latencies, the last body (decoded) and its size on the wire."""
    latencies: list[float] = []
    body, wire = b"", 0
    end = time.monotonic() + budget
    headers = {"Accept-Encoding": encoding}
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        for index in range(count):
            if index >= 2 and time.monotonic() > end:
                break
            start = time.monotonic()
            async with session.get(url, headers=headers) as resp:
                raw = await resp.read()
            latencies.append((time.monotonic() - start) * 1000)
            wire = len(raw)
            body = gzip.decompress(raw) if resp.headers.get("Content-Encoding") == "gzip" else raw
            await asyncio.sleep(0.1)
    return latencies, body, wire


def _curl(url: str, count: int, encoding: str) -> list[float]:
    """`count` scrapes back to back on one keep-alive connection by curl, a C client like
    Prometheus's Go one (a Python client spends as long reading 46 MB as the exporter
    takes to send it). Latency: curl's time_total, GET to the last byte of the body."""
    if shutil.which("curl") is None:
        raise RuntimeError("the /metrics benchmark needs curl (Debian package curl)")
    args = ["curl", "-sS", "--max-time", "60", "-H", f"Accept-Encoding: {encoding}"]
    args += ["-w", "%{time_total}\\n"]
    for _ in range(count):
        args += ["-o", "/dev/null", url]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return [float(line) * 1000 for line in out.split()]


def _measure(pid: int, url: str, series: int, state: str, scrapes: int) -> ScrapeResult:
    metrics = f"{url}/metrics"
    # One scrape per encoding through aiohttp, for the body (checked, samples counted) and
    # the first render after a change; then the timed ones.
    _, body, size = asyncio.run(_scrape(metrics, 1, budget=20.0, encoding="identity"))
    _, gzip_body, gzip_size = asyncio.run(_scrape(metrics, 1, budget=20.0, encoding="gzip"))
    latencies = _curl(metrics, scrapes, "identity")
    gzip_latencies = _curl(metrics, scrapes, "gzip")
    samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    if size != len(body) or not gzip_body.startswith(b"# HELP"):
        raise RuntimeError("the exporter's identity or gzip exposition is not what was asked")
    rss, peak = _status_mb(pid, "VmRSS"), _status_mb(pid, "VmHWM")
    return ScrapeResult(
        series, state, latencies, gzip_latencies, size, gzip_size, samples, rss, peak
    )


def measure_series(sim_url: str, series: int, scrapes: int) -> list[ScrapeResult]:
    child = procs.start("benchmarks.exporter_worker", "--sim", sim_url, "--series", str(series))
    try:
        url = procs.wait_line(child, r"ready (http://\S+)", timeout=300).group(1)
        fresh = _measure(child.pid, url, series, FRESH, scrapes)
        os.kill(child.pid, signal.SIGUSR1)
        procs.wait_line(child, r"^day$", timeout=120)
        day = _measure(child.pid, url, series, DAY, scrapes)
    finally:
        procs.stop(child)
    print(f"  /metrics: {series} series done", file=sys.stderr, flush=True)
    return [fresh, day]


def run_scrapes(sim_url: str, scrapes: int) -> list[ScrapeResult]:
    return [r for n in SERIES for r in measure_series(sim_url, n, scrapes)]


def scrape_rows(results: list[ScrapeResult]) -> list[Row]:
    section = "/metrics"
    rows: list[Row] = []
    for r in sorted(results, key=lambda r: (r.state != FRESH, r.series)):
        cond = (
            f"{r.series:,} series, {r.state} ({r.samples:,} samples, {r.body_bytes / 1e6:.1f} MB)"
        )
        last = r.series == SERIES[-1] and r.state == DAY
        median = statistics.median(r.latencies_ms)
        rows += [
            Row(
                section,
                "scrape latency p50 (ms)",
                cond,
                median,
                target=f"<= {LATENCY_TARGET_MS:.0f} ms" if last else "",
                result=verdict(median <= LATENCY_TARGET_MS) if last else "",
                digits=1,
            ),
            Row(section, "scrape latency p99 (ms)", cond, p99(r.latencies_ms), digits=1),
            Row(
                section,
                "scrape latency p50, gzip (ms)",
                f"{cond[: cond.index(' (')]}, {r.gzip_bytes / 1e6:.1f} MB gzipped",
                statistics.median(r.gzip_latencies_ms),
                digits=1,
            ),
            Row(
                section,
                "scrape latency p99, gzip (ms)",
                f"{cond[: cond.index(' (')]}, {r.gzip_bytes / 1e6:.1f} MB gzipped",
                p99(r.gzip_latencies_ms),
                digits=1,
            ),
            Row(
                section,
                "exporter RSS after scrapes (MB)",
                cond,
                r.rss_mb,
                target=f"<= {RSS_TARGET_MB:.0f} MB" if last else "",
                result=verdict(r.rss_mb <= RSS_TARGET_MB) if last else "",
                digits=1,
            ),
            Row(section, "exporter peak RSS (MB)", cond, r.peak_rss_mb, digits=1),
        ]
    return rows
