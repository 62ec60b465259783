"""The metric families are a public contract: names, types, labels, and promtool-clean."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from speed_kings.metrics import Metrics
from speed_kings.result import Outcome, ProbeResult, RateLimitInfo, TokenUsage

CONTRACT = {
    "speedkings_time_to_first_token_seconds": "histogram",
    "speedkings_time_to_headers_seconds": "histogram",
    "speedkings_request_duration_seconds": "histogram",
    "speedkings_output_tokens_per_second": "histogram",
    "speedkings_time_per_output_token_seconds": "histogram",
    "speedkings_probe_cost_dollars": "histogram",
    "speedkings_probes": "counter",
    "speedkings_tokens": "counter",
    "speedkings_cost_dollars": "counter",
    "speedkings_rate_limit_events": "counter",
    "speedkings_throttling_events": "counter",
    "speedkings_probe_success": "gauge",
    "speedkings_last_probe_timestamp_seconds": "gauge",
    "speedkings_last_time_to_first_token_seconds": "gauge",
    "speedkings_last_output_tokens_per_second": "gauge",
    "speedkings_rate_limit_remaining": "gauge",
    "speedkings_provider_cooldown_until_timestamp_seconds": "gauge",
    "speedkings_budget_limit_dollars": "gauge",
    "speedkings_budget_spent_dollars": "gauge",
    "speedkings_model_load_seconds": "gauge",
    "speedkings_provider_info": "gauge",
    "speedkings_build_info": "gauge",
}


def result(outcome: Outcome = Outcome.SUCCESS, **kw: object) -> ProbeResult:
    base: dict[str, object] = {
        "time_to_first_token": 0.2,
        "time_to_first_answer_token": 0.3,
        "time_to_headers": 0.1,
        "time_to_last_token": 1.2,
        "request_duration": 1.25,
        "tokens": TokenUsage(12, 301, 40, 2, "reported"),
        "cost_usd": 0.0004,
        "rate_limit": RateLimitInfo(remaining={"requests": 99.0, "tokens": 5000.0}),
    }
    base.update(kw)
    return ProbeResult(
        "groq",
        "llama-3.1-8b",
        "llama-3.1-8b-instant",
        "short",
        "openai",
        "n",
        0.0,
        outcome=outcome,
        **base,
    )  # type: ignore[arg-type]


@pytest.fixture
def metrics() -> tuple[Metrics, CollectorRegistry]:
    registry = CollectorRegistry()
    m = Metrics(registry, version="9.9.9")
    m.declare("groq", "llama-3.1-8b", ["short"], "LPU", "openai", simulated=False)
    return m, registry


def families(registry: CollectorRegistry) -> dict[str, str]:
    text = generate_latest(registry).decode()
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_every_contract_family_is_served_with_its_type(
    metrics: tuple[Metrics, CollectorRegistry],
) -> None:
    _, registry = metrics
    served = families(registry)
    for name, kind in CONTRACT.items():
        assert served.get(name) == kind, name


def test_declared_series_exist_before_any_probe(metrics: tuple[Metrics, CollectorRegistry]) -> None:
    _, registry = metrics
    labels = {"provider": "groq", "model": "llama-3.1-8b", "prompt": "short"}
    for outcome in Outcome:
        assert sample(registry, "speedkings_probes_total", **labels, outcome=outcome.value) == 0
    assert sample(registry, "speedkings_time_to_first_token_seconds_count", **labels) == 0
    assert (
        sample(
            registry,
            "speedkings_provider_info",
            provider="groq",
            hardware="LPU",
            wire="openai",
            simulated="false",
        )
        == 1
    )


def test_success_fills_histograms_counters_gauges_and_hour(
    metrics: tuple[Metrics, CollectorRegistry],
) -> None:
    m, registry = metrics
    m.observe(result(), hour=7, finished_at=1_800_000_000.0)
    labels = {"provider": "groq", "model": "llama-3.1-8b", "prompt": "short"}
    assert sample(registry, "speedkings_probes_total", **labels, outcome="success") == 1
    assert sample(
        registry, "speedkings_time_to_first_token_seconds_sum", **labels
    ) == pytest.approx(0.2)
    assert sample(registry, "speedkings_output_tokens_per_second_sum", **labels) == pytest.approx(
        300.0
    )
    assert sample(registry, "speedkings_probe_success", **labels) == 1
    assert sample(registry, "speedkings_last_probe_timestamp_seconds", **labels) == 1_800_000_000
    assert (
        sample(
            registry,
            "speedkings_tokens_total",
            provider="groq",
            model="llama-3.1-8b",
            direction="output",
        )
        == 301
    )
    assert sample(
        registry, "speedkings_cost_dollars_total", provider="groq", model="llama-3.1-8b"
    ) == pytest.approx(0.0004)
    assert (
        sample(registry, "speedkings_rate_limit_remaining", provider="groq", kind="tokens") == 5000
    )
    assert (
        sample(
            registry,
            "speedkings_time_to_first_token_by_hour_seconds_count",
            provider="groq",
            model="llama-3.1-8b",
            hour="07",
        )
        == 1
    )


def test_failures_and_skips(metrics: tuple[Metrics, CollectorRegistry]) -> None:
    m, registry = metrics
    labels = {"provider": "groq", "model": "llama-3.1-8b", "prompt": "short"}
    m.observe(result(), hour=1, finished_at=1.0)
    m.observe(result(Outcome.SKIPPED_BUDGET), hour=1, finished_at=2.0)
    assert sample(registry, "speedkings_probe_success", **labels) == 1  # a skip is no probe
    m.observe(
        result(Outcome.RATE_LIMITED, time_to_first_token=None, tokens=TokenUsage(), cost_usd=None),
        hour=1,
        finished_at=3.0,
    )
    assert sample(registry, "speedkings_probe_success", **labels) == 0
    assert (
        sample(registry, "speedkings_rate_limit_events_total", provider="groq", kind="rate_limited")
        == 1
    )
    assert sample(registry, "speedkings_time_to_first_token_seconds_count", **labels) == 1
    assert sample(registry, "speedkings_probes_total", **labels, outcome="skipped_budget") == 1


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (Debian package prometheus)"
)
def test_exposition_passes_promtool_check_metrics(
    metrics: tuple[Metrics, CollectorRegistry],
) -> None:
    m, registry = metrics
    m.observe(result(), hour=23, finished_at=5.0)
    m.budget("global", "day", 1.0, 0.25)
    m.throttled("groq", "llama-3.1-8b", "short", "ttft")
    m.cooldown("groq", 10.0)
    m.reloaded(True, 5.0)
    done = subprocess.run(
        ["promtool", "check", "metrics"],
        input=generate_latest(registry),
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_retain_drops_series_no_longer_configured(
    metrics: tuple[Metrics, CollectorRegistry],
) -> None:
    m, registry = metrics
    m.declare("groq", "llama-3.1-8b", ["long"], "LPU", "openai", simulated=False)
    m.declare("cerebras", "llama-3.1-8b", ["short"], "WSE", "openai", simulated=False)
    m.observe(result(), hour=1, finished_at=1.0)
    m.retain({("groq", "llama-3.1-8b", "long")})
    gone = {"provider": "groq", "model": "llama-3.1-8b", "prompt": "short"}
    assert sample(registry, "speedkings_probes_total", **gone, outcome="success") is None
    assert sample(registry, "speedkings_last_probe_timestamp_seconds", **gone) is None
    kept = {"provider": "groq", "model": "llama-3.1-8b", "prompt": "long"}
    assert sample(registry, "speedkings_probes_total", **kept, outcome="success") == 0
    # groq/llama-3.1-8b is still configured (prompt long): its pair series stay.
    assert (
        sample(
            registry,
            "speedkings_tokens_total",
            provider="groq",
            model="llama-3.1-8b",
            direction="output",
        )
        == 301
    )
    # cerebras is gone entirely.
    assert (
        sample(
            registry,
            "speedkings_provider_info",
            provider="cerebras",
            hardware="WSE",
            wire="openai",
            simulated="false",
        )
        is None
    )
    assert (
        sample(
            registry, "speedkings_provider_cooldown_until_timestamp_seconds", provider="cerebras"
        )
        is None
    )
