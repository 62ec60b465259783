"""Every PromQL expression of every dashboard and rule, evaluated by a real Prometheus that
scraped the real exporter running in demo mode (Debian's `prometheus` package)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.dashboard_queries import all_queries
from tests.procs import SPEED_KINGS, stop

ROOT = Path(__file__).resolve().parents[1]
RULE_FILES = sorted((ROOT / "config/prometheus/rules").glob("*.yml"))
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
# Template variables, substituted with values the demo exporter really produces.
VARIABLES = {
    "datasource": "prometheus",
    "model": "llama-3.3-70b",
    "provider": "sim-cerebras|sim-groq",
    "provider_a": "sim-cerebras",
    "provider_b": "sim-groq",
    "prompt": "short",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "10m",
    "__range_s": "600",
}
# Families the demo must fill before queries are meaningful.
READY_WHEN = (
    "speedkings_throttling_events_total",
    "speedkings_rate_limit_events_total",
    "speedkings_model_load_seconds",
    "speedkings_time_to_first_token_by_hour_seconds_count",
)

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="prometheus not installed (Debian package prometheus)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.load(resp)


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> dict[str, Any]:
        doc: dict[str, Any] = get(
            f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        )
        return doc

    def query_range(self, expr: str, start: float, end: float, step: str = "5s") -> dict[str, Any]:
        params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
        doc: dict[str, Any] = get(f"{self.url}/api/v1/query_range?{params}")
        return doc

    def has_data(self, expr: str) -> bool:
        try:
            return bool(self.query(expr)["data"]["result"])
        except OSError:
            return False


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, float]]:
    folder = tmp_path_factory.mktemp("stack")
    exporter_port, prom_port = free_port(), free_port()
    exporter = subprocess.Popen(
        [*SPEED_KINGS, "run", "--demo", "--listen", f"127.0.0.1:{exporter_port}"],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "exporter.log").open("wb"),
    )
    # The project's rules as they are, evaluated every second instead of every minute so
    # chained recording rules have data within the test.
    rule_paths = []
    for path in RULE_FILES:
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            group["interval"] = "1s"
        copy = folder / path.name
        copy.write_text(yaml.safe_dump(doc, sort_keys=False))
        rule_paths.append(str(copy))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": rule_paths,
        "scrape_configs": [
            {
                "job_name": "speed-kings",
                "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
            }
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    prometheus = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "prometheus.log").open("wb"),
    )
    prom = Prometheus(f"http://127.0.0.1:{prom_port}")
    started = time.time()
    try:
        deadline = started + 240
        while not all(prom.has_data(f"{name} > 0") for name in READY_WHEN):
            assert exporter.poll() is None, (folder / "exporter.log").read_text()[-2000:]
            assert prometheus.poll() is None, (folder / "prometheus.log").read_text()[-2000:]
            assert time.time() < deadline, "the demo did not fill every family in time"
            time.sleep(2)
        # Every series has a successful probe (pairwise panels compare two providers at
        # one instant: both need data), for longer than a dashboard subquery step (15 s).
        every_series = (
            "count(speedkings_time_to_first_token_seconds_count > 0)"
            " == count(speedkings_time_to_first_token_seconds_count)"
        )
        while not prom.has_data(f"count_over_time(({every_series})[16s:1s]) >= 16"):
            assert time.time() < deadline, "not every series had a successful probe in time"
            time.sleep(2)
        recorded = [name for kind, name, _ in rules() if kind == "record"]
        while not all(prom.has_data(name) for name in recorded):
            assert time.time() < deadline, "recording rules produced no data in time"
            time.sleep(2)
        print(f"\nstack ready after {time.time() - started:.0f} s")
        yield prom, started
    finally:
        stop(prometheus)  # type: ignore[arg-type]
        stop(exporter)  # type: ignore[arg-type]


def substitute(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", VARIABLES[name]).replace("$" + name, VARIABLES[name])
    return expr


def rules() -> list[tuple[str, str, str]]:
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                kind = "alert" if "alert" in rule else "record"
                out.append((kind, rule.get("alert") or rule["record"], rule["expr"]))
    return out


def queries() -> list[tuple[str, str, str]]:
    return [
        (path.stem, title, expr)
        for path in DASHBOARDS
        for title, expr in all_queries(json.loads(path.read_text()))
    ]


def test_there_is_something_to_evaluate() -> None:
    assert RULE_FILES and DASHBOARDS
    assert len(rules()) >= 10 and len(queries()) >= 20


@pytest.mark.parametrize(("kind", "name", "expr"), rules(), ids=lambda v: str(v)[:60])
def test_rule_evaluates(stack: tuple[Prometheus, float], kind: str, name: str, expr: str) -> None:
    prom, started = stack
    doc = prom.query(expr)
    assert doc["status"] == "success", doc
    if kind == "record":
        # A recording rule must have produced data at some point while the demo ran.
        series = prom.query_range(name, started, time.time())["data"]["result"]
        assert series, f"recording rule {name} produced no data"


@pytest.mark.parametrize(("dashboard", "title", "expr"), queries(), ids=lambda v: str(v)[:60])
def test_dashboard_query_returns_data(
    stack: tuple[Prometheus, float], dashboard: str, title: str, expr: str
) -> None:
    prom, started = stack
    promql = substitute(expr)
    assert "$" not in promql, f"unsubstituted variable in {promql}"
    if promql.startswith("label_values("):
        selector, _, label = promql[len("label_values(") : -1].rpartition(",")
        match = "?" + urllib.parse.urlencode({"match[]": selector.strip()}) if selector else ""
        values = get(f"{prom.url}/api/v1/label/{label.strip()}/values{match}")["data"]
        assert values, f"{dashboard} / {title}: no values for {label}"
        return
    instant = prom.query(promql)
    assert instant["status"] == "success", instant
    if instant["data"]["result"]:
        return
    # Some panels show events (cooldowns, annotations): they must have had data at some
    # point while the demo ran, not necessarily now.
    ranged = prom.query_range(promql, started, time.time())
    assert ranged["data"]["result"], f"{dashboard} / {title}: no data for {promql}"
