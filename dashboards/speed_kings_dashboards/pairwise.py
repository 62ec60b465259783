"""Pairwise comparison: one model, provider A against provider B."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import stat, statetimeline, timeseries
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model

from . import queries as q
from .common import (
    COLOR_A,
    COLOR_B,
    DOLLARS,
    NONE,
    PERCENT,
    RATIO,
    SECONDS,
    TOKENS_PER_SECOND,
    Board,
    Query,
    Spec,
    configure,
    event_annotations,
    fixed_color,
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
    value_mappings,
)

UID = "speedkings-pairwise"
TITLE = "Speed Kings / Pairwise comparison"

A = 'model="$model", provider="$provider_a", prompt=~"$prompt"'
B = 'model="$model", provider="$provider_b", prompt=~"$prompt"'
# Counters without a prompt label (tokens, cost).
A_NO_PROMPT = 'model="$model", provider="$provider_a"'
B_NO_PROMPT = 'model="$model", provider="$provider_b"'
SIDES = (("A", A, A_NO_PROMPT, COLOR_A), ("B", B, B_NO_PROMPT, COLOR_B))
DASHED = prop("custom.lineStyle", {"fill": "dash", "dash": [10, 10]})


def _win(histogram: str, labels_a: str, labels_b: str, op: str, window: str = "1h") -> str:
    """1 when A's p50 beats B's over `window`, 0 when not, nothing when either has no data.

    `>= 0` drops NaN quantiles (no successful probe in the window) before comparing.
    """
    qa = q.quantile(0.5, histogram, labels_a, (), window, "increase")
    qb = q.quantile(0.5, histogram, labels_b, (), window, "increase")
    return f"({qa} >= 0) {op} bool on () ({qb} >= 0)"


def _ratio(q_value: float, histogram: str) -> str:
    """A ÷ B of one quantile; both sides aggregated to no labels, matched with on ()."""
    qa = q.quantile(q_value, histogram, A, ())
    qb = q.quantile(q_value, histogram, B, ())
    return f"{qa} / on () {qb}"


def _side_by_side(
    title: str,
    description: str,
    histogram: str,
    unit: str,
    quantiles: tuple[float, float],
    levels: tuple[float, float],
    higher_better: bool = False,
) -> timeseries.Panel:
    queries = []
    for side, labels, _, _ in SIDES:
        for value in quantiles:
            name = f"p{round(value * 100)}"
            queries.append(
                Query(
                    q.quantile(value, histogram, labels, ("provider",)),
                    f"{side}: {{{{provider}}}} {name}",
                )
            )
    spec = Spec(
        title=title,
        description=description,
        unit=unit,
        queries=queries,
        thresholds=higher_is_better(*levels) if higher_better else lower_is_better(*levels),
        width=12,
    )
    panel = (
        configure(timeseries.Panel(), spec)
        .legend(legend("mean", "lastNotNull"))
        .tooltip(tooltip_all())
        .span_nulls(True)
    )
    # Refs: A p-low, A p-high, B p-low, B p-high. The second quantile is dashed.
    for ref, color, dashed in (
        ("A", COLOR_A, False),
        ("B", COLOR_A, True),
        ("C", COLOR_B, False),
        ("D", COLOR_B, True),
    ):
        panel = panel.override_by_query(ref, [fixed_color(color), *([DASHED] if dashed else [])])
    return panel


def _range_stat(
    title: str, description: str, unit: str, exprs: tuple[str, str], levels: dash.ThresholdsConfig
) -> stat.Panel:
    spec = Spec(
        title=title,
        description=description,
        unit=unit,
        queries=[
            Query(exprs[0], "A: {{provider}}", instant=True),
            Query(exprs[1], "B: {{provider}}", instant=True),
        ],
        thresholds=levels,
        width=6,
        height=5,
    )
    return configure(stat.Panel(), spec).reduce_options(reduce_last())


def _stats() -> list[stat.Panel]:
    def pair(histogram: str, value: float) -> tuple[str, str]:
        return (
            q.quantile(value, histogram, A, ("provider",), q.RANGE, "increase"),
            q.quantile(value, histogram, B, ("provider",), q.RANGE, "increase"),
        )

    return [
        _range_stat(
            "p50 TTFT (time range)",
            "Median time to first token of A and B over the selected time range. Lower wins.",
            SECONDS,
            pair(q.TTFT, 0.5),
            lower_is_better(1, 3),
        ),
        _range_stat(
            "p50 throughput (time range)",
            "Median output tokens per second of A and B over the selected time range. Higher wins.",
            TOKENS_PER_SECOND,
            pair(q.THROUGHPUT, 0.5),
            higher_is_better(30, 100),
        ),
        _range_stat(
            "p50 request duration (time range)",
            "Median time from request to end of stream of A and B over the selected time "
            "range. Lower wins.",
            SECONDS,
            pair(q.DURATION, 0.5),
            lower_is_better(10, 30),
        ),
        _range_stat(
            "Cost per 1M output tokens (time range)",
            "1e6 x increase(speedkings_cost_dollars_total) / "
            'increase(speedkings_tokens_total{direction="output"}) over the selected time '
            "range, for A and B (all prompts). Lower wins.",
            DOLLARS,
            (
                q.cost_per_million_output_tokens(A_NO_PROMPT, ("provider",), q.RANGE),
                q.cost_per_million_output_tokens(B_NO_PROMPT, ("provider",), q.RANGE),
            ),
            thresholds("green", (1, "yellow"), (10, "red")),
        ),
    ]


def _cost_over_time() -> timeseries.Panel:
    spec = Spec(
        title="Cost per 1M output tokens (rolling 1 h): A vs B",
        description=(
            "Dollars per million output tokens over the previous hour, for A and B. "
            "Spend includes the input tokens of the probes. Lower wins."
        ),
        unit=DOLLARS,
        queries=[
            Query(
                q.cost_per_million_output_tokens(labels, ("provider",), "1h"),
                f"{side}: {{{{provider}}}}",
            )
            for side, _, labels, _ in SIDES
        ],
        thresholds=thresholds("green", (1, "yellow"), (10, "red")),
        width=12,
    )
    panel = configure(timeseries.Panel(), spec).legend(legend("mean", "lastNotNull"))
    return (
        panel.tooltip(tooltip_all())
        .span_nulls(True)
        .override_by_query("A", [fixed_color(COLOR_A)])
        .override_by_query("B", [fixed_color(COLOR_B)])
    )


def _ratio_panel(
    title: str, description: str, queries: list[Query], a_better_below_one: bool
) -> timeseries.Panel:
    levels = (
        thresholds("green", (1, "red")) if a_better_below_one else thresholds("red", (1, "green"))
    )
    spec = Spec(
        title=title,
        description=description,
        unit=RATIO,
        queries=queries,
        thresholds=levels,
        width=8,
    )
    return (
        configure(timeseries.Panel(), spec)
        .legend(legend("mean", "lastNotNull"))
        .tooltip(tooltip_all())
        .span_nulls(True)
        .thresholds_style(
            common_builder.GraphThresholdsStyleConfig().mode(
                common_model.GraphThresholdsStyleMode.LINE_AND_AREA
            )
        )
    )


def _ratios() -> list[timeseries.Panel]:
    return [
        _ratio_panel(
            "TTFT ratio A ÷ B",
            "p50 and p95 time to first token of A divided by B's (rate over "
            "$__rate_interval). Below 1 (green): A answers first.",
            [
                Query(_ratio(0.5, q.TTFT), "TTFT p50 A÷B"),
                Query(_ratio(0.95, q.TTFT), "TTFT p95 A÷B"),
            ],
            a_better_below_one=True,
        ),
        _ratio_panel(
            "Throughput ratio A ÷ B",
            "p50 and p5 output tokens per second of A divided by B's. Above 1 (green): A "
            "generates faster.",
            [
                Query(_ratio(0.5, q.THROUGHPUT), "throughput p50 A÷B"),
                Query(_ratio(0.05, q.THROUGHPUT), "throughput p5 A÷B"),
            ],
            a_better_below_one=False,
        ),
        _ratio_panel(
            "Request duration ratio A ÷ B",
            "p50 and p95 request duration (request sent to end of stream) of A divided by "
            "B's. Below 1 (green): A finishes first.",
            [
                Query(_ratio(0.5, q.DURATION), "duration p50 A÷B"),
                Query(_ratio(0.95, q.DURATION), "duration p95 A÷B"),
            ],
            a_better_below_one=True,
        ),
    ]


def _who_won() -> list[statetimeline.Panel | stat.Panel]:
    timeline = configure(
        statetimeline.Panel(),
        Spec(
            title="Who won each hour (A = $provider_a, B = $provider_b)",
            description=(
                "For every hour: A if A's p50 over that hour beat B's, otherwise B. TTFT: "
                "lower wins (quantile_A < bool quantile_B over increase(...[1h])); "
                "throughput: higher wins. Empty when either side had no successful probe "
                "in the hour. The panel steps by 1 h."
            ),
            unit=NONE,
            queries=[
                Query(_win(q.TTFT, A, B, "<"), "TTFT (lower wins)", interval="1h"),
                Query(_win(q.THROUGHPUT, A, B, ">"), "Throughput (higher wins)", interval="1h"),
                Query(_win(q.DURATION, A, B, "<"), "Request duration (lower wins)", interval="1h"),
            ],
            interval="1h",
            width=16,
            height=7,
        ),
    )
    timeline = (
        timeline.mappings(value_mappings({"1": ("A", COLOR_A), "0": ("B", COLOR_B)}))
        .show_value(common_model.VisibilityMode.AUTO)
        .merge_values(True)
        .fill_opacity(80)
        .legend(legend(table=False))
    )
    share = configure(
        stat.Panel(),
        Spec(
            title="Share of the time A led",
            description=(
                "Fraction of the selected time range in which A's p50 over the preceding "
                "hour beat B's (TTFT lower, throughput higher): the average of the 'who won' "
                "signal sampled every $__interval."
            ),
            unit=PERCENT,
            queries=[
                Query(
                    f"avg_over_time(({_win(q.TTFT, A, B, '<')})[{q.RANGE}:$__interval])",
                    "TTFT",
                    instant=True,
                ),
                Query(
                    f"avg_over_time(({_win(q.THROUGHPUT, A, B, '>')})[{q.RANGE}:$__interval])",
                    "Throughput",
                    instant=True,
                ),
            ],
            thresholds=thresholds(COLOR_B, (0.5, COLOR_A)),
            width=8,
            height=7,
        ),
    ).reduce_options(reduce_last())
    return [timeline, share]


def build() -> Board:
    variables = [
        label_variable(
            "model",
            "Model",
            label_values(q.PROBES, "model"),
            "Canonical model to compare (pick one probed by both providers).",
        ),
        label_variable(
            "provider_a",
            "Provider A",
            label_values(q.selector(q.PROBES, 'model="$model"'), "provider"),
            "First provider (blue).",
        ),
        label_variable(
            "provider_b",
            "Provider B",
            label_values(q.selector(q.PROBES, 'model="$model"'), "provider"),
            "Second provider (orange). Sorted the other way so A and B differ by default.",
            sort=model.VariableSort.ALPHABETICAL_DESC,
        ),
        label_variable(
            "prompt",
            "Prompt",
            label_values(
                q.selector(q.PROBES, 'model="$model"', 'provider=~"$provider_a|$provider_b"'),
                "prompt",
            ),
            "Prompt of the comparison (All aggregates every prompt).",
            include_all=True,
        ),
    ]
    board = new_dashboard(
        UID,
        TITLE,
        "One model, provider A against provider B: speed, latency, cost, ratios and who won "
        "each hour.",
        "now-24h",
    )
    for variable in variables:
        board = board.with_variable(variable)
    board = board.with_row(dash.Row("$provider_a (A) vs $provider_b (B) on $model"))
    for panel in _stats():
        board = board.with_panel(panel)
    board = (
        board.with_panel(
            _side_by_side(
                "TTFT p50 / p95: A vs B",
                "Time to first token of A (blue) and B (orange); dashed lines are p95. "
                "Lower is better.",
                q.TTFT,
                SECONDS,
                (0.5, 0.95),
                (1, 3),
            )
        )
        .with_panel(
            _side_by_side(
                "Throughput p50 / p5: A vs B",
                "Output tokens per second while generating, A (blue) and B (orange); dashed "
                "lines are p5 (the slow tail). Higher is better.",
                q.THROUGHPUT,
                TOKENS_PER_SECOND,
                (0.5, 0.05),
                (30, 100),
                higher_better=True,
            )
        )
        .with_panel(
            _side_by_side(
                "Request duration p50 / p95: A vs B",
                "Request sent to end of stream, A (blue) and B (orange); dashed lines are "
                "p95. Lower is better.",
                q.DURATION,
                SECONDS,
                (0.5, 0.95),
                (10, 30),
            )
        )
        .with_panel(_cost_over_time())
        .with_row(dash.Row("A ÷ B"))
    )
    for ratio in _ratios():
        board = board.with_panel(ratio)
    board = board.with_row(dash.Row("Who won"))
    for winner in _who_won():
        board = board.with_panel(winner)
    return Board(board).with_annotations(event_annotations())
