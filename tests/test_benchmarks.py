"""Smoke test of the benchmark: `python -m benchmarks --quick` runs to the end and prints its
table with every row. No speed target is asserted: the machine is shared and noisy, so
speed belongs in the benchmark's output (benchmarks/RESULTS.md), not in test assertions."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

for _module, _package in (("openai", "openai"), ("httpx", "httpx"), ("httpx_sse", "httpx-sse")):
    pytest.importorskip(
        _module, reason=f"{_package} is not installed: the `bench` extra is needed (.[bench])"
    )

ROOT = Path(__file__).resolve().parent.parent
HEADER = [
    "section",
    "measure",
    "condition",
    "ours",
    "openai SDK",
    "httpx-sse",
    "SDK/ours",
    "httpx/ours",
    "target",
    "result",
]
NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$|^inf$")
RATES = ("50", "500", "5,000", "20,000")
ACCURACY = (
    "TTFT abs error p50 (ms)",
    "TTFT abs error p99 (ms)",
    "tok/s abs error p50 (%)",
    "tok/s abs error p99 (%)",
)


@pytest.fixture(scope="module")
def output() -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def rows(output: str) -> list[dict[str, str]]:
    lines = [line for line in output.splitlines() if line.startswith("| ")]
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    assert cells and cells[0] == HEADER, output
    return [dict(zip(HEADER, row, strict=True)) for row in cells[1:]]


def find(rows: list[dict[str, str]], measure: str, condition: str = "") -> dict[str, str]:
    hits = [r for r in rows if r["measure"] == measure and r["condition"].startswith(condition)]
    assert len(hits) == 1, (measure, condition, [r["condition"] for r in hits])
    return hits[0]


def test_machine_and_command_are_printed(output: str) -> None:
    assert "command: python -m benchmarks --quick" in output
    assert re.search(r"^machine: \d+ CPUs \(nproc\), .+, Python 3\.", output, re.M)
    assert re.search(r"^date: \d{4}-\d\d-\d\d", output, re.M)


def test_accuracy_rows_for_every_stream_and_client(rows: list[dict[str, str]]) -> None:
    for rate in RATES:
        for chunk in (1, 8):
            for measure in ACCURACY:
                row = find(rows, measure, f"{rate} tok/s x{chunk}")
                for client in ("ours", "openai SDK", "httpx-sse"):
                    assert NUMBER.match(row[client]), (measure, rate, chunk, client, row)
                assert row["SDK/ours"].endswith("x") and row["httpx/ours"].endswith("x")
            ttft = find(rows, "TTFT abs error p99 (ms)", f"{rate} tok/s x{chunk}")
            expect_verdict = rate in ("50", "500", "5,000")
            assert (ttft["result"] in ("PASS", "MISS")) == expect_verdict, ttft
    for measure in (
        "TTFT part: t0 -> sim read request p99 (ms)",
        "TTFT part: token sent -> client saw it p99 (ms)",
        "event-loop lag p50 (ms)",
        "event-loop lag p99 (ms)",
    ):
        row = find(rows, measure)
        assert all(NUMBER.match(row[c]) for c in ("ours", "openai SDK", "httpx-sse")), row
    background = find(rows, "background load in the same loop")
    assert re.search(r"\d+ scrapes .*, \d+ demo probes", background["ours"]), background


def test_ingest_rows(rows: list[dict[str, str]]) -> None:
    for shape in ("64 KiB reads", "1 event per read"):
        row = find(rows, "CPU per chunk, offline decode (us)", f"1 token/chunk, {shape}")
        assert all(NUMBER.match(row[c]) for c in ("ours", "openai SDK", "httpx-sse")), row
        assert row["result"] in ("PASS", "MISS")
    for stream in ("500 tok/s x1", "20,000 tok/s x1", "20,000 tok/s x8"):
        row = find(rows, "CPU per chunk, end to end over loopback (us)", stream)
        assert all(NUMBER.match(row[c]) for c in ("ours", "openai SDK", "httpx-sse")), row
        assert row["result"] in ("PASS", "MISS")
    ceiling = find(rows, "ingest ceiling: tok/s within 1% error")
    assert NUMBER.match(ceiling["ours"]) and ceiling["result"] in ("PASS", "MISS"), ceiling
    assert NUMBER.match(find(rows, "parse capacity, offline (chunks/s on one core)")["ours"])


def test_metrics_rows_for_every_size(rows: list[dict[str, str]]) -> None:
    for series in ("10", "100", "1,000"):
        for state in ("fresh start", "after a day"):
            for measure in (
                "scrape latency p50 (ms)",
                "scrape latency p99 (ms)",
                "exporter RSS after scrapes (MB)",
                "exporter peak RSS (MB)",
            ):
                row = find(rows, measure, f"{series} series, {state} (")
                assert NUMBER.match(row["ours"]), row
    assert find(rows, "scrape latency p50 (ms)", "1,000 series, after a day")["result"] in (
        "PASS",
        "MISS",
    )


def test_every_target_has_a_verdict(rows: list[dict[str, str]]) -> None:
    targets = [r for r in rows if r["section"] == "targets"]
    assert [r["measure"] for r in targets] == [
        "TTFT abs error p99, worst stream (ms)",
        "ingest ceiling (tok/s)",
        "CPU per chunk: lowest SDK/ours ratio",
        "/metrics scrape p50 (ms)",
        "exporter RSS (MB)",
    ]
    for row in targets:
        assert row["result"] in ("PASS", "MISS"), row
        assert NUMBER.match(row["ours"]), row
