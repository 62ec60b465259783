"""Time-of-day profile: p50 TTFT and throughput per hour of day over the last 7 days."""

from __future__ import annotations

from grafana_foundation_sdk.builders import barchart, heatmap, table
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import heatmap as heatmap_model

from . import queries as q
from .common import (
    COUNT,
    SECONDS,
    TOKENS_PER_SECOND,
    Board,
    Query,
    Spec,
    configure,
    higher_is_better,
    label_values,
    label_variable,
    legend,
    lower_is_better,
    new_dashboard,
    prop,
    thresholds,
    tooltip_all,
    transformation,
)

UID = "speedkings-time-of-day"
TITLE = "Speed Kings / Time of day"

FILTER = 'model=~"$model", provider=~"$provider"'
WEEK = "7d"
PROBES_BY_HOUR = (
    f"round({q.increase(q.TTFT_BY_HOUR + '_count', FILTER, ('provider', 'hour'), WEEK)})"
)


def by_hour_p50(histogram: str) -> str:
    """p50 per provider and hour of day over the last 7 days (the `*_by_hour` families).

    `> 0` drops hours whose buckets did not move in the week (NaN quantiles).
    """
    return f"{q.quantile(0.5, histogram, FILTER, ('provider', 'hour'), WEEK, 'increase')} > 0"


def _hour_matrix() -> list[model.DataTransformerConfig]:
    """Rows = hour of day (00-23), columns = providers."""
    return [
        transformation("sortBy", {"fields": {}, "sort": [{"field": "hour"}]}),
        transformation(
            "groupingToMatrix",
            {"columnField": "provider", "rowField": "hour", "valueField": "Value"},
        ),
    ]


def _bar_chart(
    title: str, description: str, histogram: str, unit: str, levels: dash.ThresholdsConfig
) -> barchart.Panel:
    spec = Spec(
        title=title,
        description=description,
        unit=unit,
        queries=[Query(by_hour_p50(histogram), "{{provider}}", instant=True, table=True)],
        thresholds=levels,
        width=24,
        height=9,
        transformations=_hour_matrix(),
    )
    return (
        configure(barchart.Panel(), spec)
        .x_tick_label_rotation(0)
        .show_value(common_model.VisibilityMode.NEVER)
        .legend(legend(table=False))
        .tooltip(tooltip_all())
    )


def _hour_table(
    title: str, description: str, expr: str, unit: str, levels: dash.ThresholdsConfig | None
) -> table.Panel:
    spec = Spec(
        title=title,
        description=description,
        unit=unit,
        queries=[Query(expr, instant=True, table=True)],
        thresholds=levels,
        width=8,
        height=14,
        transformations=_hour_matrix(),
        overrides={"hour\\provider": [prop("displayName", "Hour"), prop("unit", "string")]},
    )
    return configure(table.Panel(), spec).cell_height(common_model.TableCellHeight.SM)


def _fastest_by_hour() -> table.Panel:
    expr = f"bottomk by (hour) (1, {by_hour_p50(q.TTFT_BY_HOUR)})"
    spec = Spec(
        title="Fastest provider by hour of day (p50 TTFT, 7 days)",
        description=(
            "For each hour of the day, the selected provider with the lowest p50 time to first "
            "token over the last 7 days, and that p50."
        ),
        unit=SECONDS,
        queries=[Query(expr, instant=True, table=True)],
        thresholds=lower_is_better(1, 3),
        width=8,
        height=14,
        transformations=[
            transformation("sortBy", {"fields": {}, "sort": [{"field": "hour"}]}),
            transformation(
                "organize",
                {
                    "excludeByName": {"Time": True, "__name__": True, "model": True},
                    "indexByName": {"hour": 0, "provider": 1, "Value": 2},
                    "renameByName": {"hour": "Hour", "provider": "Provider", "Value": "p50 TTFT"},
                },
            ),
        ],
        overrides={
            "Hour": [prop("unit", "string")],
            "Provider": [prop("unit", "string")],
            "p50 TTFT": [prop("custom.cellOptions", {"type": "color-text"})],
        },
    )
    return configure(table.Panel(), spec).cell_height(common_model.TableCellHeight.SM)


