"""Formats for `speed-kings probe`: table, json, markdown, csv."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from speed_kings.bench import BenchGroup

FORMATS = ("table", "json", "markdown", "csv")
_COLUMNS = (
    "Provider",
    "Model",
    "Prompt",
    "OK",
    "TTFT p50",
    "TTFT p95",
    "First answer p50",
    "Tok/s p50",
    "Tok/s p95",
    "Latency p50",
    "Cost",
)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _cost(value: float | None) -> str:
    return "-" if value is None else f"${value:.6f}"


def _row(group: BenchGroup) -> list[str]:
    s = group.summary()
    spec = group.spec
    return [
        spec.target.provider,
        spec.target.model,
        spec.prompt_name,
        f"{s['successes']}/{s['runs']}",
        _ms(s["time_to_first_token_seconds"]["p50"]),
        _ms(s["time_to_first_token_seconds"]["p95"]),
        _ms(s["time_to_first_answer_token_seconds"]["p50"]),
        _num(s["output_tokens_per_second"]["p50"]),
        _num(s["output_tokens_per_second"]["p95"]),
        _ms(s["request_duration_seconds"]["p50"]),
        _cost(s["cost_usd_total"]),
    ]


def _notes(groups: Sequence[BenchGroup]) -> list[str]:
    notes = []
    for g in groups:
        s = g.summary()
        if s["model_load_seconds"] is not None:
            notes.append(
                f"{g.spec.target.provider}: model load {s['model_load_seconds']:.2f} s "
                "(before timing; not in TTFT)"
            )
        if s["tokens_estimated"]:
            notes.append(f"{g.spec.target.provider}: no usage reported; token counts estimated")
        errors = {r.error for r in g.runs if r.error}
        for error in sorted(errors)[:3]:
            notes.append(f"{g.spec.target.provider}: {error}")
    return notes


def to_json_document(groups: Sequence[BenchGroup], metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": metadata,
        "results": [
            {
                "provider": g.spec.target.provider,
                "model": g.spec.target.model,
                "provider_model": g.spec.target.provider_model,
                "prompt": g.spec.prompt_name,
                "wire": g.spec.target.wire,
                "hardware": g.hardware,
                "runs": [r.to_dict() for r in g.runs],
                "summary": g.summary(),
            }
            for g in groups
        ],
    }


def render(fmt: str, groups: Sequence[BenchGroup], metadata: dict[str, Any]) -> str:
    if fmt == "json":
        return json.dumps(to_json_document(groups, metadata), indent=2)
    if fmt == "csv":
        return _csv(groups)
    rows = [_row(g) for g in groups]
    notes = _notes(groups)
    if fmt == "markdown":
        lines = [
            "# Inference benchmark results",
            "",
            f"*{metadata['timestamp']} · prompt `{metadata['prompt']}` · "
            f"max_tokens {metadata['max_tokens']} · {metadata['iterations']} runs each*",
            "",
            "| " + " | ".join(_COLUMNS) + " |",
            "|" + "---|" * len(_COLUMNS),
            *("| " + " | ".join(r) + " |" for r in rows),
        ]
        if notes:
            lines += ["", *(f"- {n}" for n in notes)]
        return "\n".join(lines)
    table = Table(*_COLUMNS, title="Speed Kings probe")
    for r in rows:
        table.add_row(*r)
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, force_terminal=False, color_system=None)
    console.print(table)
    for n in notes:
        console.print(f"note: {n}", markup=False, highlight=False)
    return buffer.getvalue().rstrip("\n")


def _csv(groups: Sequence[BenchGroup]) -> str:
    """One row per run, every JSON run field that is a scalar."""
    runs = [r.to_dict() for g in groups for r in g.runs]
    fields = [k for k, v in (runs[0] if runs else {}).items() if not isinstance(v, dict)]
    if not fields:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(runs)
    return buffer.getvalue().rstrip("\n")
