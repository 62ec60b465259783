"""The exporter config: example files, durations, provider resolution, schedules, demo."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ValidationError

from speed_kings.catalog import load_catalog
from speed_kings.config import (
    DEFAULT_MONTHLY_ALLOWANCE,
    DEMO_KEY,
    DEMO_KEY_ENV,
    MAX_DERIVED_INTERVAL,
    MIN_DERIVED_INTERVAL,
    MONTH_SECONDS,
    Config,
    ConfigError,
    demo_config,
    demo_environ,
    format_loc,
    load_config,
    parse_config,
    parse_listen,
    worst_case_probe_cost,
)
from speed_kings.config_cli import check_config_command
from speed_kings.demo import DEMO_PROVIDERS
from speed_kings.durations import (
    Duration,
    DurationError,
    DurationOrZero,
    format_duration,
    parse_duration,
)
from speed_kings.keys import provider_status
from speed_kings.prompts import PROMPTS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "config").glob("speed-kings*.yaml"))
CATALOG = load_catalog()
FAKE_KEY = "gsk_FAKEKEY_config_test_0123456789"

# Start every CLI invocation without provider keys, whatever the host has.
CLEAN_ENV: dict[str, str | None] = {
    var: None
    for var in [
        *(
            f"{name}{suffix}"
            for e in CATALOG.providers.values()
            for name in e.key_env_names
            for suffix in ("", "_FILE")
        ),
        "OLLAMA_HOST",
        "CUSTOM_BASE_URL",
        "VLLM_API_KEY",
    ]
}


def config_of(**data: Any) -> Config:
    data.setdefault("providers", {"groq": {}})
    data.setdefault(
        "comparisons",
        [
            {
                "name": "c",
                "model": "llama-3.1-8b",
                "providers": ["groq"],
                "schedule": {"interval": 60},
            }
        ],
    )
    return parse_config(data, "test.yaml", catalog=CATALOG)


# --- example files --------------------------------------------------------------------------


def test_examples_exist() -> None:
    names = {path.name for path in EXAMPLES}
    assert {"speed-kings.example.yaml", "speed-kings.minimal.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_config_loads(path: Path) -> None:
    config = load_config(path)
    providers = config.resolved_providers(config.load_catalog(path))
    assert config.comparisons
    for comparison in config.comparisons:
        for name in comparison.providers:
            assert name in providers
        assert config.effective_interval(comparison, 0.01) >= 1


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_config_passes_check_config(path: Path) -> None:
    result = CliRunner().invoke(check_config_command, [str(path)], env=CLEAN_ENV)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{path}: valid\n")
    config = load_config(path)
    for name in config.providers:
        assert name in result.stdout
    for comparison in config.comparisons:
        assert comparison.name in result.stdout
    assert result.stderr == ""


def test_production_example_covers_the_seed_groups() -> None:
    config = load_config(ROOT / "config" / "speed-kings.example.yaml")
    models = {c.name[0]: c.model for c in config.comparisons}
    assert models == {
        "a": "llama-3.1-8b",
        "b": "llama-3.3-70b",
        "c": "glm-4.7",
        "d": "deepseek-v3",
        "e": "kimi-k2.5",
        "f": "llama-3.1-8b",
    }
    group_a = config.comparison("a-llama-8b-hardware")
    assert set(group_a.providers) == {"cerebras", "groq", "sambanova", "fireworks", "together"}
    providers = config.resolved_providers(CATALOG)
    hardware = {providers[name].hardware for name in group_a.providers}
    assert hardware == {"WSE", "LPU", "RDU", "GPU"}
    assert "ollama" in config.comparison("f-local-vs-lpu").providers
    # Its worst case fits its own caps.
    total = 0.0
    for comparison in config.comparisons:
        cost = config.round_cost_worst_case(comparison, providers)
        assert cost is not None, comparison.name
        total += cost * config.rounds_per_month(comparison, cost)
    assert config.budget.global_.monthly is not None
    assert total < config.budget.global_.monthly


def test_check_config_shows_key_status_never_the_key(tmp_path: Path) -> None:
    key_file = tmp_path / "cerebras.key"
    key_file.write_text("csk-FILEKEY-should-not-show\n")
    env = {**CLEAN_ENV, "GROQ_API_KEY": FAKE_KEY, "CEREBRAS_API_KEY_FILE": str(key_file)}
    path = ROOT / "config" / "speed-kings.example.yaml"
    result = CliRunner().invoke(check_config_command, [str(path)], env=env)
    assert result.exit_code == 0, result.output
    assert FAKE_KEY not in result.output
    assert "csk-FILEKEY" not in result.output
    assert "configured (GROQ_API_KEY)" in result.stdout
    assert "configured (CEREBRAS_API_KEY_FILE)" in result.stdout
    assert "not configured: set SAMBANOVA_API_KEY" in result.stdout
    assert "no key needed" in result.stdout  # ollama
    assert "every 15m + up to 1m" in result.stdout
    assert "(budget-derived)" in result.stdout
    assert "$20.00" in result.stdout  # the global monthly cap


def test_check_config_warns_about_unpriced_and_unused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "providers:\n  cerebras: {}\n  groq: {}\n  zai: {}\n"
        "comparisons:\n"
        "  - {name: c8, model: llama-3.1-8b, providers: [cerebras, groq],"
        " schedule: {interval: 1h}}\n"
    )
    result = CliRunner().invoke(check_config_command, [str(path)], env=CLEAN_ENV)
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "c8: cerebras has no price for llama-3.1-8b" in out
    assert "zai: listed under providers but in no comparison" in out
    assert "groq: not configured: set GROQ_API_KEY; its probes will not run" in out
    assert "unknown" in out  # the round's worst case


def test_check_config_warns_when_worst_case_exceeds_a_cap(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "providers:\n  groq: {}\n"
        "comparisons:\n"
        "  - {name: g, model: llama-3.3-70b, providers: [groq], schedule: {interval: 1m}}\n"
        "budget:\n  global: {daily: 0.05}\n  providers: {groq: {monthly: 0.5}}\n"
    )
    result = CliRunner().invoke(check_config_command, [str(path)], env=CLEAN_ENV)
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "/day is over the global daily cap $0.05" in out
    assert "groq: worst case" in out and "/month is over its monthly cap $0.50" in out


def test_check_config_usage_error_is_exit_2() -> None:
    result = CliRunner().invoke(check_config_command, [])
    assert result.exit_code == 2


# --- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30),
        ("15m", 900),
        ("1h", 3600),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("1m30s", 90),
        ("1d2h3m4s5ms", 93784.005),
        ("1.5h", 5400),
        ("90", 90),
        ("2.5", 2.5),
        (" 15m ", 900),
        ("+15m", 900),
        (45, 45),
        (0.25, 0.25),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        "fifteen",
        "15 minutes",
        "15M",
        "m",
        "",
        "-",
        "1h-30m",
        "30m1h",
        "1m1m",
        "1w",
        "1e3s",
        True,
        None,
        [1],
        "inf",
        "nan",
        math.inf,
    ],
)
def test_parse_duration_rejects_garbage(value: object) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(value)
    assert "invalid duration" in info.value.problem
    assert '"30s", "15m"' in str(info.value)  # says what is accepted


@pytest.mark.parametrize("value", [0, "0s", "0", -5, "-5m", "-0.5"])
def test_parse_duration_rejects_zero_and_negative(value: object) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        parse_duration(value)


def test_parse_duration_allow_zero() -> None:
    assert parse_duration("0s", allow_zero=True) == 0
    assert parse_duration(0, allow_zero=True) == 0
    with pytest.raises(ValueError, match="zero or positive"):
        parse_duration("-1s", allow_zero=True)


def test_duration_error_message() -> None:
    with pytest.raises(DurationError) as info:
        parse_duration("fifteen")
    assert str(info.value) == (
        "invalid duration 'fifteen'; use a number and a unit (ms, s, m, h, d), "
        'like "30s", "15m", "1h30m"'
    )


class _Timed(BaseModel):
    every: Duration
    jitter: DurationOrZero = 0.0


def test_duration_pydantic_type() -> None:
    assert _Timed.model_validate({"every": "1h30m", "jitter": "0"}).every == 5400
    with pytest.raises(ValidationError) as info:
        _Timed.model_validate({"every": "soon"})
    error = info.value.errors()[0]
    assert error["type"] == "duration"
    assert error["msg"] == "invalid duration 'soon'"
    assert "ctx" in error and error["ctx"]["fix"].startswith("use a number and a unit")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(900, "15m"), (5400, "1h30m"), (0.5, "500ms"), (90061, "1d1h1m1s"), (1.5, "1.5s")],
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


# --- schema basics --------------------------------------------------------------------------


def test_defaults() -> None:
    config = config_of()
    assert config.listen == "0.0.0.0:9464"
    assert config.listen_address == ("0.0.0.0", 9464)
    assert config.timezone == "UTC"
    assert config.log.format == "auto" and config.log.level == "info"
    assert config.concurrency == 1
    assert config.defaults.max_tokens == 300
    assert config.defaults.timeout == 60
    assert config.defaults.read_timeout == 30
    assert config.defaults.connect_timeout == 10
    assert config.defaults.fresh_connections is True
    assert config.defaults.max_response_bytes == 16 * 1024 * 1024
    assert config.rate_limits.backoff_initial == 30
    assert config.rate_limits.backoff_max == 3600
    assert (config.throttling.factor, config.throttling.window) == (3.0, 20)
    assert config.throttling.min_samples == 5
    assert config.comparisons[0].prompts == ("short",)
    assert config.budget.global_.daily is None and config.budget.global_.monthly is None


def test_config_is_frozen() -> None:
    config = config_of()
    with pytest.raises(ValidationError):
        config.concurrency = 2


def test_durations_in_config_are_seconds() -> None:
    config = config_of(
        defaults={"timeout": "2m", "read_timeout": "1m30s", "connect_timeout": "500ms"},
        rate_limits={"backoff_initial": "10s", "backoff_max": "2h"},
    )
    assert config.defaults.timeout == 120
    assert config.defaults.read_timeout == 90
    assert config.defaults.connect_timeout == 0.5
    assert config.rate_limits.backoff_max == 7200


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("0.0.0.0:9464", ("0.0.0.0", 9464)),
        ("localhost:1", ("localhost", 1)),
        ("[::]:9464", ("::", 9464)),
        ("[::1]:80", ("::1", 80)),
    ],
)
def test_parse_listen(value: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(value) == parsed


@pytest.mark.parametrize("value", ["9464", ":9464", "host:", "host:0", "host:65536", "host:http"])
def test_parse_listen_rejects(value: str) -> None:
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        parse_listen(value)


def test_prompt_text() -> None:
    config = config_of(prompts={"haiku": "Write a haiku about latency."})
    assert config.prompt_text("haiku") == "Write a haiku about latency."
    assert config.prompt_text("short") == PROMPTS["short"]
    with pytest.raises(KeyError):
        config.prompt_text("nope")


def test_state_and_catalog_paths(tmp_path: Path) -> None:
    config_file = tmp_path / "etc" / "sk.yaml"
    config = config_of(catalog="cat.yaml")
    assert config.state_path(config_file) == tmp_path / "etc" / "state"
    assert config.state_path(None) == Path("state")
    assert config.catalog_path(config_file) == tmp_path / "etc" / "cat.yaml"
    absolute = config_of(state_dir=str(tmp_path / "s"))
    assert absolute.state_path(config_file) == tmp_path / "s"
    assert config_of().catalog_path(config_file) is None


def test_catalog_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    catalog_text = (ROOT / "exporter" / "speed_kings" / "catalog.yaml").read_text()
    (tmp_path / "my-catalog.yaml").write_text(catalog_text)
    path = tmp_path / "sk.yaml"
    path.write_text(
        "catalog: my-catalog.yaml\nproviders: {groq: {}}\n"
        "comparisons: [{name: g, model: llama-3.1-8b, providers: [groq]}]\n"
    )
    config = load_config(path)
    assert config.load_catalog(path).names == CATALOG.names


def test_bare_provider_name_means_catalog_entry(tmp_path: Path) -> None:
    path = tmp_path / "sk.yaml"
    path.write_text(
        "providers:\n  groq:\n"
        "comparisons: [{name: g, model: llama-3.1-8b, providers: [groq], "
        "schedule: {cron: '*/15 * * * *'}}]\n"
    )
    config = load_config(path)
    assert config.resolved_providers(CATALOG)["groq"] == CATALOG.get("groq")


@pytest.mark.parametrize(
    ("loc", "text"),
    [
        (("comparisons", 0, "schedule", "interval"), "comparisons[0].schedule.interval"),
        (("providers", "my-vllm", "base_url"), "providers.my-vllm.base_url"),
        (("providers", "groq", "models", "llama-3.1-8b"), 'providers.groq.models["llama-3.1-8b"]'),
        (("budget", "global", "daily"), "budget.global.daily"),
        ((), ""),
    ],
)
def test_format_loc(loc: tuple[int | str, ...], text: str) -> None:
    assert format_loc(loc) == text


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "sk.yaml"
    path.write_text(
        "providers: {groq: {}}\n"
        "comparisons:\n"
        "  - name: a\n    model: llama-3.1-8b\n    providers: [groq]\n"
        "    schedule: &every {interval: 15m, jitter: 1m}\n"
        "  - name: b\n    model: llama-3.3-70b\n    providers: [groq]\n"
        "    schedule: {<<: *every, interval: 30m}\n"
    )
    config = load_config(path)
    schedule = config.comparison("b").schedule
    assert schedule is not None and schedule.interval == 1800 and schedule.jitter == 60


# --- provider resolution --------------------------------------------------------------------


BRIEF_PROVIDERS: dict[str, Any] = {
    "groq": {},
    "cerebras": {"api_key_env": "MY_CEREBRAS_KEY"},
    "my-vllm": {
        "base_url": "http://10.0.0.5:8000/v1",
        "wire": "openai",
        "hardware": "GPU",
        "api_key_env": None,
        "models": {
            "llama-3.1-8b": {
                "id": "meta-llama/Llama-3.1-8B-Instruct",
                "price": {"input": 0, "output": 0, "checked": "2026-11-22", "source": "own hw"},
            }
        },
    },
}


def brief_config() -> Config:
    return config_of(
        providers=BRIEF_PROVIDERS,
        comparisons=[
            {
                "name": "llama-8b-wse-vs-lpu",
                "model": "llama-3.1-8b",
                "providers": ["cerebras", "groq", "my-vllm"],
                "schedule": {"interval": "15m", "jitter": "1m"},
            }
        ],
    )


def test_resolved_catalog_entry_unchanged() -> None:
    resolved = brief_config().resolved_providers(CATALOG)
    assert resolved["groq"] == CATALOG.get("groq")


def test_resolved_override_applied() -> None:
    cerebras = brief_config().resolved_providers(CATALOG)["cerebras"]
    assert cerebras.api_key_env == "MY_CEREBRAS_KEY"
    assert cerebras.base_url == CATALOG.get("cerebras").base_url
    assert cerebras.hardware == "WSE"
    status = provider_status(cerebras, {"MY_CEREBRAS_KEY": FAKE_KEY, "CEREBRAS_API_KEY": "x"})
    assert status.key.value == FAKE_KEY and status.key.source == "MY_CEREBRAS_KEY"


def test_resolved_override_models_merge_by_name() -> None:
    config = config_of(
        providers={
            "cerebras": {
                "models": {
                    "llama-3.1-8b": {
                        "id": "llama3.1-8b",
                        "price": {
                            "input": 0.1,
                            "output": 0.1,
                            "checked": "2025-06-01",
                            "source": "unverified estimate",
                        },
                    },
                    "qwen-3-32b": {"id": "qwen-3-32b"},
                }
            }
        },
        comparisons=[
            {"name": "c", "model": "llama-3.1-8b", "providers": ["cerebras"]}  # derived schedule
        ],
    )
    cerebras = config.resolved_providers(CATALOG)["cerebras"]
    catalog_models = set(CATALOG.get("cerebras").models)
    assert set(cerebras.models) == catalog_models | {"qwen-3-32b"}
    price = cerebras.price("llama-3.1-8b")
    assert price is not None and price.output_per_million == 0.1
    assert cerebras.models["llama-3.3-70b"] == CATALOG.get("cerebras").models["llama-3.3-70b"]


def test_resolved_custom_provider() -> None:
    vllm = brief_config().resolved_providers(CATALOG)["my-vllm"]
    assert vllm.base_url == "http://10.0.0.5:8000/v1"
    assert vllm.wire == "openai"
    assert vllm.hardware == "GPU"
    assert vllm.api_key_env is None and not vllm.needs_key
    assert vllm.display_name == "my-vllm"
    assert vllm.default_model == "llama-3.1-8b"
    assert vllm.model_id("llama-3.1-8b") == "meta-llama/Llama-3.1-8B-Instruct"
    price = vllm.price("llama-3.1-8b")
    assert price is not None and price.is_free
    assert provider_status(vllm, {}).ready


def test_custom_provider_models_derived_from_comparisons() -> None:
    config = config_of(
        providers={"box": {"base_url": "http://box:8080/v1", "wire": "openai"}},
        comparisons=[
            {
                "name": "a",
                "model": "qwen-2.5-7b",
                "providers": ["box"],
                "schedule": {"interval": 60},
            },
            {
                "name": "b",
                "model": "llama-3.1-8b",
                "providers": ["box"],
                "schedule": {"interval": 60},
            },
        ],
    )
    box = config.resolved_providers(CATALOG)["box"]
    assert list(box.models) == ["qwen-2.5-7b", "llama-3.1-8b"]
    assert box.model_id("qwen-2.5-7b") == "qwen-2.5-7b"
    assert box.hardware == "unknown"
    assert box.price("qwen-2.5-7b") is None


def test_raw_model_id_passes_through_silently() -> None:
    config = config_of(
        providers={"groq": {}},
        comparisons=[
            {
                "name": "raw",
                "model": "openai/gpt-oss-120b",
                "providers": ["groq"],
                "schedule": {"interval": "1h"},
            },
        ],
    )
    groq = config.resolved_providers(CATALOG)["groq"]
    assert groq.model_id("openai/gpt-oss-120b") == "openai/gpt-oss-120b"


def test_resolved_providers_with_a_catalog_that_lacks_the_provider() -> None:
    config = brief_config()
    smaller = CATALOG.model_copy(
        update={"providers": {k: v for k, v in CATALOG.providers.items() if k != "cerebras"}}
    )
    with pytest.raises(ConfigError, match=r"providers\.cerebras: 'cerebras' is not in the"):
        config.resolved_providers(smaller)


# --- costs and budget-derived intervals -----------------------------------------------------


def test_worst_case_probe_cost() -> None:
    groq = CATALOG.get("groq")
    cost = worst_case_probe_cost(groq, "llama-3.1-8b", "x" * 400, 300)
    # At most one token per byte: 400 + the 27-byte nonce line "[request <16 hex>]\n",
    # + 64 for the chat template = 491 tokens at $0.05/M in; 300 out at $0.08/M.
    assert cost == pytest.approx((491 * 0.05 + 300 * 0.08) / 1e6)
    # Multi-byte characters can take a token per byte: bytes bound it, not characters.
    wide = worst_case_probe_cost(groq, "llama-3.1-8b", "é" * 200, 300)
    assert wide == cost
    assert worst_case_probe_cost(CATALOG.get("cerebras"), "llama-3.1-8b", "x", 300) is None


def test_round_cost_covers_every_provider_and_prompt() -> None:
    config = config_of(
        providers={"groq": {}, "sambanova": {}},
        comparisons=[
            {
                "name": "c",
                "model": "llama-3.1-8b",
                "providers": ["groq", "sambanova"],
                "prompts": ["short", "long"],
                "max_tokens": 100,
                "schedule": {"interval": 60},
            }
        ],
    )
    providers = config.resolved_providers(CATALOG)
    comparison = config.comparisons[0]
    expected = sum(
        worst_case_probe_cost(providers[p], "llama-3.1-8b", PROMPTS[q], 100) or 0.0
        for p in ("groq", "sambanova")
        for q in ("short", "long")
    )
    assert config.max_tokens_for(comparison) == 100
    assert config.round_cost_worst_case(comparison, providers) == pytest.approx(expected)


def _derived(n: int, **budget: Any) -> Config:
    return config_of(
        providers={"groq": {}},
        comparisons=[
            {"name": f"c{i}", "model": "llama-3.1-8b", "providers": ["groq"]} for i in range(n)
        ],
        budget=budget,
    )


def test_budget_derived_interval_spreads_the_monthly_cap() -> None:
    config = _derived(4, **{"global": {"monthly": 20.0}})
    # $20 over 4 comparisons = $5 each; a $0.01 round fits 500 times in 30 days.
    interval = config.effective_interval(config.comparisons[0], 0.01)
    assert interval == pytest.approx(MONTH_SECONDS * 0.01 / 5.0)
    assert interval == pytest.approx(5184.0)
    assert config.rounds_per_month(config.comparisons[0], 0.01) == pytest.approx(500)


def test_budget_derived_interval_default_allowance() -> None:
    config = _derived(2)
    assert config.monthly_allowance == DEFAULT_MONTHLY_ALLOWANCE == 5.0
    interval = config.effective_interval(config.comparisons[0], 0.001)
    assert interval == pytest.approx(MONTH_SECONDS * 0.001 / 2.5)


def test_budget_derived_interval_uses_the_tighter_of_daily_and_monthly() -> None:
    assert _derived(1, **{"global": {"daily": 0.1}}).monthly_allowance == pytest.approx(3.0)
    both = _derived(1, **{"global": {"daily": 0.1, "monthly": 2.0}})
    assert both.monthly_allowance == 2.0
    # Per-provider caps do not change the allowance; they still apply at run time.
    assert _derived(1, providers={"groq": {"monthly": 0.5}}).monthly_allowance == 5.0


def test_budget_derived_interval_bounds() -> None:
    config = _derived(1, **{"global": {"monthly": 100.0}})
    comparison = config.comparisons[0]
    assert config.effective_interval(comparison, 0.0) == MIN_DERIVED_INTERVAL == 60
    assert config.effective_interval(comparison, 1e-9) == MIN_DERIVED_INTERVAL
    assert config.effective_interval(comparison, 1e6) == MAX_DERIVED_INTERVAL
    zero = _derived(1, **{"global": {"monthly": 0}})
    assert zero.effective_interval(zero.comparisons[0], 0.01) == MAX_DERIVED_INTERVAL
    assert zero.effective_interval(zero.comparisons[0], 0.0) == MIN_DERIVED_INTERVAL


def test_explicit_schedules_win() -> None:
    config = config_of(
        comparisons=[
            {
                "name": "i",
                "model": "llama-3.1-8b",
                "providers": ["groq"],
                "schedule": {"interval": "15m", "jitter": "1m"},
            },
            {
                "name": "hourly",
                "model": "llama-3.1-8b",
                "providers": ["groq"],
                "schedule": {"cron": "0 * * * *"},
            },
            {
                "name": "office",
                "model": "llama-3.1-8b",
                "providers": ["groq"],
                "schedule": {"cron": "0 9-17 * * mon-fri"},
            },
            {
                "name": "monthly",
                "model": "llama-3.1-8b",
                "providers": ["groq"],
                "schedule": {"cron": "0 0 1 * *"},
            },
        ],
        timezone="Europe/Paris",
    )
    by_name = {c.name: c for c in config.comparisons}
    assert config.effective_interval(by_name["i"], 123.0) == 900
    assert config.effective_interval(by_name["hourly"], 1.0) == pytest.approx(3600)
    # 9 firings a weekday, 45 a week.
    assert config.effective_interval(by_name["office"], 1.0) == pytest.approx(7 * 86400 / 45)
    # 12 a year, counted over 52 weeks: about one per 30 days.
    assert config.effective_interval(by_name["monthly"], 1.0) == pytest.approx(
        MONTH_SECONDS * 364 / 30 / 12, rel=0.1
    )


def test_jitter_zero_is_allowed_and_with_cron() -> None:
    config = config_of(
        comparisons=[
            {
                "name": "a",
                "model": "llama-3.1-8b",
                "providers": ["groq"],
                "schedule": {"interval": "1m", "jitter": 0},
            },
            {
                "name": "b",
                "model": "llama-3.1-8b",
                "providers": ["groq"],
                "schedule": {"cron": "*/5 * * * *", "jitter": "30s"},
            },
        ]
    )
    assert config.comparisons[0].schedule is not None
    assert config.comparisons[0].schedule.jitter == 0
    assert config.comparisons[1].schedule is not None
    assert config.comparisons[1].schedule.jitter == 30


# --- demo -----------------------------------------------------------------------------------


def test_demo_config() -> None:
    url = "http://127.0.0.1:8765"
    config = demo_config(url)
    assert isinstance(config, Config)
    providers = config.resolved_providers(CATALOG)
    assert set(providers) == {demo.name for demo in DEMO_PROVIDERS}
    assert all(name.startswith("sim-") for name in providers)
    for demo in DEMO_PROVIDERS:
        entry = providers[demo.name]
        real = CATALOG.get(demo.counterpart)
        assert entry.base_url is not None and entry.base_url.startswith(f"{url}/{demo.profile}")
        assert entry.wire == demo.wire
        assert entry.hardware == real.hardware
        assert entry.model_id(demo.model) == real.model_id(demo.model)
        assert entry.price(demo.model) == real.price(demo.model)
        assert "simulated" in entry.display_name
        status = provider_status(entry, demo_environ({}))
        assert status.ready, demo.name
        if entry.wire != "ollama":
            assert status.key.value == DEMO_KEY and status.key.source == DEMO_KEY_ENV
    assert providers["sim-gemini"].base_url == f"{url}/gemini/v1beta"
    assert providers["sim-ollama"].base_url == f"{url}/ollama"

    pair = config.comparison("sim-cerebras-vs-groq")
    assert pair.providers == ("sim-cerebras", "sim-groq") and pair.model == "llama-3.3-70b"
    covered = {name for c in config.comparisons for name in c.providers}
    assert covered == set(providers)
    for comparison in config.comparisons:
        assert comparison.schedule is not None
        assert comparison.schedule.interval == 10 and comparison.schedule.jitter == 2
        assert config.max_tokens_for(comparison) == 120
        assert config.round_cost_worst_case(comparison, providers) is not None
    assert config.budget.global_.daily == 5.0 and config.budget.global_.monthly == 50.0
    assert config.budget.providers


def test_demo_config_trailing_slash() -> None:
    config = demo_config("http://sim:1/")
    entry = config.resolved_providers(CATALOG)["sim-groq"]
    assert entry.base_url == "http://sim:1/groq/v1"
