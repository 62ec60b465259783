"""Speed Kings Grafana dashboards as code (grafana-foundation-sdk).

`DASHBOARDS` maps each JSON file name in dashboards/ to the function that builds it;
`render_all()` returns the exact text of every file.
"""

from __future__ import annotations

from collections.abc import Callable

from . import fleet, pairwise, reliability, time_of_day
from .common import Board, render

DASHBOARDS: dict[str, Callable[[], Board]] = {
    f"{fleet.UID}.json": fleet.build,
    f"{pairwise.UID}.json": pairwise.build,
    f"{time_of_day.UID}.json": time_of_day.build,
    f"{reliability.UID}.json": reliability.build,
}


def render_all() -> dict[str, str]:
    """File name -> JSON text (sorted keys, 2-space indent, trailing newline)."""
    return {name: render(build()) for name, build in DASHBOARDS.items()}


__all__ = ["DASHBOARDS", "render_all"]
