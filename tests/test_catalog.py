"""The provider catalog: the packaged data, lookups, and errors for a broken file."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from speed_kings.catalog import (
    HARDWARE_CLASSES,
    Catalog,
    CatalogError,
    ProviderEntry,
    load_catalog,
)
from speed_kings.catalog_cli import render_markdown
from speed_kings.pricing import Price
from speed_kings.wire import WIRE_NAMES

SPEC_PROVIDERS = (
    "cerebras",
    "groq",
    "sambanova",
    "fireworks",
    "together",
    "deepseek",
    "zai",
    "moonshot",
    "openrouter",
    "openai",
    "mistral",
    "anthropic",
    "gemini",
    "ollama",
    "custom",
)
SELF_HOSTED = ("ollama", "custom")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


# --- the packaged catalog ------------------------------------------------------------------


def test_every_spec_provider_is_present_with_a_valid_wire(catalog: Catalog) -> None:
    assert set(SPEC_PROVIDERS) <= set(catalog.names)
    for name in SPEC_PROVIDERS:
        entry = catalog.get(name)
        assert entry.wire in WIRE_NAMES
        assert entry.hardware in HARDWARE_CLASSES
        assert entry.default_model in entry.models


@pytest.mark.parametrize(
    ("provider", "canonical", "model_id"),
    [
        ("cerebras", "llama-3.1-8b", "llama3.1-8b"),
        ("groq", "llama-3.1-8b", "llama-3.1-8b-instant"),
        ("groq", "llama-3.3-70b", "llama-3.3-70b-versatile"),
        ("fireworks", "llama-3.3-70b", "accounts/fireworks/models/llama-v3p3-70b-instruct"),
        ("deepseek", "deepseek-v3", "deepseek-chat"),
        ("zai", "glm-4.7", "glm-4.7"),
        ("moonshot", "kimi-k2.5", "kimi-k2.5"),
        ("ollama", "llama-3.1-8b", "llama3.1:8b"),
    ],
)
def test_canonical_model_mapping(
    catalog: Catalog, provider: str, canonical: str, model_id: str
) -> None:
    entry = catalog.get(provider)
    assert entry.model_id(canonical) == model_id
    assert entry.canonical_for(model_id) == canonical


def test_hardware_classes_of_the_seed(catalog: Catalog) -> None:
    expected = {
        "cerebras": "WSE",
        "groq": "LPU",
        "sambanova": "RDU",
        "gemini": "TPU",
        "openrouter": "aggregator",
        "ollama": "local",
        "openai": "GPU",
    }
    assert {name: catalog.get(name).hardware for name in expected} == expected


def test_base_urls_follow_the_wire_convention(catalog: Catalog) -> None:
    assert catalog.get("groq").base_url == "https://api.groq.com/openai/v1"
    assert catalog.get("deepseek").base_url == "https://api.deepseek.com"
    assert catalog.get("zai").base_url == "https://api.z.ai/api/paas/v4"
    assert catalog.get("anthropic").base_url == "https://api.anthropic.com/v1"
    assert catalog.get("gemini").base_url == "https://generativelanguage.googleapis.com/v1beta"
    assert catalog.get("ollama").base_url == "http://localhost:11434"
    assert catalog.get("custom").base_url is None


def test_key_env_names(catalog: Catalog) -> None:
    assert catalog.get("groq").key_env_names == ("GROQ_API_KEY",)
    assert catalog.get("gemini").key_env_names == ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    assert catalog.get("ollama").key_env_names == ()
    custom = catalog.get("custom")
    assert custom.key_env_names == ("CUSTOM_API_KEY",)
    assert not custom.needs_key


def test_priced_models_have_positive_prices_with_dates_and_sources(catalog: Catalog) -> None:
    priced = 0
    for name, entry in catalog.providers.items():
        if name in SELF_HOSTED:
            continue
        for canonical, model in entry.models.items():
            price = entry.price(canonical)
            if model.price is None:
                # No invented prices: an unpriced model says why.
                assert price is None
                assert model.notes, f"{name}/{canonical} has no price and no note"
                continue
            priced += 1
            assert isinstance(price, Price)
            assert price.input_per_million > 0
            assert price.output_per_million > 0
            assert price.cached_input_per_million is None or (
                0 < price.cached_input_per_million <= price.input_per_million
            )
            assert price.checked is not None and price.checked <= catalog.checked
            assert price.source
            if model.price.is_estimate:
                assert model.notes, f"{name}/{canonical}: an estimate must say where it is from"
    assert priced >= 20


def test_reference_prices(catalog: Catalog) -> None:
    groq = catalog.get("groq").price("llama-3.1-8b")
    assert groq is not None
    assert (groq.input_per_million, groq.output_per_million) == (0.05, 0.08)
    assert groq.source is not None and "estimate" not in groq.source
    deepseek = catalog.get("deepseek").price("deepseek-v3")
    assert deepseek is not None
    assert deepseek.cached_input_per_million == 0.028


def test_estimates_are_marked(catalog: Catalog) -> None:
    for name, canonical in [("openai", "gpt-4.1-mini"), ("cerebras", "llama-3.3-70b")]:
        model = catalog.get(name).models[canonical]
        assert model.price is not None and model.price.is_estimate
        assert model.price.source == "unverified estimate"


def test_openrouter_has_no_catalog_price(catalog: Catalog) -> None:
    # Pass-through pricing: the cost comes from usage.cost in the stream.
    assert catalog.get("openrouter").price("llama-3.3-70b") is None


@pytest.mark.parametrize("name", SELF_HOSTED)
def test_self_hosted_models_are_free(catalog: Catalog, name: str) -> None:
    entry = catalog.get(name)
    for canonical in entry.models:
        price = entry.price(canonical)
        assert price is not None and price.is_free
    # Any model the user names is free too.
    unlisted = entry.price("qwen2.5:0.5b")
    assert unlisted is not None and unlisted.is_free


def test_unknown_model_passes_through(catalog: Catalog) -> None:
    groq = catalog.get("groq")
    assert groq.model_id("openai/gpt-oss-120b") == "openai/gpt-oss-120b"
    assert groq.canonical_for("openai/gpt-oss-120b") == "openai/gpt-oss-120b"
    assert groq.price("openai/gpt-oss-120b") is None


def test_price_by_raw_provider_id(catalog: Catalog) -> None:
    groq = catalog.get("groq")
    assert groq.price("llama-3.1-8b-instant") == groq.price("llama-3.1-8b")


def test_unknown_provider_suggests_a_close_match(catalog: Catalog) -> None:
    with pytest.raises(KeyError) as info:
        catalog.get("grok")
    message = str(info.value)
    assert "unknown provider 'grok' (did you mean 'groq'?)" in message
    assert "known providers: cerebras, groq," in message
    assert message == info.value.args[0]


def test_unknown_provider_without_close_match(catalog: Catalog) -> None:
    with pytest.raises(KeyError, match="unknown provider 'zzzz'; known providers: "):
        catalog.get("zzzz")


def test_base_url_override(catalog: Catalog) -> None:
    ollama = catalog.get("ollama")
    assert ollama.resolve_base_url({}) == "http://localhost:11434"
    assert ollama.resolve_base_url({"OLLAMA_HOST": "gpu-box"}) == "http://gpu-box:11434"
    assert ollama.resolve_base_url({"OLLAMA_HOST": "gpu-box:8080"}) == "http://gpu-box:8080"
    assert ollama.resolve_base_url({"OLLAMA_HOST": "https://o.example/"}) == "https://o.example"
    custom = catalog.get("custom")
    assert custom.resolve_base_url({}) is None
    env = {"CUSTOM_BASE_URL": "http://localhost:8000/v1"}
    assert custom.resolve_base_url(env) == "http://localhost:8000/v1"


def test_catalog_is_immutable(catalog: Catalog) -> None:
    with pytest.raises(ValueError, match="frozen"):
        catalog.get("groq").wire = "ollama"


def test_docs_match_the_catalog(catalog: Catalog) -> None:
    doc = (REPO / "docs" / "providers.md").read_text(encoding="utf-8")
    assert doc == render_markdown(catalog), (
        "docs/providers.md is stale: run "
        "`.venv/bin/python -m speed_kings.catalog_cli > docs/providers.md`"
    )


# --- broken catalogs -----------------------------------------------------------------------

VALID: dict[str, Any] = {
    "checked": "2026-11-22",
    "providers": {
        "groq": {
            "display_name": "Groq",
            "base_url": "https://api.groq.com/openai/v1",
            "wire": "openai",
            "hardware": "LPU",
            "api_key_env": "GROQ_API_KEY",
            "default_model": "llama-3.1-8b",
            "models": {
                "llama-3.1-8b": {
                    "id": "llama-3.1-8b-instant",
                    "price": {
                        "input": 0.05,
                        "output": 0.08,
                        "checked": "2025-01-01",
                        "source": "test",
                    },
                }
            },
        }
    },
}


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _error(tmp_path: Path, data: dict[str, Any]) -> str:
    path = _write(tmp_path, data)
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid catalog")
    return message


def _groq(data: dict[str, Any]) -> dict[str, Any]:
    groq: dict[str, Any] = data["providers"]["groq"]
    return groq


def test_the_minimal_catalog_is_valid(tmp_path: Path) -> None:
    catalog = load_catalog(_write(tmp_path, VALID))
    assert isinstance(catalog.get("groq"), ProviderEntry)


def test_unknown_key_is_named(tmp_path: Path) -> None:
    data = copy.deepcopy(VALID)
    _groq(data)["colour"] = "orange"
    assert "  providers.groq.colour: unknown key (check its spelling and indentation)" in (
        _error(tmp_path, data)
    )


def test_bad_wire_lists_the_known_ones(tmp_path: Path) -> None:
    data = copy.deepcopy(VALID)
    _groq(data)["wire"] = "grpc"
    assert (
        "providers.groq.wire: unknown wire 'grpc'; expected one of openai, ollama, anthropic, "
        "gemini"
    ) in _error(tmp_path, data)


def test_default_model_must_be_a_listed_model(tmp_path: Path) -> None:
    data = copy.deepcopy(VALID)
    _groq(data)["default_model"] = "llama-9b"
    assert (
        "providers.groq.default_model: 'llama-9b' is not one of this provider's models; "
        "expected one of llama-3.1-8b"
    ) in _error(tmp_path, data)


def test_negative_price(tmp_path: Path) -> None:
    data = copy.deepcopy(VALID)
    _groq(data)["models"]["llama-3.1-8b"]["price"]["output"] = -0.08
    assert (
        "providers.groq.models.llama-3.1-8b.price.output: "
        "Input should be greater than or equal to 0 (got -0.08)"
    ) in _error(tmp_path, data)


def test_several_errors_are_reported_together(tmp_path: Path) -> None:
    data = copy.deepcopy(VALID)
    _groq(data)["hardware"] = "FPGA"
    del _groq(data)["display_name"]
    _groq(data)["models"]["llama-3.1-8b"]["price"]["checked"] = "last week"
    message = _error(tmp_path, data)
    assert "(3 errors)" in message
    assert "providers.groq.hardware: Input should be 'WSE', 'LPU'" in message
    assert "providers.groq.display_name: required key is missing" in message
    assert "providers.groq.models.llama-3.1-8b.price.checked:" in message


def test_base_url_must_be_the_part_before_the_wire_path(tmp_path: Path) -> None:
    data = copy.deepcopy(VALID)
    _groq(data)["base_url"] = "https://api.groq.com/openai/v1/"
    assert "providers.groq.base_url: 'https://api.groq.com/openai/v1/' must not end with '/'" in (
        _error(tmp_path, data)
    )


def test_null_base_url_needs_an_env_override(tmp_path: Path) -> None:
    data = copy.deepcopy(VALID)
    _groq(data)["base_url"] = None
    assert "providers.groq.base_url: is null, so base_url_env must name the variable" in (
        _error(tmp_path, data)
    )


def test_duplicate_provider_model_ids(tmp_path: Path) -> None:
    data = copy.deepcopy(VALID)
    _groq(data)["models"]["llama-8b"] = {"id": "llama-3.1-8b-instant"}
    assert (
        "providers.groq.models: provider model id 'llama-3.1-8b-instant' is used by both "
        "'llama-3.1-8b' and 'llama-8b'"
    ) in _error(tmp_path, data)


def test_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("providers: [unclosed\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"catalog\.yaml: not valid YAML"):
        load_catalog(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert str(info.value) == f"{path}: cannot read the catalog: No such file or directory"
