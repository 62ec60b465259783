"""Every PromQL expression of a Grafana dashboard JSON, for tests that evaluate them.

`all_queries(dashboard)` returns (title, expr) pairs for
- every panel target with an `expr` (rows' nested panels included), titled by the panel;
- every query variable (`label_values(...)` and the like), titled `variable <name>`;
- every Prometheus annotation query, titled `annotation <name>`.
Datasource variables (whose query is a plugin type) and Grafana's built-in annotation
carry no PromQL and are skipped. Template variables are left as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for panel in _panels(dashboard.get("panels") or []):
        for target in panel.get("targets") or []:
            expr = target.get("expr")
            if isinstance(expr, str) and expr.strip():
                out.append((str(panel.get("title", "")), expr))
    return out


def variable_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        if isinstance(query, dict):  # Grafana >= 10 stores {"query": ..., "refId": ...}
            query = query.get("query")
        if isinstance(query, str) and query.strip():
            out.append((f"variable {variable.get('name', '')}", query))
    return out


def annotation_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in (dashboard.get("annotations") or {}).get("list") or []:
        expr = item.get("expr") or (item.get("target") or {}).get("expr")
        if isinstance(expr, str) and expr.strip():
            out.append((f"annotation {item.get('name', '')}", expr))
    return out


def all_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, expr) for every panel target, query variable and annotation query."""
    return panel_queries(dashboard) + variable_queries(dashboard) + annotation_queries(dashboard)
