"""Every Prometheus family the exporter serves, on a registry passed in (never the global one).

Series are keyed by `provider`, `model` (canonical) and `prompt`; all bounded by the config.
The `*_by_hour` histograms add `hour` (00-23 in the configured time zone) so that PromQL
alone answers "p50 per hour of day over the last 7 days":
    histogram_quantile(0.5, sum by (provider, hour, le)
        (increase(speedkings_time_to_first_token_by_hour_seconds_bucket[7d])))
They drop `prompt` to keep cardinality at providers x models x 24 x buckets.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry

from speed_kings.exposition import Exposition
from speed_kings.result import Outcome, ProbeResult, RateLimitInfo

SERIES = ("provider", "model", "prompt")

# TTFT and time to headers: 25 ms to 60 s, dense where real providers sit (0.1-2 s).
LATENCY_BUCKETS = (
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    7.5,
    10.0,
    15.0,
    20.0,
    30.0,
    60.0,
)
DURATION_BUCKETS = (
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    3.0,
    5.0,
    7.5,
    10.0,
    15.0,
    20.0,
    30.0,
    45.0,
    60.0,
    90.0,
    120.0,
    180.0,
    300.0,
)
# Output speed: 5 to 5,000 tokens/s (local models to wafer-scale), roughly log-spaced.
THROUGHPUT_BUCKETS = (
    5.0,
    10.0,
    20.0,
    30.0,
    40.0,
    50.0,
    75.0,
    100.0,
    150.0,
    200.0,
    300.0,
    400.0,
    500.0,
    750.0,
    1000.0,
    1500.0,
    2000.0,
    3000.0,
    5000.0,
    7500.0,
)
TPOT_BUCKETS = tuple(sorted(1 / b for b in THROUGHPUT_BUCKETS))
COST_BUCKETS = (
    1e-6,
    2.5e-6,
    5e-6,
    1e-5,
    2.5e-5,
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    1e-3,
    2.5e-3,
    5e-3,
    0.01,
    0.025,
    0.05,
    0.1,
)

ALL_OUTCOMES = tuple(o.value for o in Outcome)
TOKEN_DIRECTIONS = ("input", "output", "reasoning", "cached_input")


class Metrics:
    def __init__(self, registry: CollectorRegistry, *, version: str) -> None:
        self._exposition = Exposition()
        families = self._exposition
        self.ttft = families.histogram(
            "speedkings_time_to_first_token_seconds",
            "Time from sending the request to the first chunk of generated text "
            "(reasoning included).",
            SERIES,
            buckets=LATENCY_BUCKETS,
        )
        self.ttfat = families.histogram(
            "speedkings_time_to_first_answer_token_seconds",
            "Time from sending the request to the first non-reasoning text.",
            SERIES,
            buckets=LATENCY_BUCKETS,
        )
        self.headers = families.histogram(
            "speedkings_time_to_headers_seconds",
            "Time from sending the request to the response status line and headers.",
            SERIES,
            buckets=LATENCY_BUCKETS,
        )
        self.duration = families.histogram(
            "speedkings_request_duration_seconds",
            "Time from sending the request to the end of the stream.",
            SERIES,
            buckets=DURATION_BUCKETS,
        )
        self.tps = families.histogram(
            "speedkings_output_tokens_per_second",
            "Output speed after the first chunk: (output tokens - 1) / generation time.",
            SERIES,
            buckets=THROUGHPUT_BUCKETS,
        )
        self.tpot = families.histogram(
            "speedkings_time_per_output_token_seconds",
            "Generation time per output token after the first.",
            SERIES,
            buckets=TPOT_BUCKETS,
        )
        self.cost = families.histogram(
            "speedkings_probe_cost_dollars",
            "Cost of one probe in US dollars.",
            SERIES,
            buckets=COST_BUCKETS,
        )
        self.ttft_by_hour = families.histogram(
            "speedkings_time_to_first_token_by_hour_seconds",
            "Time to first token by hour of day (configured time zone), for daily profiles.",
            ("provider", "model", "hour"),
            buckets=LATENCY_BUCKETS,
        )
        self.tps_by_hour = families.histogram(
            "speedkings_output_tokens_per_second_by_hour",
            "Output speed by hour of day (configured time zone), for daily profiles.",
            ("provider", "model", "hour"),
            buckets=THROUGHPUT_BUCKETS,
        )
        self.probes = families.counter(
            "speedkings_probes",
            "Probes by outcome (skipped ones included).",
            (*SERIES, "outcome"),
        )
        self.tokens = families.counter(
            "speedkings_tokens",
            "Tokens by direction (input, output, reasoning, cached_input).",
            ("provider", "model", "direction"),
        )
        self.cost_total = families.counter(
            "speedkings_cost_dollars",
            "Money spent on probes, US dollars.",
            ("provider", "model"),
        )
        self.rate_limit_events = families.counter(
            "speedkings_rate_limit_events",
            "Rate-limit (429) and overload (503/529) responses.",
            ("provider", "kind"),
        )
        self.throttling_events = families.counter(
            "speedkings_throttling_events",
            "Probes far off their series' rolling baseline (signal: ttft or throughput).",
            (*SERIES, "signal"),
        )
        self.success = families.gauge(
            "speedkings_probe_success",
            "1 if the last probe of the series succeeded, else 0.",
            SERIES,
        )
        self.last_timestamp = families.gauge(
            "speedkings_last_probe_timestamp_seconds",
            "When the last probe of the series finished, Unix seconds.",
            SERIES,
        )
        self.last_ttft = families.gauge(
            "speedkings_last_time_to_first_token_seconds",
            "Time to first token of the last successful probe.",
            SERIES,
        )
        self.last_tps = families.gauge(
            "speedkings_last_output_tokens_per_second",
            "Output speed of the last successful probe.",
            SERIES,
        )
        self.rate_limit_remaining = families.gauge(
            "speedkings_rate_limit_remaining",
            "Remaining quota reported by the provider's headers, by kind "
            "(requests, tokens, requests_day, ...).",
            ("provider", "kind"),
        )
        self.cooldown_until = families.gauge(
            "speedkings_provider_cooldown_until_timestamp_seconds",
            "End of the provider's rate-limit cooldown, Unix seconds (0: none).",
            ("provider",),
        )
        self.budget_limit = families.gauge(
            "speedkings_budget_limit_dollars",
            "Budget cap, US dollars.",
            ("scope", "period"),
        )
        self.budget_spent = families.gauge(
            "speedkings_budget_spent_dollars",
            "Spent (and reserved) in the current day or month, US dollars.",
            ("scope", "period"),
        )
        self.model_load = families.gauge(
            "speedkings_model_load_seconds",
            "Model load time before the last probe (local providers); never part of TTFT.",
            ("provider", "model"),
        )
        self.provider_info = families.gauge(
            "speedkings_provider_info",
            "Provider facts as labels; always 1.",
            ("provider", "hardware", "wire", "simulated"),
        )
        self.build_info = families.gauge(
            "speedkings_build_info",
            "Build facts as labels; always 1.",
            ("version", "python"),
        )
        self.reload_ok = families.gauge(
            "speedkings_config_last_reload_successful",
            "1 if the last configuration (re)load succeeded.",
        )
        self.reload_time = families.gauge(
            "speedkings_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully, Unix seconds.",
        )
        self.ledger_up = families.gauge(
            "speedkings_budget_ledger_up",
            "1 while the budget ledger (SQLite in state_dir) opens and takes writes; 0 "
            "while it cannot (disk full, read-only): paid providers are skipped meanwhile.",
        )
        self.build_info.labels(version, platform.python_version()).set(1)
        # The registry sees the same families (tests and tools read it); the exporter
        # serves `render()`, which only re-renders what changed since the last scrape.
        registry.register(self._exposition.collector())
        self._declared: set[tuple[str, str, str]] = set()
        self._series_families = (
            self.ttft,
            self.ttfat,
            self.headers,
            self.duration,
            self.tps,
            self.tpot,
            self.cost,
            self.probes,
            self.throttling_events,
            self.success,
            self.last_timestamp,
            self.last_ttft,
            self.last_tps,
        )
        self._pair_families = (
            self.ttft_by_hour,
            self.tps_by_hour,
            self.tokens,
            self.cost_total,
            self.model_load,
        )
        self._provider_families = (
            self.provider_info,
            self.cooldown_until,
            self.rate_limit_events,
            self.rate_limit_remaining,
        )

    def declare(
        self,
        provider: str,
        model: str,
        prompts: Iterable[str],
        hardware: str,
        wire: str,
        simulated: bool,
    ) -> None:
        """Pre-initialises the series of a configured combination, so absent data shows as
        zero counts instead of missing series."""
        self._declared.update((provider, model, prompt) for prompt in prompts)
        self.provider_info.remove_by_labels({"provider": provider})  # facts may have changed
        self.provider_info.labels(provider, hardware, wire, str(simulated).lower()).set(1)
        self.cooldown_until.labels(provider)
        for kind in ("rate_limited", "overloaded"):
            self.rate_limit_events.labels(provider, kind)
        for direction in TOKEN_DIRECTIONS:
            self.tokens.labels(provider, model, direction)
        self.cost_total.labels(provider, model)
        for prompt in prompts:
            labels = (provider, model, prompt)
            for family in (
                self.ttft,
                self.ttfat,
                self.headers,
                self.duration,
                self.tps,
                self.tpot,
                self.cost,
            ):
                family.labels(*labels)
            for outcome in ALL_OUTCOMES:
                self.probes.labels(*labels, outcome)
            for signal in ("ttft", "throughput"):
                self.throttling_events.labels(*labels, signal)

    def retain(self, series: set[tuple[str, str, str]]) -> None:
        """After a reload: drops every series of combinations no longer configured, so a
        removed comparison does not linger with a frozen timestamp (and a stale alert)."""
        pairs = {(p, m) for p, m, _ in series}
        providers = {p for p, _, _ in series}
        for provider, model, prompt in self._declared - series:
            labels = {"provider": provider, "model": model, "prompt": prompt}
            for family in self._series_families:
                family.remove_by_labels(labels)
            if (provider, model) not in pairs:
                for family in self._pair_families:
                    family.remove_by_labels({"provider": provider, "model": model})
            if provider not in providers:
                for family in self._provider_families:
                    family.remove_by_labels({"provider": provider})
        self._declared &= series

    def observe(self, result: ProbeResult, *, hour: int, finished_at: float) -> None:
        labels = (result.provider, result.model, result.prompt)
        self.probes.labels(*labels, result.outcome.value).inc()
        if result.outcome in (Outcome.SKIPPED_BUDGET, Outcome.SKIPPED_COOLDOWN):
            return
        ok = result.outcome is Outcome.SUCCESS
        self.success.labels(*labels).set(1 if ok else 0)
        self.last_timestamp.labels(*labels).set(finished_at)
        if result.outcome in (Outcome.RATE_LIMITED, Outcome.OVERLOADED):
            self.rate_limit_events.labels(result.provider, result.outcome.value).inc()
        self._rate_limits(result.provider, result.rate_limit)
        if result.model_load_seconds is not None:
            self.model_load.labels(result.provider, result.model).set(result.model_load_seconds)
        tokens = result.tokens
        for direction, count in zip(
            TOKEN_DIRECTIONS,
            (tokens.input, tokens.output, tokens.reasoning, tokens.cached_input),
            strict=True,
        ):
            if count:
                self.tokens.labels(result.provider, result.model, direction).inc(count)
        if result.cost_usd:
            self.cost_total.labels(result.provider, result.model).inc(result.cost_usd)
        if not ok:
            return
        if result.cost_usd is not None:
            self.cost.labels(*labels).observe(result.cost_usd)
        hour_label = f"{hour:02d}"
        for family, value in (
            (self.headers, result.time_to_headers),
            (self.ttfat, result.time_to_first_answer_token),
            (self.duration, result.request_duration),
            (self.tpot, result.time_per_output_token),
        ):
            if value is not None:
                family.labels(*labels).observe(value)
        if result.time_to_first_token is not None:
            self.ttft.labels(*labels).observe(result.time_to_first_token)
            self.last_ttft.labels(*labels).set(result.time_to_first_token)
            self.ttft_by_hour.labels(result.provider, result.model, hour_label).observe(
                result.time_to_first_token
            )
        tps = result.output_tokens_per_second
        if tps is not None:
            self.tps.labels(*labels).observe(tps)
            self.last_tps.labels(*labels).set(tps)
            self.tps_by_hour.labels(result.provider, result.model, hour_label).observe(tps)

    def _rate_limits(self, provider: str, info: RateLimitInfo) -> None:
        for kind, value in info.remaining.items():
            self.rate_limit_remaining.labels(provider, kind).set(value)

    def throttled(self, provider: str, model: str, prompt: str, signal: str) -> None:
        self.throttling_events.labels(provider, model, prompt, signal).inc()

    def cooldown(self, provider: str, until: float | None) -> None:
        self.cooldown_until.labels(provider).set(until or 0)

    def budget(self, scope: str, period: str, limit: float | None, spent: float) -> None:
        if limit is not None:
            self.budget_limit.labels(scope, period).set(limit)
        self.budget_spent.labels(scope, period).set(spent)

    def render(self) -> bytes:
        """The text exposition of every family, as `generate_latest(registry)` prints it."""
        return self._exposition.render()

    def render_chunks(self) -> Iterator[bytes]:
        """`render()` in pieces, each rendered when asked for (see `Exposition.chunks`)."""
        return self._exposition.chunks()

    def reloaded(self, ok: bool, when: float) -> None:
        self.reload_ok.set(1 if ok else 0)
        if ok:
            self.reload_time.set(when)
