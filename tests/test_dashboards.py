"""The Grafana dashboards in dashboards/: generated from code, in sync, and well formed.

The PromQL itself is evaluated against a real Prometheus in tests/test_stack_e2e.py; here
every expression must at least be balanced and use only the known template variables.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard_queries import all_queries, annotation_queries, variable_queries

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD_DIR = ROOT / "dashboards"
GENERATOR = DASHBOARD_DIR / "generate.py"

EXPECTED = {
    "speedkings-fleet": {"datasource", "model", "provider"},
    "speedkings-pairwise": {"datasource", "model", "provider_a", "provider_b", "prompt"},
    "speedkings-time-of-day": {"datasource", "model", "provider"},
    "speedkings-reliability": {"datasource", "provider"},
}
TITLES = {
    "speedkings-fleet": "Speed Kings / Fleet overview",
    "speedkings-pairwise": "Speed Kings / Pairwise comparison",
    "speedkings-time-of-day": "Speed Kings / Time of day",
    "speedkings-reliability": "Speed Kings / Reliability and budget",
}
# Grafana's variables the dashboards may use besides their own.
GLOBAL_VARIABLES = {"__rate_interval", "__range", "__interval"}
METRIC = re.compile(r"\bspeedkings_[a-z_]+\b")
VARIABLE = re.compile(r"\$\{?(\w+)")


def load(uid: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DASHBOARD_DIR / f"{uid}.json").read_text(encoding="utf-8"))
    return doc


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels") or [])
    return [panel for panel in out if panel["type"] != "row"]


def documented_metrics() -> set[str]:
    text = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    return set(METRIC.findall(text))


def balanced(expr: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    in_string = False
    escaped = False
    for char in expr:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack and not in_string


ALL = [(uid, title, expr) for uid in EXPECTED for title, expr in all_queries(load(uid))]


# --- generation ----------------------------------------------------------------------------
def test_generated_json_is_in_sync(tmp_path: Path) -> None:
    """Running the generator reproduces the committed files byte for byte."""
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    generated = sorted(path.name for path in tmp_path.glob("*.json"))
    committed = sorted(path.name for path in DASHBOARD_DIR.glob("*.json"))
    assert generated == committed == sorted(f"{uid}.json" for uid in EXPECTED)
    for name in generated:
        fresh = (tmp_path / name).read_bytes()
        assert fresh == (DASHBOARD_DIR / name).read_bytes(), (
            f"dashboards/{name} is out of date: run python dashboards/generate.py"
        )


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(tmp_path)], check=True, capture_output=True
    )
    ok = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    stale = tmp_path / "speedkings-pairwise.json"
    stale.write_text(
        stale.read_text(encoding="utf-8").replace("Pairwise", "Pairwize"), encoding="utf-8"
    )
    bad = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert "speedkings-pairwise.json" in bad.stdout
    assert "speedkings-fleet.json" not in bad.stdout


@pytest.mark.parametrize("uid", EXPECTED)
def test_stable_formatting(uid: str) -> None:
    text = (DASHBOARD_DIR / f"{uid}.json").read_text(encoding="utf-8")
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# --- dashboard level -----------------------------------------------------------------------
@pytest.mark.parametrize("uid", EXPECTED)
def test_uid_title_tags(uid: str) -> None:
    dashboard = load(uid)
    assert dashboard["uid"] == uid
    assert dashboard["title"] == TITLES[uid]
    assert "speed-kings" in dashboard["tags"]
    assert dashboard["description"]
    assert "id" not in dashboard  # Grafana assigns ids; provisioning matches by uid


@pytest.mark.parametrize("uid", EXPECTED)
def test_links_to_the_other_dashboards(uid: str) -> None:
    links = load(uid)["links"]
    by_tag = [
        link for link in links if link["type"] == "dashboards" and "speed-kings" in link["tags"]
    ]
    assert by_tag, links
    assert all(link["keepTime"] and link["includeVars"] for link in by_tag)


@pytest.mark.parametrize("uid", EXPECTED)
def test_variables(uid: str) -> None:
    variables = {v["name"]: v for v in load(uid)["templating"]["list"]}
    assert set(variables) == EXPECTED[uid]
    source = variables["datasource"]
    assert source["type"] == "datasource" and source["query"] == "prometheus"
    for name, variable in variables.items():
        if name == "datasource":
            continue
        assert variable["type"] == "query"
        assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert re.fullmatch(
            r"label_values\((speedkings_\w+(\{[^}]*\})?, )?\w+\)", variable["query"]
        ), variable["query"]


def test_fleet_and_time_of_day_filters_are_multi_with_all() -> None:
    for uid in ("speedkings-fleet", "speedkings-time-of-day", "speedkings-reliability"):
        provider = next(v for v in load(uid)["templating"]["list"] if v["name"] == "provider")
        assert provider["multi"] and provider["includeAll"], uid
    model = next(v for v in load("speedkings-fleet")["templating"]["list"] if v["name"] == "model")
    assert model["multi"] and model["includeAll"]


def test_pairwise_defaults_pick_two_different_providers() -> None:
    variables = {v["name"]: v for v in load("speedkings-pairwise")["templating"]["list"]}
    assert variables["provider_a"]["query"] == variables["provider_b"]["query"]
    assert variables["provider_a"]["sort"] != variables["provider_b"]["sort"]
    assert not variables["model"]["multi"]


def test_reliability_has_event_annotations() -> None:
    names = {title for title, _ in annotation_queries(load("speedkings-reliability"))}
    assert names == {"annotation Rate limited / overloaded", "annotation Throttling"}
    exprs = [expr for _, expr in annotation_queries(load("speedkings-reliability"))]
    assert any(
        "changes(speedkings_rate_limit_events_total" in e and e.endswith("> 0") for e in exprs
    )
    assert any(
        "changes(speedkings_throttling_events_total" in e and e.endswith("> 0") for e in exprs
    )
    for item in load("speedkings-reliability")["annotations"]["list"]:
        if item.get("builtIn") == 1:
            continue
        assert item["datasource"]["uid"] == "${datasource}"
        assert item["titleFormat"] and item["tagKeys"] and item["step"]


# --- panels --------------------------------------------------------------------------------
@pytest.mark.parametrize("uid", EXPECTED)
def test_every_panel_is_described_and_has_a_unit_and_a_query(uid: str) -> None:
    found = panels(load(uid))
    assert len(found) >= 6
    for panel in found:
        title = panel["title"]
        assert panel.get("description"), f"{uid} / {title}: no description"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        if "fieldConfig" in panel:
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{uid} / {title}: no unit"
        exprs = [t.get("expr", "") for t in panel.get("targets") or []]
        assert exprs and all(e.strip() for e in exprs), f"{uid} / {title}: empty target"
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert target["refId"]


@pytest.mark.parametrize("uid", EXPECTED)
def test_ids_and_grid_are_deterministic(uid: str) -> None:
    dashboard = load(uid)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert ids == list(range(1, len(ids) + 1))
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
    refs = [[t["refId"] for t in p["targets"]] for p in panels(dashboard)]
    assert all(len(r) == len(set(r)) for r in refs)


def test_thresholds_where_they_matter() -> None:
    """Speed, success and budget panels colour good and bad values."""
    wanted = {
        "speedkings-fleet": ["Time to first token p50 / p95", "Success rate (time range)"],
        "speedkings-pairwise": ["TTFT ratio A ÷ B", "Throughput ratio A ÷ B"],
        "speedkings-reliability": ["Spend against caps"],
    }
    for uid, titles in wanted.items():
        by_title = {p["title"]: p for p in panels(load(uid))}
        for title in titles:
            steps = by_title[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]
            assert len(steps) >= 2, (uid, title)


def test_pairwise_panels() -> None:
    dashboard = load("speedkings-pairwise")
    by_title = {p["title"]: p for p in panels(dashboard)}
    ratio = by_title["TTFT ratio A ÷ B"]["targets"][0]["expr"]
    assert "/ on ()" in ratio and "$provider_a" in ratio and "$provider_b" in ratio
    winner = next(p for t, p in by_title.items() if t.startswith("Who won each hour"))
    assert winner["type"] == "state-timeline" and winner["interval"] == "1h"
    assert any("< bool" in t["expr"] and "[1h]" in t["expr"] for t in winner["targets"])
    assert any("> bool" in t["expr"] for t in winner["targets"])
    cost = by_title["Cost per 1M output tokens (time range)"]["targets"]
    assert all(t["expr"].startswith("1e6 * ") and 'direction="output"' in t["expr"] for t in cost)


def test_time_of_day_panels() -> None:
    found = panels(load("speedkings-time-of-day"))
    kinds = {p["type"] for p in found}
    assert {"barchart", "table", "heatmap"} <= kinds
    by_hour = [p for p in found if "by hour of day" in p["title"] and p["type"] == "barchart"]
    for panel in by_hour:
        target = panel["targets"][0]
        assert target["instant"] and "[7d]" in target["expr"]
        assert "sum by (provider, hour, le)" in target["expr"]
    heatmaps = [p for p in found if p["type"] == "heatmap"]
    assert all(p["timeFrom"] == "7d" and p["interval"] == "1h" for p in heatmaps)


def test_fleet_table_joins_hardware() -> None:
    table = next(p for p in panels(load("speedkings-fleet")) if p["type"] == "table")
    exprs = [t["expr"] for t in table["targets"]]
    assert all("group_left (hardware" in e for e in exprs)
    assert {
        "speedkings_last_time_to_first_token_seconds",
        "speedkings_last_output_tokens_per_second",
        "speedkings_probe_success",
    } <= {m for e in exprs for m in METRIC.findall(e)}


# --- every expression ----------------------------------------------------------------------
def test_there_are_queries_of_every_kind() -> None:
    assert len(ALL) >= 60
    for uid in EXPECTED:
        assert variable_queries(load(uid)), uid


@pytest.mark.parametrize(("uid", "title", "expr"), ALL, ids=lambda v: str(v)[:50])
def test_expression_is_well_formed(uid: str, title: str, expr: str) -> None:
    assert balanced(expr), f"{uid} / {title}: unbalanced {expr}"
    used = set(VARIABLE.findall(expr))
    allowed = EXPECTED[uid] | GLOBAL_VARIABLES
    assert used <= allowed, f"{uid} / {title}: unknown variables {used - allowed}"
    metrics = set(METRIC.findall(expr))
    assert metrics, f"{uid} / {title}: no speedkings_ metric"
    known = documented_metrics()
    for metric in metrics:
        family = re.sub(r"_(bucket|count|sum)$", "", metric)
        assert metric in known or family in known, f"{uid} / {title}: undocumented {metric}"
