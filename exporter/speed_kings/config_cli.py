"""`speed-kings check-config FILE`: validate a config and show what it will do and cost.

Exit status: 0 valid, 1 invalid (each problem on stderr as `FILE: KEY.PATH: PROBLEM; fix:
FIX`), 2 usage error (click's). Key status comes from the environment of this command
(`NAME` or `NAME_FILE`); a key's value is never printed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from speed_kings.catalog import Catalog, ProviderEntry
from speed_kings.config import (
    Comparison,
    Config,
    ConfigError,
    load_config,
    worst_case_probe_cost,
)
from speed_kings.durations import format_duration
from speed_kings.keys import provider_status, secrets_from_environ
from speed_kings.redact import Redactor

EXIT_INVALID = 1

# Wide enough that piped output (tests, CI logs) never wraps a cell.
_PIPE_WIDTH = 400


def _money(value: float | None) -> str:
    if value is None:
        return "unknown"
    if value == 0:
        return "$0"
    if value >= 0.01:
        return f"${value:.2f}"
    return f"${value:.4f}" if value >= 0.0001 else "<$0.0001"


def _about(seconds: float) -> str:
    """A derived or average interval, rounded for reading: 2284.2 s -> "38m"."""
    step = 60.0 if seconds >= 600 else 1.0
    return format_duration(max(step, round(seconds / step) * step))


@dataclass(slots=True)
class _ComparisonCost:
    comparison: Comparison
    interval: float
    round_cost: float | None
    month_cost: float | None
    unpriced: list[str] = field(default_factory=list)  # providers without a price


@dataclass(slots=True)
class Summary:
    """Everything check-config shows, computed without printing (for tests and reuse)."""

    config: Config
    catalog: Catalog
    providers: dict[str, ProviderEntry]
    costs: list[_ComparisonCost]
    provider_month: dict[str, float]  # worst case per provider and month, priced probes only
    warnings: list[str]


def _schedule_text(config: Config, cost: _ComparisonCost) -> str:
    schedule = cost.comparison.schedule
    if schedule is None:
        return f"every {_about(cost.interval)} (budget-derived)"
    if schedule.cron is not None:
        text = f"cron {schedule.cron!r} ({config.timezone}), ~every {_about(cost.interval)}"
    else:
        text = f"every {_about(cost.interval)}"
    if schedule.jitter:
        text += f" + up to {format_duration(schedule.jitter)}"
    return text


def summarize(config: Config, catalog: Catalog, environ: Mapping[str, str]) -> Summary:
    providers = config.resolved_providers(catalog)
    costs: list[_ComparisonCost] = []
    provider_month: dict[str, float] = {}
    warnings: list[str] = []
    for comparison in config.comparisons:
        max_tokens = config.max_tokens_for(comparison)
        round_cost = config.round_cost_worst_case(comparison, providers)
        interval = config.effective_interval(comparison, round_cost or 0.0)
        rounds = config.rounds_per_month(comparison, round_cost or 0.0)
        unpriced = []
        for name in comparison.providers:
            probe_costs = [
                worst_case_probe_cost(
                    providers[name], comparison.model, config.prompt_text(p), max_tokens
                )
                for p in comparison.prompts
            ]
            known = [c for c in probe_costs if c is not None]
            if len(known) < len(probe_costs):
                unpriced.append(name)
            provider_month[name] = provider_month.get(name, 0.0) + sum(known) * rounds
        month = round_cost * rounds if round_cost is not None else None
        costs.append(_ComparisonCost(comparison, interval, round_cost, month, unpriced))
        for name in unpriced:
            warnings.append(
                f"{comparison.name}: {name} has no price for {comparison.model}, so its worst "
                f"case is unknown; set one under providers.{name}.models"
            )

    used = {name for c in config.comparisons for name in c.providers}
    for name, entry in providers.items():
        status = provider_status(entry, environ)
        if name not in used:
            warnings.append(f"{name}: listed under providers but in no comparison")
        elif not status.ready:
            warnings.append(f"{name}: {status.text}; its probes will not run")

    if all(c.month_cost is not None for c in costs):
        total = sum(c.month_cost or 0.0 for c in costs)
        caps = config.budget.global_
        if caps.monthly is not None and total > caps.monthly:
            warnings.append(
                f"worst case {_money(total)}/month is over the global monthly cap "
                f"{_money(caps.monthly)}: probes will be skipped once it is reached"
            )
        if caps.daily is not None and total / 30 > caps.daily:
            warnings.append(
                f"worst case {_money(total / 30)}/day is over the global daily cap "
                f"{_money(caps.daily)}: probes will be skipped once it is reached"
            )
    for name, caps in config.budget.providers.items():
        spend = provider_month.get(name, 0.0)
        if caps.monthly is not None and spend > caps.monthly:
            warnings.append(
                f"{name}: worst case {_money(spend)}/month is over its monthly cap "
                f"{_money(caps.monthly)}"
            )
        if caps.daily is not None and spend / 30 > caps.daily:
            warnings.append(
                f"{name}: worst case {_money(spend / 30)}/day is over its daily cap "
                f"{_money(caps.daily)}"
            )
    return Summary(config, catalog, providers, costs, provider_month, warnings)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    table = Table(title_justify="left")
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # Text: ids may contain '[' (markup)
    return table


def _cap(value: float | None) -> str:
    return "no cap" if value is None else _money(value)


def render_summary(
    console: Console, path: Path, summary: Summary, environ: Mapping[str, str]
) -> None:
    config, catalog = summary.config, summary.catalog
    catalog_path = config.catalog_path(path)
    console.print(Text(f"{path}: valid"))
    settings = [
        ("listen", config.listen),
        ("timezone", config.timezone),
        ("state dir", str(config.state_path(path))),
        (
            "catalog",
            f"{catalog_path or 'packaged'} (checked {catalog.checked.isoformat()})",
        ),
        ("concurrency", str(config.concurrency)),
        ("log", f"{config.log.format}, {config.log.level}"),
        (
            "probe defaults",
            f"max_tokens {config.defaults.max_tokens}, timeout "
            f"{format_duration(config.defaults.timeout)}, "
            f"{'fresh' if config.defaults.fresh_connections else 'reused'} connections",
        ),
    ]
    for key, value in settings:
        console.print(Text(f"  {key:<15} {value}"))

    used: dict[str, list[str]] = {}
    for comparison in config.comparisons:
        for name in comparison.providers:
            used.setdefault(name, []).append(comparison.name)
    console.print(Text(f"\nProviders ({len(summary.providers)})"))
    console.print(
        _table(
            ["name", "hardware", "wire", "base URL", "key", "comparisons"],
            (
                [
                    name,
                    entry.hardware,
                    entry.wire,
                    entry.resolve_base_url(environ) or "(unset)",
                    provider_status(entry, environ).text,
                    ", ".join(used.get(name, [])) or "-",
                ]
                for name, entry in summary.providers.items()
            ),
        )
    )

    console.print(Text(f"\nComparisons ({len(summary.costs)}), worst case cost"))
    rows = [
        [
            cost.comparison.name,
            cost.comparison.model,
            ", ".join(cost.comparison.providers),
            ", ".join(cost.comparison.prompts),
            str(config.max_tokens_for(cost.comparison)),
            _schedule_text(config, cost),
            _money(cost.round_cost),
            _money(cost.month_cost),
        ]
        for cost in summary.costs
    ]
    months = [cost.month_cost for cost in summary.costs]
    total = None if None in months else sum(m or 0.0 for m in months)
    rows.append(["total", "", "", "", "", "", "", _money(total)])
    console.print(
        _table(
            ["name", "model", "providers", "prompts", "max tokens", "schedule", "round", "month"],
            rows,
        )
    )

    console.print(Text("\nBudget caps"))
    caps_rows = [["global", _cap(config.budget.global_.daily), _cap(config.budget.global_.monthly)]]
    caps_rows += [
        [name, _cap(caps.daily), _cap(caps.monthly)]
        for name, caps in config.budget.providers.items()
    ]
    console.print(_table(["scope", "daily", "monthly"], caps_rows))
    if config.budget.global_.monthly is None and config.budget.global_.daily is None:
        console.print(Text("  no global cap: spending is not limited"))

    if summary.warnings:
        console.print(Text(f"\nWarnings ({len(summary.warnings)})"))
        for warning in summary.warnings:
            console.print(Text(f"  - {warning}"))


@click.command()
@click.argument("config_file", metavar="FILE", type=click.Path(path_type=Path))
def check_config_command(config_file: Path) -> None:
    """Validate a config FILE and summarize it: providers and whether their keys are set,
    comparisons with their schedule and worst-case cost per round and per month, budget caps.

    Exits 0 when valid, 1 when invalid (each problem on stderr with its key path and fix).
    """
    environ = dict(os.environ)
    try:
        config = load_config(config_file)
        catalog = config.load_catalog(config_file)
        summary = summarize(config, catalog, environ)
    except ConfigError as exc:
        # Errors quote values: a key pasted into the wrong field must not be printed.
        click.echo(Redactor(secrets_from_environ(environ))(str(exc)), err=True)
        sys.exit(EXIT_INVALID)
    tty = sys.stdout.isatty()
    console = Console(file=sys.stdout, width=None if tty else _PIPE_WIDTH, highlight=False)
    render_summary(console, config_file, summary, environ)
