"""PromQL building blocks shared by the dashboards.

Every expression is plain PromQL for Prometheus >= 2.42 with Grafana's template variables
(`$model`, `$provider`, `$provider_a`, `$provider_b`, `$prompt`, `$__rate_interval`,
`$__range`, `$__interval`) left in place; Grafana substitutes them at query time.
Metric names and labels follow docs/metrics.md.
"""

from __future__ import annotations

# Histogram families (classic buckets).
TTFT = "speedkings_time_to_first_token_seconds"
TTFAT = "speedkings_time_to_first_answer_token_seconds"
HEADERS = "speedkings_time_to_headers_seconds"
DURATION = "speedkings_request_duration_seconds"
THROUGHPUT = "speedkings_output_tokens_per_second"
TPOT = "speedkings_time_per_output_token_seconds"
PROBE_COST = "speedkings_probe_cost_dollars"
TTFT_BY_HOUR = "speedkings_time_to_first_token_by_hour_seconds"
THROUGHPUT_BY_HOUR = "speedkings_output_tokens_per_second_by_hour"

# Counters.
PROBES = "speedkings_probes_total"
TOKENS = "speedkings_tokens_total"
COST = "speedkings_cost_dollars_total"
RATE_LIMIT_EVENTS = "speedkings_rate_limit_events_total"
THROTTLING_EVENTS = "speedkings_throttling_events_total"

# Gauges.
PROBE_SUCCESS = "speedkings_probe_success"
LAST_PROBE_TS = "speedkings_last_probe_timestamp_seconds"
LAST_TTFT = "speedkings_last_time_to_first_token_seconds"
LAST_THROUGHPUT = "speedkings_last_output_tokens_per_second"
RATE_LIMIT_REMAINING = "speedkings_rate_limit_remaining"
COOLDOWN_UNTIL = "speedkings_provider_cooldown_until_timestamp_seconds"
BUDGET_LIMIT = "speedkings_budget_limit_dollars"
BUDGET_SPENT = "speedkings_budget_spent_dollars"
MODEL_LOAD = "speedkings_model_load_seconds"
PROVIDER_INFO = "speedkings_provider_info"

# Outcomes that are not attempts (the probe never ran); excluded from success rates.
NOT_ATTEMPTED = 'outcome!~"skipped_.*"'

RATE_INTERVAL = "$__rate_interval"
RANGE = "$__range"


def matchers(*parts: str) -> str:
    """Join label matchers, dropping empty ones: matchers('a="1"', "", 'b=~"x"')."""
    return ", ".join(part for part in parts if part)


def selector(metric: str, *parts: str) -> str:
    """`metric{matchers}` (or the bare metric when there are none)."""
    joined = matchers(*parts)
    return f"{metric}{{{joined}}}" if joined else metric


def total(*labels: str) -> str:
    """`sum by (a, b)`, or plain `sum` when no label is given (one series in all)."""
    return f"sum by ({', '.join(labels)})" if labels else "sum"


def quantile(
    q: float,
    histogram: str,
    labels: str,
    group: tuple[str, ...],
    window: str = RATE_INTERVAL,
    func: str = "rate",
) -> str:
    """histogram_quantile over a classic histogram, aggregated by `group` (plus `le`)."""
    inner = f"{func}({selector(histogram + '_bucket', labels)}[{window}])"
    return f"histogram_quantile({q}, {total(*group, 'le')} ({inner}))"


def increase(metric: str, labels: str, group: tuple[str, ...], window: str) -> str:
    """sum by (group) (increase(metric{labels}[window]))."""
    return f"{total(*group)} (increase({selector(metric, labels)}[{window}]))"


def success_ratio(labels: str, group: tuple[str, ...], window: str) -> str:
    """Successful probes / attempted probes (skipped_budget and skipped_cooldown excluded)."""
    ok = increase(PROBES, matchers(labels, 'outcome="success"'), group, window)
    attempted = increase(PROBES, matchers(labels, NOT_ATTEMPTED), group, window)
    return f"{ok} / {attempted}"


def cost_per_million_output_tokens(labels: str, group: tuple[str, ...], window: str) -> str:
    """Dollars per 1M output tokens: 1e6 * spend / output tokens over the window."""
    spend = increase(COST, labels, group, window)
    tokens = increase(TOKENS, matchers(labels, 'direction="output"'), group, window)
    return f"1e6 * {spend} / {tokens}"


def with_hardware(expr: str) -> str:
    """Join provider_info's hardware, wire and simulated labels onto a per-provider series.

    `group by` collapses duplicates (several exporters probing the same provider) so the
    many-to-one match never becomes many-to-many.
    """
    info = f"group by (provider, hardware, wire, simulated) ({PROVIDER_INFO})"
    return f"({expr}) * on (provider) group_left (hardware, wire, simulated) {info}"
