"""Shared pieces of the Speed Kings dashboards: datasource, variables, links, annotations,
panel factories and the deterministic JSON rendering."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from . import queries as q

TAG = "speed-kings"
DATASOURCE_VAR = "datasource"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${" + DATASOURCE_VAR + "}")
GRAFANA_DATASOURCE = model.DataSourceRef(type_val="grafana", uid="-- Grafana --")
REFRESH = "1m"

# Units (Grafana unit ids or custom `suffix:` units).
SECONDS = "s"
TOKENS_PER_SECOND = "suffix: tok/s"
DOLLARS = "currencyUSD"
PERCENT = "percentunit"
RATIO = "suffix:x"
COUNT = "short"
TIMESTAMP = "dateTimeAsIso"
NONE = "none"

# Colours used consistently: A is blue, B is orange on the pairwise dashboard.
COLOR_A = "blue"
COLOR_B = "orange"


# --- queries -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    """One Prometheus target of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False
    heatmap: bool = False
    interval: str = ""
    hidden: bool = False


def target(query: Query, ref_id: str) -> prometheus.Dataquery:
    built = prometheus.Dataquery().expr(query.expr).ref_id(ref_id).datasource(DATASOURCE)
    built = built.legend_format(query.legend or "__auto")
    built = built.instant() if query.instant else built.range()
    if query.table:
        built = built.format(PromQueryFormat.TABLE)
    elif query.heatmap:
        built = built.format(PromQueryFormat.HEATMAP)
    else:
        built = built.format(PromQueryFormat.TIME_SERIES)
    if query.interval:
        built = built.interval(query.interval)
    if query.hidden:
        built = built.hide(True)
    return built


