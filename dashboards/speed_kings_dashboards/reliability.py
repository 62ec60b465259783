"""Reliability and budget: outcomes, rate limits, throttling, cooldowns, quotas, spend vs caps."""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model

from . import queries as q
from .common import (
    COUNT,
    DOLLARS,
    PERCENT,
    SECONDS,
    Board,
    Query,
    Spec,
    configure,
    event_annotations,
    fixed_color,
    hide_label_columns,
    higher_is_better,
    label_values,
    label_variable,
    legend,
    lower_is_better,
    new_dashboard,
    prop,
    reduce_last,
    thresholds,
    tooltip_all,
    transformation,
)

UID = "speedkings-reliability"
TITLE = "Speed Kings / Reliability and budget"

FILTER = 'provider=~"$provider"'
# Budget scopes are "global" or a provider name.
SCOPE_FILTER = 'scope=~"global|$provider"'
DASHED = prop("custom.lineStyle", {"fill": "dash", "dash": [10, 10]})

OUTCOME_COLORS = {
    "success": "green",
    "rate_limited": "orange",
    "overloaded": "yellow",
    "http_error": "red",
    "timeout": "purple",
    "connection_error": "dark-red",
    "protocol_error": "semi-dark-purple",
    "skipped_budget": "text",
    "skipped_cooldown": "blue",
}


