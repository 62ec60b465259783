"""`speed-kings providers` and `speed-kings pricing`."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from speed_kings.catalog_cli import PRICE_FIELDS, pricing_command, providers_command

KEY = "gsk_FAKE_KEY_0123456789_abcdef"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


# Start every invocation from an environment without provider keys, whatever the host has.
CLEAN_ENV = {
    name: None
    for name in (
        "CEREBRAS_API_KEY",
        "GROQ_API_KEY",
        "GROQ_API_KEY_FILE",
        "OPENAI_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "OLLAMA_HOST",
        "CUSTOM_BASE_URL",
        "CUSTOM_API_KEY",
    )
}


def test_providers_json_shows_status_never_the_key(runner: CliRunner) -> None:
    result = runner.invoke(
        providers_command, ["--format", "json"], env={**CLEAN_ENV, "GROQ_API_KEY": KEY}
    )
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["groq"]["status"] == "configured (GROQ_API_KEY)"
    assert rows["groq"]["ready"] is True
    assert rows["groq"]["default_model_id"] == "llama-3.1-8b-instant"
    assert rows["cerebras"]["status"] == "not configured: set CEREBRAS_API_KEY"
    assert rows["cerebras"]["ready"] is False
    assert rows["ollama"]["status"] == "no key needed"
    assert rows["cerebras"]["hardware"] == "WSE"
    assert rows["gemini"]["key_env"] == ["GEMINI_API_KEY", "GOOGLE_API_KEY"]


def test_providers_key_from_file(runner: CliRunner, tmp_path: Path) -> None:
    secret = tmp_path / "groq"
    secret.write_text(KEY + "\n", encoding="utf-8")
    result = runner.invoke(
        providers_command, ["--format", "json"], env={**CLEAN_ENV, "GROQ_API_KEY_FILE": str(secret)}
    )
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["groq"]["status"] == "configured (GROQ_API_KEY_FILE)"


def test_providers_table(runner: CliRunner, tmp_path: Path) -> None:
    env = {**CLEAN_ENV, "GROQ_API_KEY": KEY, "GEMINI_API_KEY_FILE": str(tmp_path / "gone")}
    result = runner.invoke(providers_command, [], env=env)
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    lines = result.output.splitlines()
    assert lines[0] == "Providers (catalog checked 2026-11-22)"
    groq = next(line for line in lines if "│ groq " in line)
    for cell in ("LPU", "https://api.groq.com/openai/v1", "configured (GROQ_API_KEY)"):
        assert cell in groq
    assert "llama-3.1-8b (llama-3.1-8b-instant)" in groq
    gemini = next(line for line in lines if "│ gemini " in line)
    assert f"GEMINI_API_KEY_FILE points to {tmp_path / 'gone'} which cannot be read" in gemini
    # Piped output: one physical line per provider, nothing truncated.
    assert "…" not in result.output


def test_pricing_csv(runner: CliRunner) -> None:
    result = runner.invoke(pricing_command, ["--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert list(rows[0]) == [*PRICE_FIELDS, "notes"]
    groq = next(r for r in rows if (r["provider"], r["model"]) == ("groq", "llama-3.1-8b"))
    assert groq["provider_model_id"] == "llama-3.1-8b-instant"
    assert (groq["input_per_million"], groq["output_per_million"]) == ("0.05", "0.08")
    assert groq["estimate"] == "false"
    assert {r["provider"] for r in rows} >= {"cerebras", "groq", "ollama", "anthropic"}


def test_pricing_json_with_provider_filter(runner: CliRunner) -> None:
    result = runner.invoke(
        pricing_command, ["--format", "json", "--provider", "deepseek", "--provider", "ollama"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {row["provider"] for row in rows} == {"deepseek", "ollama"}
    chat = next(row for row in rows if row["provider_model_id"] == "deepseek-chat")
    assert chat["model"] == "deepseek-v3"
    assert chat["cached_input_per_million"] == 0.028
    assert chat["checked"] == "2025-12-01"
    assert all(row["input_per_million"] == 0 for row in rows if row["provider"] == "ollama")


def test_pricing_table(runner: CliRunner) -> None:
    result = runner.invoke(pricing_command, ["--provider", "openrouter", "--provider", "openai"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "gpt-4.1-mini" in line)
    for cell in ("0.40", "0.10", "1.60", "2025-04-14", "unverified estimate"):
        assert cell in line
    assert "no price: No catalog price: OpenRouter reports" in result.output


def test_pricing_unknown_provider_exits_2(runner: CliRunner) -> None:
    result = runner.invoke(pricing_command, ["--provider", "grok"])
    assert result.exit_code == 2
    assert "Invalid value for '--provider': unknown provider 'grok' (did you mean 'groq'?)" in (
        result.output
    )


def test_other_catalog_file(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "checked": "2026-01-02",
                "providers": {
                    "lab": {
                        "display_name": "Lab vLLM",
                        "base_url": "http://10.0.0.5:8000/v1",
                        "wire": "openai",
                        "hardware": "GPU",
                        "api_key_env": None,
                        "default_model": "llama-3.1-8b",
                        "models": {"llama-3.1-8b": {"id": "meta-llama/Llama-3.1-8B-Instruct"}},
                    }
                },
            }
        ),
        encoding="utf-8",
    )
    result = runner.invoke(providers_command, ["--format", "json", "--catalog", str(path)])
    assert result.exit_code == 0, result.output
    assert [row["name"] for row in json.loads(result.output)] == ["lab"]


def test_broken_catalog_file_is_reported(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("checked: 2026-01-02\nproviders: {}\n", encoding="utf-8")
    result = runner.invoke(pricing_command, ["--catalog", str(path)])
    assert result.exit_code == 1
    assert f"Error: {path}: invalid catalog (1 error):" in result.output
    assert "providers: Dictionary should have at least 1 item" in result.output


def test_module_entry_point_lists_providers(tmp_path: Path) -> None:
    """The real console path, in a subprocess (needs the whole `speed_kings.cli` to import)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GROQ_API_KEY": KEY}
    proc = subprocess.run(
        [sys.executable, "-m", "speed_kings", "providers", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert KEY not in proc.stdout + proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["groq"]["status"] == "configured (GROQ_API_KEY)"
