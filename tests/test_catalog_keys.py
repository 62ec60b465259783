"""API keys from env vars and `*_FILE` files, and the provider status built on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from speed_kings.catalog import Catalog, load_catalog
from speed_kings.keys import KeyLookup, provider_key, provider_status, resolve_api_key

KEY = "gsk_0123456789_abcdef_SECRET"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _secret(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "groq_key"
    path.write_text(text, encoding="utf-8")
    return path


def test_key_from_env() -> None:
    found = resolve_api_key(["GROQ_API_KEY"], {"GROQ_API_KEY": KEY})
    assert (found.value, found.source, found.problem) == (KEY, "GROQ_API_KEY", None)
    assert found.found


def test_key_from_file_is_stripped(tmp_path: Path) -> None:
    path = _secret(tmp_path, f"\n  {KEY}  \n")
    found = resolve_api_key(["GROQ_API_KEY"], {"GROQ_API_KEY_FILE": str(path)})
    assert (found.value, found.source, found.problem) == (KEY, "GROQ_API_KEY_FILE", None)


def test_plain_variable_wins_over_file(tmp_path: Path) -> None:
    path = _secret(tmp_path, "from-the-file")
    env = {"GROQ_API_KEY": KEY, "GROQ_API_KEY_FILE": str(path)}
    found = resolve_api_key(["GROQ_API_KEY"], env)
    assert (found.value, found.source) == (KEY, "GROQ_API_KEY")


def test_empty_variable_falls_back_to_file(tmp_path: Path) -> None:
    path = _secret(tmp_path, KEY)
    env = {"GROQ_API_KEY": "  ", "GROQ_API_KEY_FILE": str(path)}
    assert resolve_api_key(["GROQ_API_KEY"], env).source == "GROQ_API_KEY_FILE"


def test_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    found = resolve_api_key(["GROQ_API_KEY"], {"GROQ_API_KEY_FILE": str(missing)})
    assert found.value is None and found.source is None
    assert found.problem == (
        f"GROQ_API_KEY_FILE points to {missing} which cannot be read: No such file or directory"
    )


def test_directory_is_a_problem(tmp_path: Path) -> None:
    found = resolve_api_key(["GROQ_API_KEY"], {"GROQ_API_KEY_FILE": str(tmp_path)})
    assert found.problem == (
        f"GROQ_API_KEY_FILE points to {tmp_path} which cannot be read: Is a directory"
    )


def test_empty_file_is_a_problem(tmp_path: Path) -> None:
    path = _secret(tmp_path, " \n")
    found = resolve_api_key(["GROQ_API_KEY"], {"GROQ_API_KEY_FILE": str(path)})
    assert found.problem == (
        f"GROQ_API_KEY_FILE points to {path} which cannot be read: the file is empty"
    )


@pytest.mark.parametrize("content", [b"\xffsecret-bytes\xfe", b"two words-secret"])
def test_bad_file_content_is_never_quoted(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "key"
    path.write_bytes(content)
    found = resolve_api_key(["GROQ_API_KEY"], {"GROQ_API_KEY_FILE": str(path)})
    assert found.value is None
    assert found.problem is not None and found.problem.startswith("GROQ_API_KEY_FILE points to")
    assert "secret" not in found.problem and "xff" not in found.problem


def test_nothing_set() -> None:
    assert resolve_api_key(["GROQ_API_KEY"], {}) == KeyLookup()
    assert not KeyLookup().found


def test_gemini_falls_back_to_google_api_key(catalog: Catalog) -> None:
    gemini = catalog.get("gemini")
    found = provider_key(gemini, {"GOOGLE_API_KEY": KEY})
    assert (found.value, found.source) == (KEY, "GOOGLE_API_KEY")
    both = provider_key(gemini, {"GOOGLE_API_KEY": "other", "GEMINI_API_KEY": KEY})
    assert (both.value, both.source) == (KEY, "GEMINI_API_KEY")


def test_gemini_file_beats_the_fallback_variable(catalog: Catalog, tmp_path: Path) -> None:
    path = _secret(tmp_path, KEY)
    env = {"GEMINI_API_KEY_FILE": str(path), "GOOGLE_API_KEY": "other"}
    assert provider_key(catalog.get("gemini"), env).source == "GEMINI_API_KEY_FILE"


def test_repr_and_str_hide_the_key() -> None:
    found = KeyLookup(value=KEY, source="GROQ_API_KEY")
    for text in (repr(found), str(found), f"{found}", f"{found!r}"):
        assert KEY not in text
        assert "GROQ_API_KEY" in text


def test_ollama_needs_no_key(catalog: Catalog) -> None:
    assert provider_key(catalog.get("ollama"), {"OLLAMA_API_KEY": "x"}) == KeyLookup()


@pytest.mark.parametrize(
    ("provider", "env", "ready", "text"),
    [
        ("groq", {"GROQ_API_KEY": KEY}, True, "configured (GROQ_API_KEY)"),
        ("groq", {}, False, "not configured: set GROQ_API_KEY"),
        ("gemini", {}, False, "not configured: set GEMINI_API_KEY or GOOGLE_API_KEY"),
        ("ollama", {}, True, "no key needed"),
        ("custom", {}, False, "not configured: set CUSTOM_BASE_URL or base_url in the config"),
        (
            "custom",
            {"CUSTOM_BASE_URL": "http://h:8000/v1"},
            True,
            "no key (CUSTOM_API_KEY optional)",
        ),
        (
            "custom",
            {"CUSTOM_BASE_URL": "http://h:8000/v1", "CUSTOM_API_KEY": KEY},
            True,
            "configured (CUSTOM_API_KEY)",
        ),
    ],
)
def test_provider_status(
    catalog: Catalog, provider: str, env: dict[str, str], ready: bool, text: str
) -> None:
    status = provider_status(catalog.get(provider), env)
    assert (status.ready, status.text) == (ready, text)
    assert KEY not in repr(status)


def test_provider_status_reports_a_file_problem(catalog: Catalog, tmp_path: Path) -> None:
    env = {"GROQ_API_KEY_FILE": str(tmp_path / "gone")}
    status = provider_status(catalog.get("groq"), env)
    assert not status.ready
    assert status.text.startswith("GROQ_API_KEY_FILE points to ")