def _bars(panel: timeseries.Panel, stacked: bool = True) -> timeseries.Panel:
    mode = common_model.StackingMode.NORMAL if stacked else common_model.StackingMode.NONE
    return (
        panel.draw_style(common_model.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .line_width(1)
        .stacking(common_builder.StackingConfig().mode(mode))
        .legend(legend("sum"))
        .tooltip(tooltip_all())
    )


def _probe_panels() -> list[timeseries.Panel | bargauge.Panel | table.Panel]:
    outcomes = configure(
        timeseries.Panel(),
        Spec(
            title="Probe outcomes over time",
            description=(
                "Probes per outcome in each interval, stacked: "
                "increase(speedkings_probes_total[$__rate_interval]) by outcome. Skipped "
                "probes (budget, cooldown) never reached the provider."
            ),
            unit=COUNT,
            queries=[
                Query(q.increase(q.PROBES, FILTER, ("outcome",), q.RATE_INTERVAL), "{{outcome}}")
            ],
            width=16,
            height=9,
            overrides={name: [fixed_color(color)] for name, color in OUTCOME_COLORS.items()},
        ),
    )
    success = configure(
        bargauge.Panel(),
        Spec(
            title="Success rate by provider (time range)",
            description=(
                "Successful / attempted probes per provider over the selected time range "
                "(skipped probes excluded)."
            ),
            unit=PERCENT,
            queries=[
                Query(q.success_ratio(FILTER, ("provider",), q.RANGE), "{{provider}}", instant=True)
            ],
            thresholds=higher_is_better(0.9, 0.99),
            width=8,
            height=9,
        ),
    )
    success = (
        success.min(0)
        .max(1)
        .display_mode(common_model.BarGaugeDisplayMode.BASIC)
        .reduce_options(reduce_last())
    )
    by_provider = configure(
        table.Panel(),
        Spec(
            title="Outcomes by provider (time range)",
            description=(
                "Probes per provider and outcome over the selected time range: one row per "
                "provider, one column per outcome."
            ),
            unit=COUNT,
            queries=[
                Query(
                    f"round({q.increase(q.PROBES, FILTER, ('provider', 'outcome'), q.RANGE)})",
                    instant=True,
                    table=True,
                )
            ],
            width=12,
            height=8,
            transformations=[
                transformation(
                    "groupingToMatrix",
                    {"columnField": "outcome", "rowField": "provider", "valueField": "Value"},
                ),
            ],
            overrides={
                "provider\\outcome": [prop("displayName", "Provider"), prop("unit", "string")]
            },
        ),
    ).cell_height(common_model.TableCellHeight.SM)
    last_probe = f"({q.selector(q.LAST_PROBE_TS, FILTER)} > 0)"
    staleness = (
        configure(
            bargauge.Panel(),
            Spec(
                title="Time since last probe",
                description=(
                    "Seconds since each (provider, model, prompt) series last finished a probe "
                    "(skips included). A series that stopped moving is stale: check the schedule, "
                    "budget and cooldowns."
                ),
                unit=SECONDS,
                queries=[
                    Query(
                        f"max by (provider, model, prompt) (time() - {last_probe})",
                        "{{provider}} / {{model}} / {{prompt}}",
                        instant=True,
                    )
                ],
                thresholds=lower_is_better(600, 1800),
                width=12,
                height=8,
            ),
        )
        .display_mode(common_model.BarGaugeDisplayMode.BASIC)
        .reduce_options(reduce_last())
    )
    return [outcomes, success, by_provider, staleness]


def _limit_panels() -> list[timeseries.Panel | stat.Panel | table.Panel]:
    rate_limits = _bars(
        configure(
            timeseries.Panel(),
            Spec(
                title="Rate-limit and overload events",
                description=(
                    "429 (rate_limited) and 503/529 (overloaded) answers per provider in each "
                    "interval. Each one starts a cooldown. Also shown as red annotations."
                ),
                unit=COUNT,
                queries=[
                    Query(
                        q.increase(
                            q.RATE_LIMIT_EVENTS, FILTER, ("provider", "kind"), q.RATE_INTERVAL
                        ),
                        "{{provider}} {{kind}}",
                    )
                ],
                width=12,
            ),
        )
    )
    throttling = _bars(
        configure(
            timeseries.Panel(),
            Spec(
                title="Throttling events",
                description=(
                    "Probes whose TTFT or throughput was far off the series' rolling baseline, "
                    "per provider, model and signal. Also shown as orange annotations."
                ),
                unit=COUNT,
                queries=[
                    Query(
                        q.increase(
                            q.THROTTLING_EVENTS,
                            FILTER,
                            ("provider", "model", "signal"),
                            q.RATE_INTERVAL,
                        ),
                        "{{provider}} / {{model}} {{signal}}",
                    )
                ],
                width=12,
            ),
        )
    )
    cooling = configure(
        stat.Panel(),
        Spec(
            title="Providers in cooldown now",
            description=(
                "Providers whose cooldown (after a 429 or an overload) has not ended yet; "
                "they are not probed until then."
            ),
            unit=COUNT,
            queries=[
                Query(
                    f"count({q.selector(q.COOLDOWN_UNTIL, FILTER)} > time()) or vector(0)",
                    "in cooldown",
                    instant=True,
                )
            ],
            thresholds=thresholds("green", (1, "orange")),
            width=4,
        ),
    ).reduce_options(reduce_last())
    cooldowns = (
        configure(
            timeseries.Panel(),
            Spec(
                title="Cooldown remaining",
                description=(
                    "Seconds left in each provider's cooldown after a 429 or an overload "
                    "(honouring Retry-After and x-ratelimit-reset, with capped exponential "
                    "backoff): speedkings_provider_cooldown_until_timestamp_seconds - time(), "
                    "0 when the provider is not cooling down."
                ),
                unit=SECONDS,
                queries=[
                    Query(
                        f"clamp_min({q.selector(q.COOLDOWN_UNTIL, FILTER)} - time(), 0)",
                        "{{provider}}",
                    )
                ],
                thresholds=thresholds("orange"),
                width=8,
            ),
        )
        .legend(legend("max", table=False))
        .tooltip(tooltip_all())
        .fill_opacity(30)
    )
    remaining_now = configure(
        table.Panel(),
        Spec(
            title="Remaining quota (now)",
            description=(
                "Remaining quota reported by each provider's rate-limit headers at the last "
                "probe: one row per provider, one column per kind (requests, tokens, ...)."
            ),
            unit=COUNT,
            queries=[Query(q.selector(q.RATE_LIMIT_REMAINING, FILTER), instant=True, table=True)],
            thresholds=thresholds("red", (1, "green")),
            width=12,
            transformations=[
                transformation(
                    "groupingToMatrix",
                    {"columnField": "kind", "rowField": "provider", "valueField": "Value"},
                ),
            ],
            overrides={"provider\\kind": [prop("displayName", "Provider"), prop("unit", "string")]},
        ),
    ).cell_height(common_model.TableCellHeight.SM)
    remaining = configure(
        timeseries.Panel(),
        Spec(
            title="Remaining quota over time",
            description=(
                "speedkings_rate_limit_remaining: remaining requests / tokens from the "
                "providers' headers. Drops towards 0 announce rate limiting."
            ),
            unit=COUNT,
            queries=[Query(q.selector(q.RATE_LIMIT_REMAINING, FILTER), "{{provider}} {{kind}}")],
            width=24,
        ),
    )
    remaining = (
        remaining.legend(legend("lastNotNull", "min"))
        .tooltip(tooltip_all())
        .scale_distribution(
            common_builder.ScaleDistributionConfig()
            .type(common_model.ScaleDistribution.LOG)
            .log(10)
        )
    )
    return [rate_limits, throttling, cooling, cooldowns, remaining_now, remaining]


def _budget_panels() -> list[bargauge.Panel | table.Panel | timeseries.Panel]:
    spent = q.selector(q.BUDGET_SPENT, SCOPE_FILTER)
    limit = q.selector(q.BUDGET_LIMIT, SCOPE_FILTER)
    used = f"{spent} / {limit}"
    gauge = configure(
        bargauge.Panel(),
        Spec(
            title="Spend against caps",
            description=(
                "speedkings_budget_spent_dollars / speedkings_budget_limit_dollars per scope "
                "(global or provider) and period (day, month), reservations of running probes "
                "included. Probes are skipped before a cap would be crossed."
            ),
            unit=PERCENT,
            queries=[Query(used, "{{scope}} / {{period}}", instant=True)],
            thresholds=thresholds("green", (0.8, "yellow"), (0.95, "red")),
            width=12,
            height=8,
        ),
    )
    gauge = (
        gauge.min(0)
        .max(1)
        .display_mode(common_model.BarGaugeDisplayMode.GRADIENT)
        .show_unfilled(True)
        .reduce_options(reduce_last())
    )
    caps = configure(
        table.Panel(),
        Spec(
            title="Budget: spent, cap and share",
            description=(
                "Per scope and period: dollars spent in the current window (plus open "
                "reservations), the configured cap and the share of it used. Scopes without "
                "a cap show spend only."
            ),
            unit=DOLLARS,
            queries=[
                Query(spent, instant=True, table=True),
                Query(limit, instant=True, table=True),
                Query(used, instant=True, table=True),
            ],
            width=12,
            height=8,
            transformations=[transformation("merge", {}), hide_label_columns()],
            overrides={
                "scope": [prop("displayName", "Scope"), prop("unit", "string")],
                "period": [prop("displayName", "Period"), prop("unit", "string")],
                "Value #A": [prop("displayName", "Spent")],
                "Value #B": [prop("displayName", "Cap")],
                "Value #C": [
                    prop("displayName", "Used"),
                    prop("unit", PERCENT),
                    prop("thresholds", thresholds("green", (0.8, "yellow"), (0.95, "red")).build()),
                    prop("custom.cellOptions", {"type": "gauge", "mode": "basic"}),
                    prop("min", 0),
                    prop("max", 1),
                ],
            },
        ),
    ).cell_height(common_model.TableCellHeight.SM)
    over_time = configure(
        timeseries.Panel(),
        Spec(
            title="Spend and caps over time",
            description=(
                "Spend in the current day / month window per scope (solid) against its cap "
                "(dashed). Windows reset at midnight / the 1st in the configured time zone."
            ),
            unit=DOLLARS,
            queries=[
                Query(spent, "{{scope}} {{period}} spent"),
                Query(limit, "{{scope}} {{period}} cap"),
            ],
            width=24,
        ),
    )
    over_time = (
        over_time.legend(legend("lastNotNull", "max"))
        .tooltip(tooltip_all())
        .override_by_query("B", [DASHED])
    )
    return [gauge, caps, over_time]


def _model_load_panels() -> list[timeseries.Panel | stat.Panel]:
    # Not filtered by $provider: only local providers report it, and they are few.
    load = q.MODEL_LOAD
    over_time = (
        configure(
            timeseries.Panel(),
            Spec(
                title="Model load time (local providers)",
                description=(
                    "speedkings_model_load_seconds: time a local provider (Ollama) spent loading "
                    "the model before the last probe. Never counted in TTFT. Every local provider "
                    "is shown, whatever the provider filter."
                ),
                unit=SECONDS,
                queries=[Query(load, "{{provider}} / {{model}}")],
                thresholds=lower_is_better(5, 30),
                width=16,
                height=7,
            ),
        )
        .legend(legend("lastNotNull", "max"))
        .tooltip(tooltip_all())
    )
    last = configure(
        stat.Panel(),
        Spec(
            title="Last model load",
            description="Model load time before the latest probe, per local provider and model.",
            unit=SECONDS,
            queries=[Query(load, "{{provider}} / {{model}}", instant=True)],
            thresholds=lower_is_better(5, 30),
            width=8,
            height=7,
        ),
    ).reduce_options(reduce_last())
    return [over_time, last]


def build() -> Board:
    board = new_dashboard(
        UID,
        TITLE,
        "Probe outcomes, rate limits, throttling, cooldowns, remaining quotas, spend against "
        "caps and model load times.",
        "now-24h",
    ).with_variable(
        label_variable(
            "provider",
            "Provider",
            label_values(q.PROBES, "provider"),
            "Configured providers.",
            multi=True,
            include_all=True,
        )
    )
    sections: list[tuple[str, Sequence[cogbuilder.Builder[model.Panel]]]] = [
        ("Probes", _probe_panels()),
        ("Rate limits, throttling and cooldowns", _limit_panels()),
        ("Budget", _budget_panels()),
        ("Local models", _model_load_panels()),
    ]
    for title, panels in sections:
        board = board.with_row(dash.Row(title))
        for panel in panels:
            board = board.with_panel(panel)
    return Board(board).with_annotations(event_annotations())
