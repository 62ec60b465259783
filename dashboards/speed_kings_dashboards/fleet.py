"""Fleet overview: every provider (and model) at a glance."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import common as common_model

from . import queries as q
from .common import (
    COUNT,
    DOLLARS,
    NONE,
    PERCENT,
    SECONDS,
    TOKENS_PER_SECOND,
    Board,
    Query,
    Spec,
    configure,
    event_annotations,
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
    value_mappings,
)

UID = "speedkings-fleet"
TITLE = "Speed Kings / Fleet overview"

FILTER = 'provider=~"$provider", model=~"$model"'
SERIES = ("provider", "model")
SERIES_LEGEND = "{{provider}} / {{model}}"


def _quantile_panel(
    title: str, description: str, histogram: str, unit: str, levels: tuple[float, float]
) -> timeseries.Panel:
    spec = Spec(
        title=title,
        description=description,
        unit=unit,
        queries=[
            Query(q.quantile(0.5, histogram, FILTER, SERIES), f"{SERIES_LEGEND} p50"),
            Query(q.quantile(0.95, histogram, FILTER, SERIES), f"{SERIES_LEGEND} p95"),
        ],
        thresholds=lower_is_better(*levels),
    )
    return (
        configure(timeseries.Panel(), spec)
        .legend(legend("mean", "lastNotNull", "max"))
        .tooltip(tooltip_all())
        .span_nulls(True)
        .override_by_regexp(
            ".* p95", [prop("custom.lineStyle", {"fill": "dash", "dash": [10, 10]})]
        )
    )


def _summary_stats() -> list[stat.Panel]:
    success = configure(
        stat.Panel(),
        Spec(
            title="Success rate (time range)",
            description=(
                "Successful probes / attempted probes over the selected time range, for the "
                "selected providers and models. Skipped probes (budget, cooldown) are not "
                "attempts and are excluded."
            ),
            unit=PERCENT,
            queries=[Query(q.success_ratio(FILTER, (), q.RANGE), "success rate", instant=True)],
            thresholds=higher_is_better(0.9, 0.99),
            width=6,
            height=4,
        ),
    ).reduce_options(reduce_last())
    spend_range = configure(
        stat.Panel(),
        Spec(
            title="Spend (time range)",
            description="Dollars spent on probes over the selected time range (settled cost).",
            unit=DOLLARS,
            queries=[Query(q.increase(q.COST, FILTER, (), q.RANGE), "spend", instant=True)],
            thresholds=thresholds("blue"),
            width=6,
            height=4,
        ),
    ).reduce_options(reduce_last())
    spend_day = configure(
        stat.Panel(),
        Spec(
            title="Spend (last 24 h)",
            description="Dollars spent on probes over the last 24 hours, whatever the time range.",
            unit=DOLLARS,
            queries=[Query(q.increase(q.COST, FILTER, (), "24h"), "spend 24h", instant=True)],
            thresholds=thresholds("blue"),
            width=6,
            height=4,
        ),
    ).reduce_options(reduce_last())
    failing = configure(
        stat.Panel(),
        Spec(
            title="Series whose last probe failed",
            description=(
                "Number of (provider, model, prompt) series whose most recent attempted probe "
                "did not succeed (speedkings_probe_success == 0)."
            ),
            unit=COUNT,
            queries=[
                Query(f"sum(1 - {q.selector(q.PROBE_SUCCESS, FILTER)})", "failing", instant=True)
            ],
            thresholds=thresholds("green", (1, "red")),
            width=6,
            height=4,
        ),
    ).reduce_options(reduce_last())
    return [success, spend_range, spend_day, failing]


def _throughput_panel() -> timeseries.Panel:
    spec = Spec(
        title="Output throughput p50 / p5",
        description=(
            "Output tokens per second while generating (after the first token), per provider "
            "and model. p50 is the typical speed; p5 is the slow tail (5% of probes were "
            "slower). Higher is better."
        ),
        unit=TOKENS_PER_SECOND,
        queries=[
            Query(q.quantile(0.5, q.THROUGHPUT, FILTER, SERIES), f"{SERIES_LEGEND} p50"),
            Query(q.quantile(0.05, q.THROUGHPUT, FILTER, SERIES), f"{SERIES_LEGEND} p5"),
        ],
        thresholds=higher_is_better(30, 100),
    )
    return (
        configure(timeseries.Panel(), spec)
        .legend(legend("mean", "lastNotNull", "min"))
        .tooltip(tooltip_all())
        .span_nulls(True)
        .override_by_regexp(".* p5", [prop("custom.lineStyle", {"fill": "dash", "dash": [10, 10]})])
    )


def _success_rate_panel() -> timeseries.Panel:
    spec = Spec(
        title="Success rate by provider (rolling 1 h)",
        description=(
            "Share of attempted probes that succeeded over the previous hour, per provider "
            "and model. Skipped probes (budget, cooldown) are excluded. A rolling hour keeps "
            "the line stable with sparse probe schedules."
        ),
        unit=PERCENT,
        queries=[Query(q.success_ratio(FILTER, SERIES, "1h"), SERIES_LEGEND)],
        thresholds=higher_is_better(0.9, 0.99),
        width=12,
    )
    return (
        configure(timeseries.Panel(), spec)
        .min(0)
        .max(1)
        .legend(legend("mean", "lastNotNull", "min"))
        .tooltip(tooltip_all())
        .span_nulls(True)
        .thresholds_style(
            common_builder.GraphThresholdsStyleConfig().mode(
                common_model.GraphThresholdsStyleMode.DASHED
            )
        )
    )


def _spend_panels() -> list[timeseries.Panel | bargauge.Panel]:
    per_hour = (
        configure(
            timeseries.Panel(),
            Spec(
                title="Spend per hour by provider",
                description="Dollars spent on probes in the previous hour (rolling), per provider.",
                unit=DOLLARS,
                queries=[Query(q.increase(q.COST, FILTER, ("provider",), "1h"), "{{provider}}")],
                thresholds=thresholds("blue"),
                width=12,
            ),
        )
        .legend(legend("lastNotNull", "max"))
        .tooltip(tooltip_all())
    )
    in_range = configure(
        bargauge.Panel(),
        Spec(
            title="Spend by provider and model (time range)",
            description=(
                "increase(speedkings_cost_dollars_total[$__range]): dollars spent per provider "
                "and model over the selected time range."
            ),
            unit=DOLLARS,
            queries=[
                Query(q.increase(q.COST, FILTER, SERIES, q.RANGE), SERIES_LEGEND, instant=True)
            ],
            thresholds=thresholds("blue"),
            width=6,
        ),
    ).reduce_options(reduce_last())
    cost_per_million = configure(
        bargauge.Panel(),
        Spec(
            title="Cost per 1M output tokens (time range)",
            description=(
                "1e6 x dollars spent / output tokens over the selected time range, per "
                "provider and model (input tokens included in the spend). Lower is better."
            ),
            unit=DOLLARS,
            queries=[
                Query(
                    q.cost_per_million_output_tokens(FILTER, SERIES, q.RANGE),
                    SERIES_LEGEND,
                    instant=True,
                )
            ],
            thresholds=thresholds("green", (1, "yellow"), (10, "red")),
            width=6,
        ),
    ).reduce_options(reduce_last())
    return [per_hour, in_range, cost_per_million]


def _last_values_table() -> table.Panel:
    ttft = q.with_hardware(q.selector(q.LAST_TTFT, FILTER))
    throughput = q.with_hardware(q.selector(q.LAST_THROUGHPUT, FILTER))
    success = q.with_hardware(q.selector(q.PROBE_SUCCESS, FILTER))
    age = q.with_hardware(f"time() - ({q.selector(q.LAST_PROBE_TS, FILTER)} > 0)")
    spec = Spec(
        title="Last probe per series",
        description=(
            "Latest values per (provider, model, prompt): TTFT and output throughput of the "
            "last successful probe, whether the last attempted probe succeeded, and how long "
            "ago the last probe finished. Hardware class and wire protocol come from "
            "speedkings_provider_info (joined with group_left)."
        ),
        unit=NONE,
        queries=[
            Query(ttft, instant=True, table=True),
            Query(throughput, instant=True, table=True),
            Query(success, instant=True, table=True),
            Query(age, instant=True, table=True),
        ],
        width=24,
        height=9,
        transformations=[
            transformation("merge", {}),
            hide_label_columns(),
        ],
        overrides={
            "Value #A": [
                prop("displayName", "Last TTFT"),
                prop("unit", SECONDS),
                prop("thresholds", lower_is_better(1, 3).build()),
                prop("custom.cellOptions", {"type": "color-text"}),
            ],
            "Value #B": [
                prop("displayName", "Last throughput"),
                prop("unit", TOKENS_PER_SECOND),
                prop("thresholds", higher_is_better(30, 100).build()),
                prop("custom.cellOptions", {"type": "color-text"}),
            ],
            "Value #C": [
                prop("displayName", "Last probe OK"),
                prop("unit", NONE),
                prop("mappings", value_mappings({"0": ("failed", "red"), "1": ("ok", "green")})),
                prop("custom.cellOptions", {"type": "color-background"}),
            ],
            "Value #D": [
                prop("displayName", "Last probe age"),
                prop("unit", SECONDS),
                prop("thresholds", lower_is_better(600, 1800).build()),
                prop("custom.cellOptions", {"type": "color-text"}),
            ],
            "simulated": [prop("displayName", "Simulated")],
        },
    )
    return configure(table.Panel(), spec).cell_height(common_model.TableCellHeight.SM)


def build() -> Board:
    board = (
        new_dashboard(
            UID,
            TITLE,
            "Every provider and model: TTFT, throughput, latency, success rate and spend.",
            "now-6h",
        )
        .with_variable(
            label_variable(
                "model",
                "Model",
                label_values(q.PROBES, "model"),
                "Canonical model names of the configured comparisons.",
                multi=True,
                include_all=True,
            )
        )
        .with_variable(
            label_variable(
                "provider",
                "Provider",
                label_values(q.selector(q.PROBES, 'model=~"$model"'), "provider"),
                "Providers probed for the selected models.",
                multi=True,
                include_all=True,
            )
        )
        .with_row(dash.Row("Summary"))
    )
    for panel in _summary_stats():
        board = board.with_panel(panel)
    board = (
        board.with_row(dash.Row("Speed"))
        .with_panel(
            _quantile_panel(
                "Time to first token p50 / p95",
                "Time from sending the request to the first generated token (answer or "
                "reasoning), per provider and model: "
                "histogram_quantile over rate(speedkings_time_to_first_token_seconds_bucket"
                "[$__rate_interval]). Dashed lines are p95. Lower is better.",
                q.TTFT,
                SECONDS,
                (1, 3),
            )
        )
        .with_panel(_throughput_panel())
        .with_panel(
            _quantile_panel(
                "Request duration p50 / p95",
                "Time from sending the request to the end of the stream, per provider and "
                "model. Dashed lines are p95. Lower is better.",
                q.DURATION,
                SECONDS,
                (10, 30),
            )
        )
        .with_panel(_success_rate_panel())
        .with_row(dash.Row("Spend"))
    )
    for spend in _spend_panels():
        board = board.with_panel(spend)
    board = board.with_row(dash.Row("Latest")).with_panel(_last_values_table())
    return Board(board).with_annotations(event_annotations())