def ref_id(index: int) -> str:
    """A, B, ... Z, AA, AB ... like Grafana's editor."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


# --- thresholds, mappings, overrides -------------------------------------------------------
def thresholds(base: str, *steps: tuple[float, str]) -> dash.ThresholdsConfig:
    """Absolute thresholds: `base` colour below the first step, then each (value, colour)."""
    levels = [model.Threshold(value=None, color=base)]
    levels += [model.Threshold(value=value, color=color) for value, color in steps]
    return dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(levels)


def lower_is_better(warn: float, bad: float) -> dash.ThresholdsConfig:
    return thresholds("green", (warn, "yellow"), (bad, "red"))


def higher_is_better(warn: float, good: float) -> dash.ThresholdsConfig:
    return thresholds("red", (warn, "yellow"), (good, "green"))


def value_mappings(mapping: dict[str, tuple[str, str]]) -> list[model.ValueMapping]:
    """{"1": ("text", "colour")} value-to-text mappings."""
    options = {
        value: model.ValueMappingResult(text=text, color=color, index=index)
        for index, (value, (text, color)) in enumerate(mapping.items())
    }
    return [model.ValueMap(options=options)]


def prop(name: str, value: object) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val=name, value=value)


def fixed_color(color: str) -> model.DynamicConfigValue:
    return prop("color", {"mode": "fixed", "fixedColor": color})


def transformation(kind: str, options: dict[str, Any]) -> model.DataTransformerConfig:
    return model.DataTransformerConfig(id_val=kind, options=options)


def hide_label_columns(*extra: str) -> model.DataTransformerConfig:
    """organize: drop the columns a Prometheus table always has but nobody reads."""
    hidden = {name: True for name in ("Time", "__name__", "job", "instance", *extra)}
    return transformation("organize", {"excludeByName": hidden})


# --- panels --------------------------------------------------------------------------------
class PanelBuilder(Protocol):
    """What every panel builder of the SDK offers (timeseries, stat, table, ...)."""

    def title(self, title: str) -> Self: ...
    def description(self, description: str) -> Self: ...
    def datasource(self, datasource: model.DataSourceRef) -> Self: ...
    def with_target(self, target: cogbuilder.Builder[cogvariants.Dataquery]) -> Self: ...
    def unit(self, unit: str) -> Self: ...
    def span(self, w: int) -> Self: ...
    def height(self, h: int) -> Self: ...
    def interval(self, interval: str) -> Self: ...
    def time_from(self, time_from: str) -> Self: ...
    def thresholds(self, thresholds: cogbuilder.Builder[model.ThresholdsConfig]) -> Self: ...
    def with_transformation(self, transformation: model.DataTransformerConfig) -> Self: ...
    def override_by_name(self, name: str, properties: list[model.DynamicConfigValue]) -> Self: ...
    def build(self) -> model.Panel: ...


P = TypeVar("P", bound=PanelBuilder)


@dataclass
class Spec:
    """The parts every panel has: what it shows, how wide and high, its unit and queries."""

    title: str
    description: str
    unit: str
    queries: Sequence[Query]
    width: int = 12
    height: int = 8
    thresholds: dash.ThresholdsConfig | None = None
    interval: str = ""
    time_from: str = ""
    transformations: Sequence[model.DataTransformerConfig] = ()
    overrides: dict[str, list[model.DynamicConfigValue]] = field(default_factory=dict)


def configure(panel: P, spec: Spec) -> P:
    """Apply a Spec to an SDK panel builder."""
    panel = (
        panel.title(spec.title)
        .description(spec.description)
        .datasource(DATASOURCE)
        .unit(spec.unit)
        .span(spec.width)
        .height(spec.height)
    )
    for index, query in enumerate(spec.queries):
        panel = panel.with_target(target(query, ref_id(index)))
    if spec.thresholds is not None:
        panel = panel.thresholds(spec.thresholds)
    if spec.interval:
        panel = panel.interval(spec.interval)
    if spec.time_from:
        panel = panel.time_from(spec.time_from)
    for step in spec.transformations:
        panel = panel.with_transformation(step)
    for name, properties in spec.overrides.items():
        panel = panel.override_by_name(name, properties)
    return panel


def legend(*calcs: str, table: bool = True) -> common_builder.VizLegendOptions:
    mode = common_model.LegendDisplayMode.TABLE if table else common_model.LegendDisplayMode.LIST
    return (
        common_builder.VizLegendOptions()
        .show_legend(True)
        .display_mode(mode)
        .placement(common_model.LegendPlacement.BOTTOM)
        .calcs(list(calcs))
    )


def tooltip_all() -> common_builder.VizTooltipOptions:
    return (
        common_builder.VizTooltipOptions()
        .mode(common_model.TooltipDisplayMode.MULTI)
        .sort(common_model.SortOrder.DESCENDING)
    )


def reduce_last() -> common_builder.ReduceDataOptions:
    return common_builder.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


# --- variables -----------------------------------------------------------------------------
def datasource_variable() -> dash.DatasourceVariable:
    return (
        dash.DatasourceVariable(DATASOURCE_VAR)
        .label("Data source")
        .type("prometheus")
        .description("Prometheus that scrapes the Speed Kings exporter(s).")
    )


def label_variable(
    name: str,
    label: str,
    query: str,
    description: str,
    *,
    multi: bool = False,
    include_all: bool = False,
    sort: model.VariableSort = model.VariableSort.ALPHABETICAL_ASC,
) -> dash.QueryVariable:
    """A Prometheus `label_values(metric, label)` variable, refreshed with the time range."""
    variable = (
        dash.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(sort)
        .multi(multi)
        .include_all(include_all)
    )
    if include_all:
        # Start on "All" rather than on the first value.
        everything = model.VariableOption(
            selected=True,
            text=["All"] if multi else "All",
            value=["$__all"] if multi else "$__all",
        )
        variable = variable.all_value(".*").current(everything)
    return variable


def label_values(metric: str, label: str) -> str:
    return f"label_values({metric}, {label})"


# --- dashboard-level pieces ----------------------------------------------------------------
def links() -> list[cogbuilder.Builder[model.DashboardLink]]:
    """One dropdown with every Speed Kings dashboard (by tag), keeping time and variables."""
    return [
        dash.DashboardLink("Speed Kings")
        .type(model.DashboardLinkType.DASHBOARDS)
        .tags([TAG])
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
        .tooltip("Other Speed Kings dashboards")
        .icon("external link")
    ]


@dataclass(frozen=True)
class Annotation:
    """A Prometheus annotation query (the SDK knows `expr` only; the rest is patched in)."""

    name: str
    expr: str
    color: str
    title: str
    text: str
    tags: str
    step: str = "1m"


def builtin_annotation() -> dash.AnnotationQuery:
    return (
        dash.AnnotationQuery()
        .name("Annotations & Alerts")
        .datasource(GRAFANA_DATASOURCE)
        .built_in(1)
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .type("dashboard")
    )


def annotation(spec: Annotation) -> dash.AnnotationQuery:
    return (
        dash.AnnotationQuery()
        .name(spec.name)
        .datasource(DATASOURCE)
        .enable(True)
        .hide(False)
        .icon_color(spec.color)
        .expr(spec.expr)
    )


def event_annotations() -> list[Annotation]:
    """Rate-limit / overload and throttling events of every provider as annotations.

    Not filtered by the dashboard's provider variables on purpose: an event elsewhere in
    the fleet (a shared upstream, a budget-wide skip) is context too, and the annotation's
    title and tags name the provider.
    """
    # changes() over 2m evaluated every 1m: every increment falls into at least one window.
    rate_limits = f"sum by (provider, kind) (changes({q.RATE_LIMIT_EVENTS}[2m])) > 0"
    throttling = f"sum by (provider, model, signal) (changes({q.THROTTLING_EVENTS}[2m])) > 0"
    return [
        Annotation(
            name="Rate limited / overloaded",
            expr=rate_limits,
            color="red",
            title="{{kind}}: {{provider}}",
            text="The provider answered 429 (rate_limited) or 503/529 (overloaded).",
            tags="provider,kind",
        ),
        Annotation(
            name="Throttling",
            expr=throttling,
            color="orange",
            title="throttled ({{signal}}): {{provider}} / {{model}}",
            text="A probe's TTFT or throughput was far off the series' rolling baseline.",
            tags="provider,model,signal",
        ),
    ]


@dataclass
class Board:
    """A dashboard under construction plus what the SDK cannot express."""

    builder: dash.Dashboard
    annotations: list[Annotation] = field(default_factory=list)

    def with_annotations(self, annotations: Iterable[Annotation]) -> Board:
        for spec in annotations:
            self.annotations.append(spec)
            self.builder = self.builder.annotation(annotation(spec))
        return self


def new_dashboard(uid: str, title: str, description: str, time_from: str) -> dash.Dashboard:
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .timezone("browser")
        .refresh(REFRESH)
        .time(time_from, "now")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .links(links())
        .annotation(builtin_annotation())
        .with_variable(datasource_variable())
    )


# --- rendering -----------------------------------------------------------------------------
def _number_panels(built: model.Dashboard) -> None:
    """Deterministic panel ids: 1, 2, ... in layout order (rows included)."""
    next_id = 1
    for panel in built.panels or []:
        panel.id_val = next_id
        next_id += 1
        if isinstance(panel, model.RowPanel):
            for inner in panel.panels:
                inner.id_val = next_id
                next_id += 1


def to_dict(board: Board) -> dict[str, Any]:
    built = board.builder.build()
    _number_panels(built)
    data: dict[str, Any] = json.loads(json.dumps(built, cls=JSONEncoder))
    extras = {spec.name: spec for spec in board.annotations}
    for item in data["annotations"]["list"]:
        spec = extras.get(item["name"])
        if spec is None:
            continue
        item.update(
            {
                "step": spec.step,
                "titleFormat": spec.title,
                "textFormat": spec.text,
                "tagKeys": spec.tags,
                "useValueForTime": False,
            }
        )
    return data


def render(board: Board) -> str:
    """Stable JSON: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(to_dict(board), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
