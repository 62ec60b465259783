"""Prometheus rules, alerts, and the Prometheus / Alertmanager configs of the stack.

The rules and their promtool unit tests (tests/rules/*.yml) are one unit: every alert must be
tested firing (labels and annotations checked) and silent, every recording rule exercised.
promtool comes with the Debian package `prometheus`, amtool and the Alertmanager binary with
`prometheus-alertmanager`; a test that needs a missing tool is skipped, saying which package.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "config" / "prometheus" / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RECORDING_FILE = RULES_DIR / "speed-kings.rules.yml"
ALERTS_FILE = RULES_DIR / "speed-kings.alerts.yml"
UNIT_TESTS = sorted((ROOT / "tests" / "rules").glob("*.yml"))
PROMETHEUS_YML = ROOT / "config" / "prometheus" / "prometheus.yml"
ALERTMANAGER_YML = ROOT / "config" / "alertmanager" / "alertmanager.yml"
METRICS_DOC = ROOT / "docs" / "metrics.md"
ALERTS_DOC = ROOT / "docs" / "alerts.md"

DASHBOARD_UIDS = {
    "speedkings-fleet",
    "speedkings-pairwise",
    "speedkings-time-of-day",
    "speedkings-reliability",
}

PROMTOOL_MISSING = "promtool not installed (Debian package prometheus)"
AMTOOL_MISSING = "amtool not installed (Debian package prometheus-alertmanager)"
ALERTMANAGER_MISSING = "Alertmanager not installed (Debian package prometheus-alertmanager)"


def tool(name: str, reason: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(reason)
    return path


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules_of(path: Path) -> list[dict[str, Any]]:
    return [rule for group in load(path)["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules_of(ALERTS_FILE) if "alert" in rule]


def records() -> list[dict[str, Any]]:
    return [rule for rule in rules_of(RECORDING_FILE) if "record" in rule]


# ---- promtool ------------------------------------------------------------------------------


def test_rule_files_exist() -> None:
    assert RECORDING_FILE in RULE_FILES and ALERTS_FILE in RULE_FILES
    assert UNIT_TESTS, "no promtool unit tests in tests/rules/"


def test_promtool_check_rules() -> None:
    promtool = tool("promtool", PROMTOOL_MISSING)
    result = run([promtool, "check", "rules", *map(str, RULE_FILES)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", UNIT_TESTS, ids=[p.name for p in UNIT_TESTS])
def test_promtool_unit_tests(test_file: Path) -> None:
    promtool = tool("promtool", PROMTOOL_MISSING)
    result = run([promtool, "test", "rules", test_file.name], cwd=test_file.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_unit_tests_load_both_rule_files() -> None:
    for test_file in UNIT_TESTS:
        loaded = {(test_file.parent / name).resolve() for name in load(test_file)["rule_files"]}
        assert loaded == {RECORDING_FILE, ALERTS_FILE}, test_file.name


def test_every_alert_is_tested_firing_and_silent() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for test_file in UNIT_TESTS:
        for case in load(test_file)["tests"]:
            for check in case.get("alert_rule_test", []):
                expected = check.get("exp_alerts") or []
                if not expected:
                    silent.add(check["alertname"])
                    continue
                firing.add(check["alertname"])
                for alert in expected:
                    annotations = alert.get("exp_annotations", {})
                    assert {"summary", "description", "dashboard"} <= annotations.keys(), (
                        f"{test_file.name}: {check['alertname']} must check its annotations"
                    )
                    assert "severity" in alert.get("exp_labels", {})
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - silent == set(), "alerts never tested silent"
    assert (firing | silent) - names == set(), "tests of alerts that do not exist"


def test_every_recording_rule_is_exercised() -> None:
    """Each recorded series is checked by a promql_expr_test, or feeds a rule or alert that
    is."""
    tested = ""
    for test_file in UNIT_TESTS:
        for case in load(test_file)["tests"]:
            for check in case.get("promql_expr_test", []):
                tested += check["expr"] + "\n"
    other_exprs = "\n".join(rule["expr"] for rule in rules_of(RECORDING_FILE) + alerts())
    for rule in records():
        name = rule["record"]
        assert name in tested or other_exprs.count(name) > 0, f"{name} is never tested"


# ---- the rules themselves ------------------------------------------------------------------


def test_groups_and_names() -> None:
    groups = {group["name"] for group in load(RECORDING_FILE)["groups"]}
    assert "speedkings.rules" in groups
    assert all(name.startswith("speedkings.rules") for name in groups)
    assert [group["name"] for group in load(ALERTS_FILE)["groups"]] == ["speedkings.alerts"]
    level_metric_operation = re.compile(r"^[a-z][a-z_]*:speedkings_[a-z0-9_]+:[a-z0-9_]+$")
    for rule in records():
        assert level_metric_operation.match(rule["record"]), rule["record"]


def test_every_alert_has_severity_summary_description_dashboard() -> None:
    assert alerts()
    for rule in alerts():
        name = rule["alert"]
        assert re.fullmatch(r"SpeedKings(?:[A-Z][a-z0-9]*|TTFT)+", name), name
        assert rule.get("labels", {}).get("severity") in {"warning", "critical"}, name
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "dashboard"):
            assert annotations.get(key, "").strip(), f"{name} has no {key}"
        dashboard = re.match(r"^/d/([a-z-]+)/[a-z0-9-]+", annotations["dashboard"])
        assert dashboard and dashboard.group(1) in DASHBOARD_UIDS, name


def test_alerts_required_by_the_spec() -> None:
    names = {rule["alert"] for rule in alerts()}
    assert {
        "SpeedKingsProviderSlowTTFT",
        "SpeedKingsProviderSlowThroughput",
        "SpeedKingsProbesFailing",
        "SpeedKingsProbesStale",
        "SpeedKingsProviderRateLimited",
        "SpeedKingsBudgetNearlyExhausted",
        "SpeedKingsBudgetExhausted",
        "SpeedKingsExporterDown",
        "SpeedKingsThrottling",
        "SpeedKingsConfigReloadFailed",
    } <= names


def documented_families() -> set[str]:
    return set(re.findall(r"`(speedkings_[a-z0-9_]+)`", METRICS_DOC.read_text()))


def test_rules_use_only_documented_metrics() -> None:
    """The metric names are the exporter's public contract (docs/metrics.md): no invented
    series. Histogram and counter suffixes are those of the documented families."""
    families = documented_families()
    assert "speedkings_probes_total" in families
    recorded = {rule["record"] for rule in records()}
    text = "\n".join(
        rule["expr"] + json.dumps(rule.get("annotations", {}))
        for rule in rules_of(RECORDING_FILE) + alerts()
    )
    # Names that stand alone, not inside a recorded name (level:metric:operation).
    for name in set(re.findall(r"(?<![:\w])speedkings_[a-z0-9_]+(?![:\w])", text)):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in families or base in families, f"{name} is not in docs/metrics.md"
    for name in re.findall(r"[a-z_]+:speedkings_[a-z0-9_]+:[a-z0-9_]+", text):
        assert name in recorded, f"{name} is not recorded"


def test_alerts_are_documented() -> None:
    doc = ALERTS_DOC.read_text()
    for name in {rule["alert"] for rule in alerts()}:
        assert f"## {name}" in doc, f"{name} is not in docs/alerts.md"
        anchor = rule_runbook(name)
        if anchor:
            assert anchor == f"docs/alerts.md#{name.lower()}"


def rule_runbook(name: str) -> str | None:
    for rule in alerts():
        if rule["alert"] == name:
            return rule.get("annotations", {}).get("runbook")
    return None


# ---- Prometheus config ---------------------------------------------------------------------


def test_prometheus_config_for_the_stack() -> None:
    config = load(PROMETHEUS_YML)
    assert config["global"]["scrape_interval"] == "15s"
    assert config["global"]["evaluation_interval"] == "15s"
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for sc in jobs["speed-kings"]["static_configs"] for t in sc["targets"]]
    assert targets == ["exporter:9464"]
    managers = config["alerting"]["alertmanagers"]
    assert [t for m in managers for sc in m["static_configs"] for t in sc["targets"]] == [
        "alertmanager:9093"
    ]


def test_promtool_check_config(tmp_path: Path) -> None:
    """The stack's rule path only exists in the container: check a copy pointing at the
    repository's rules."""
    promtool = tool("promtool", PROMTOOL_MISSING)
    config = load(PROMETHEUS_YML)
    config["rule_files"] = [str(RULES_DIR / "*.yml")]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    result = run([promtool, "check", "config", str(copy)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout + result.stderr


# ---- Alertmanager config -------------------------------------------------------------------


def test_amtool_check_config() -> None:
    amtool = tool("amtool", AMTOOL_MISSING)
    result = run([amtool, "check-config", str(ALERTMANAGER_YML)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=SpeedKingsBudgetExhausted", "severity=critical", "scope=global"], "pager"),
        (["alertname=SpeedKingsExporterDown", "severity=critical"], "pager"),
        (["alertname=SpeedKingsProviderSlowTTFT", "severity=warning", "provider=groq"], "chat"),
        (["alertname=SpeedKingsProbesStale", "severity=warning"], "chat"),
    ],
)
def test_alertmanager_routes(labels: list[str], receiver: str) -> None:
    amtool = tool("amtool", AMTOOL_MISSING)
    result = run(
        [
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER_YML}",
            f"--verify.receivers={receiver}",
            *labels,
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(url: str, body: Any | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager on loopback with the stack's config (clustering off)."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.skip(ALERTMANAGER_MISSING)
    port = free_port()
    log = tmp_path / "alertmanager.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={ALERTMANAGER_YML}",
                f"--storage.path={tmp_path}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "Alertmanager did not become ready"
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def post_alerts(url: str, alerts: list[dict[str, str]]) -> None:
    http_json(
        f"{url}/api/v2/alerts",
        [{"labels": labels, "annotations": {"summary": "test"}} for labels in alerts],
    )


State = dict[tuple[str, str, str], bool]


def inhibited(url: str) -> State:
    """(alertname, severity, scope or provider) -> whether that alert is inhibited."""
    state = {}
    for active in http_json(f"{url}/api/v2/alerts"):
        labels = active["labels"]
        key = (
            labels["alertname"],
            labels["severity"],
            labels.get("scope", labels.get("provider", "")),
        )
        state[key] = bool(active["status"]["inhibitedBy"])
    return state


def settled_state(url: str, done: Callable[[State], bool]) -> State:
    """Alertmanager's inhibitor learns of new alerts asynchronously: poll for a while."""
    deadline = time.monotonic() + 10
    while True:
        state = inhibited(url)
        if done(state) or time.monotonic() > deadline:
            return state
        time.sleep(0.1)


def alert(name: str, severity: str, **labels: str) -> dict[str, str]:
    return {"alertname": name, "severity": severity, **labels}


def test_inhibit_rules(alertmanager: str) -> None:
    exhausted, nearly = "SpeedKingsBudgetExhausted", "SpeedKingsBudgetNearlyExhausted"
    failing = "SpeedKingsProbesFailing"
    post_alerts(
        alertmanager,
        [
            alert(exhausted, "critical", scope="sambanova", period="month"),
            alert(nearly, "warning", scope="sambanova", period="month"),
            alert(nearly, "warning", scope="global", period="day"),
            alert(failing, "critical", provider="moonshot", model="kimi-k2.5"),
            alert(failing, "warning", provider="moonshot", model="kimi-k2.5"),
            alert(failing, "warning", provider="groq", model="llama-3.1-8b"),
        ],
    )
    expected = {
        (exhausted, "critical", "sambanova"): False,
        (nearly, "warning", "sambanova"): True,
        (nearly, "warning", "global"): False,
        (failing, "critical", "moonshot"): False,
        (failing, "warning", "moonshot"): True,
        (failing, "warning", "groq"): False,
    }
    assert settled_state(alertmanager, lambda state: state == expected) == expected
    # The exporter going down silences every other Speed Kings alert, not itself.
    down = alert("SpeedKingsExporterDown", "critical", job="speed-kings", instance="exporter:9464")
    post_alerts(alertmanager, [down])
    expected = {key: True for key in expected} | {("SpeedKingsExporterDown", "critical", ""): False}
    assert settled_state(alertmanager, lambda state: state == expected) == expected
