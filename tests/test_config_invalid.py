"""Every invalid config gets its exact message: one file per error case.

Each `tests/configs/invalid/NAME.yaml` sits beside `NAME.expected`, the full ConfigError
text with placeholders: `{file}` (the config path as given), `{dir}` (its folder) and
`{catalog_names}` (the catalog's providers, so adding one to the catalog breaks nothing).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from speed_kings.catalog import load_catalog
from speed_kings.config import ConfigError, load_config, parse_config
from speed_kings.config_cli import EXIT_INVALID, check_config_command

INVALID = Path(__file__).parent / "configs" / "invalid"
CASES = sorted(path.stem for path in INVALID.glob("*.yaml"))


def expected_message(path: Path) -> str:
    text = path.with_suffix(".expected").read_text(encoding="utf-8").rstrip("\n")
    return (
        text.replace("{file}", str(path))
        .replace("{dir}", str(path.parent))
        .replace("{catalog_names}", ", ".join(load_catalog().names))
    )


def test_enough_cases_each_with_expected_message() -> None:
    assert len(CASES) >= 15
    for name in CASES:
        assert (INVALID / f"{name}.expected").is_file(), name
    assert sorted(p.stem for p in INVALID.glob("*.expected")) == CASES


@pytest.mark.parametrize("name", CASES)
def test_invalid_config_message(name: str) -> None:
    path = INVALID / f"{name}.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == expected_message(path)
    # One line per problem, each naming the file.
    for line in str(info.value).splitlines():
        assert line.startswith(f"{path}: ")
    assert len(info.value.problems) == len(str(info.value).splitlines())


@pytest.mark.parametrize(
    "name", ["bad_duration", "provider_not_listed", "several_problems", "yaml_syntax"]
)
def test_check_config_invalid_exits_1_with_exact_message(name: str) -> None:
    path = INVALID / f"{name}.yaml"
    result = CliRunner().invoke(check_config_command, [str(path)])
    assert result.exit_code == EXIT_INVALID == 1
    assert result.stderr == expected_message(path) + "\n"
    assert result.stdout == ""


def test_the_briefs_example_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text((INVALID / "bad_duration.yaml").read_text())
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: comparisons[0].schedule.interval: invalid duration 'fifteen'; fix: use a "
        'number and a unit (ms, s, m, h, d), like "30s", "15m", "1h30m"'
    )


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: config file not found; fix: check the path, or start from "
        "config/speed-kings.example.yaml"
    )
    result = CliRunner().invoke(check_config_command, [str(path)])
    assert result.exit_code == 1
    assert result.stderr == str(info.value) + "\n"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value) == f"{tmp_path}: cannot read the config file: Is a directory"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"timezone: \xe9t\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: cannot read the config file: not UTF-8"


def test_problems_from_parse_config_name_the_source() -> None:
    data = {"providers": {"groq": {}}, "comparisons": [], "concurrency": 0}
    with pytest.raises(ConfigError) as info:
        parse_config(data, "inline")
    assert str(info.value) == "inline: concurrency: must be at least 1, got 0"
    assert info.value.source == "inline"
    assert info.value.problems[0].path == "concurrency"


def test_cross_key_problems_are_all_reported_at_once() -> None:
    data = {
        "providers": {"groq": {}},
        "comparisons": [
            {"name": "a", "model": "llama-3.1-8b", "providers": ["groq", "cerebras"]},
            {"name": "a", "model": "llama-3.1-8b", "providers": ["groq"], "prompts": ["x"]},
        ],
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, "f.yaml")
    assert [p.path for p in info.value.problems] == [
        "comparisons[0].providers[1]",
        "comparisons[1].name",
        "comparisons[1].prompts[0]",
    ]


def test_override_breaking_a_catalog_entry_is_reported_at_its_key() -> None:
    data = {
        "providers": {"groq": {"default_model": "no-such-model"}},
        "comparisons": [
            {
                "name": "a",
                "model": "llama-3.1-8b",
                "providers": ["groq"],
                "schedule": {"interval": 60},
            }
        ],
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, "f.yaml")
    message = str(info.value)
    assert message.startswith("f.yaml: providers.groq.default_model: 'no-such-model' is not one")


def test_custom_provider_without_models_or_usable_comparison() -> None:
    data = {
        "providers": {"box": {"base_url": "http://box:8000/v1", "wire": "openai"}},
        "comparisons": [
            {
                "name": "a",
                "model": "Org/Raw-Model",
                "providers": ["box"],
                "schedule": {"interval": "1m"},
            }
        ],
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, "f.yaml")
    assert str(info.value) == (
        "f.yaml: providers.box.models: a custom provider needs at least one model; fix: add "
        "models: {CANONICAL_NAME: {id: SERVER_MODEL_ID}}, or use the provider in a comparison "
        "with a canonical model name"
    )


def test_a_key_pasted_where_a_variable_name_goes_is_never_echoed() -> None:
    path = INVALID / "api_key_in_env_field.yaml"
    assert "gsk_PASTED_KEY" in path.read_text()
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "PASTED_KEY" not in str(info.value)
    result = CliRunner().invoke(check_config_command, [str(path)])
    assert result.exit_code == 1
    assert "PASTED_KEY" not in result.output


def test_an_unknown_key_holding_a_secret_is_never_echoed() -> None:
    data = {
        "providers": {"groq": {"api_key": "gsk_SECRETVALUE"}},
        "comparisons": [{"name": "g", "model": "llama-3.1-8b", "providers": ["groq"]}],
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, "f.yaml")
    assert "SECRETVALUE" not in str(info.value)
    assert str(info.value).startswith("f.yaml: providers.groq.api_key: unknown key 'api_key'")
