"""The one table the benchmark prints: a row per measure and condition, our client beside the
`openai` SDK and `httpx-sse`, with ratios (theirs / ours) and the verdict where a target
applies."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from speed_kings.stats import percentile

HEADER = (
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
)


@dataclass(slots=True)
class Row:
    section: str
    measure: str
    condition: str
    ours: float | str | None
    sdk: float | None = None
    httpx: float | None = None
    target: str = ""
    result: str = ""  # PASS, MISS or empty
    digits: int = 2
    ratios: bool = True

    def cells(self) -> tuple[str, ...]:
        return (
            self.section,
            self.measure,
            self.condition,
            fmt(self.ours, self.digits),
            fmt(self.sdk, self.digits),
            fmt(self.httpx, self.digits),
            ratio(self.sdk, self.ours) if self.ratios else "",
            ratio(self.httpx, self.ours) if self.ratios else "",
            self.target,
            self.result,
        )


def fmt(value: float | str | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if math.isinf(value):
        return "inf"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def ratio(theirs: float | None, ours: float | str | None) -> str:
    if theirs is None or ours is None or isinstance(ours, str) or ours == 0:
        return ""
    return f"{theirs / ours:.2f}x"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def render(rows: Sequence[Row]) -> str:
    """A Markdown table, columns padded so it also reads well in a terminal."""
    lines = [HEADER, *(r.cells() for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    out = []
    for index, line in enumerate(lines):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if index == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def p50(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


def p99(values: Sequence[float]) -> float | None:
    return percentile(values, 99)