def _week_heatmap(
    title: str, description: str, histogram: str, unit: str, scheme: str, reverse: bool
) -> heatmap.Panel:
    expr = q.quantile(0.5, histogram, FILTER, ("provider",), "1h", "increase")
    spec = Spec(
        title=title,
        description=description,
        unit=unit,
        queries=[Query(expr, "{{provider}}", interval="1h")],
        interval="1h",
        time_from=WEEK,
        width=24,
        height=8,
    )
    return (
        configure(heatmap.Panel(), spec)
        .calculate(False)
        .color(
            heatmap.HeatmapColorOptions()
            .mode(heatmap_model.HeatmapColorMode.SCHEME)
            .scheme(scheme)
            .reverse(reverse)
            .fill("dark-orange")
            .scale(heatmap_model.HeatmapColorScale.EXPONENTIAL)
            .exponent(0.5)
            .steps(64)
        )
        .cell_values(heatmap.CellValues().unit(unit))
        .y_axis(heatmap.YAxisConfig().axis_placement(common_model.AxisPlacement.LEFT))
        .cell_gap(1)
        .show_legend()
        .mode(common_model.TooltipDisplayMode.SINGLE)
        .show_value(common_model.VisibilityMode.NEVER)
    )


def build() -> Board:
    board = (
        new_dashboard(
            UID,
            TITLE,
            "Each provider's p50 TTFT and throughput per hour of day over the last 7 days, "
            "and the week as a heatmap.",
            "now-7d",
        )
        .with_variable(
            label_variable(
                "model",
                "Model",
                label_values(q.TTFT_BY_HOUR + "_count", "model"),
                "Canonical model (hour-of-day profiles are per model).",
            )
        )
        .with_variable(
            label_variable(
                "provider",
                "Provider",
                label_values(q.selector(q.TTFT_BY_HOUR + "_count", 'model=~"$model"'), "provider"),
                "Providers probed for the model.",
                multi=True,
                include_all=True,
            )
        )
        .with_row(dash.Row("Hour of day (last 7 days, hours in the exporter's time zone)"))
        .with_panel(
            _bar_chart(
                "p50 TTFT by hour of day (7 days)",
                "histogram_quantile(0.5, sum by (provider, hour, le) (increase("
                "speedkings_time_to_first_token_by_hour_seconds_bucket[7d]))): each "
                "provider's median time to first token for each hour of the day, over the "
                "last 7 days whatever the time picker says. Lower is better.",
                q.TTFT_BY_HOUR,
                SECONDS,
                lower_is_better(1, 3),
            )
        )
        .with_panel(
            _bar_chart(
                "p50 throughput by hour of day (7 days)",
                "Each provider's median output tokens per second for each hour of the day "
                "over the last 7 days (speedkings_output_tokens_per_second_by_hour). "
                "Higher is better.",
                q.THROUGHPUT_BY_HOUR,
                TOKENS_PER_SECOND,
                higher_is_better(30, 100),
            )
        )
        .with_panel(
            _hour_table(
                "p50 TTFT by hour (table)",
                "Same data as the TTFT bar chart: one row per hour of day, one column per "
                "provider.",
                by_hour_p50(q.TTFT_BY_HOUR),
                SECONDS,
                lower_is_better(1, 3),
            )
        )
        .with_panel(
            _hour_table(
                "p50 throughput by hour (table)",
                "Same data as the throughput bar chart: one row per hour of day, one column "
                "per provider.",
                by_hour_p50(q.THROUGHPUT_BY_HOUR),
                TOKENS_PER_SECOND,
                higher_is_better(30, 100),
            )
        )
        .with_panel(_fastest_by_hour())
        .with_panel(
            _hour_table(
                "Successful probes by hour (7 days)",
                "Sample size behind each hour's p50: successful probes per provider and hour "
                "of day over the last 7 days. Few probes make a noisy p50.",
                PROBES_BY_HOUR,
                COUNT,
                thresholds("red", (3, "yellow"), (10, "green")),
            )
            .span(24)
            .height(8)
        )
        .with_row(dash.Row("The week, hour by hour"))
        .with_panel(
            _week_heatmap(
                "p50 TTFT over the week (1 h cells)",
                "Each cell is one provider's p50 time to first token over one hour of the "
                "last 7 days (increase over 1 h). Darker is slower.",
                q.TTFT,
                SECONDS,
                "Oranges",
                False,
            )
        )
        .with_panel(
            _week_heatmap(
                "p50 throughput over the week (1 h cells)",
                "Each cell is one provider's p50 output tokens per second over one hour of the "
                "last 7 days. Darker is faster.",
                q.THROUGHPUT,
                TOKENS_PER_SECOND,
                "Greens",
                False,
            )
        )
    )
    return Board(board)
