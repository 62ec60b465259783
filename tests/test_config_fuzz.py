"""Config loaders under hostile input (hypothesis): random YAML documents, random data, and
mutations of the shipped example configs, as text and as structure.

Whatever the input, `load_config` either returns a `Config` or raises `ConfigError` whose
text has the documented shape: one line per problem, each `FILE: KEY.PATH: PROBLEM[; fix:
FIX]` (`FILE: PROBLEM` for the whole file). Never another exception, never a traceback, and,
once redacted as `check-config` and the daemon's reload do, never an environment secret
pasted anywhere into the file (nor either half of its random part, even when a long value
is clipped for the message).

The web config loader (`--web-config`, webconfig.py) gets the same treatment.

The example counts are modest for the test command; `SPEED_KINGS_FUZZ_EXAMPLES=5000` (or
any number) runs each property that many times.
"""

from __future__ import annotations

import copy
import datetime
import functools
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from speed_kings.catalog import Catalog, load_catalog
from speed_kings.config import Config, ConfigError, load_config, parse_config, parse_yaml
from speed_kings.keys import secrets_from_environ
from speed_kings.redact import Redactor
from speed_kings.webconfig import WebConfig, load_web_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {
    name: (ROOT / "config" / name).read_text(encoding="utf-8")
    for name in ("speed-kings.example.yaml", "speed-kings.minimal.yaml")
}
WEB_EXAMPLE = """\
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: NoClientCert
  min_version: TLS12
http_server_config:
  headers:
    X-Frame-Options: deny
basic_auth_users:
  alice: $2b$12$hNf2lSsxfm0.i4a.1kVpSOVyBCfIB51VRjgBUyv6kdnyTlgWj81Ay
"""
N = int(os.environ.get("SPEED_KINGS_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=N or 150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=not N,  # the test command is reproducible; a long run explores
)

# Keys the schemas know, so random documents reach past "unknown key" now and then.
TOP_KEYS = (
    "listen", "state_dir", "timezone", "log", "catalog", "defaults", "concurrency",
    "providers", "prompts", "comparisons", "budget", "rate_limits", "throttling",
)  # fmt: skip
INNER_KEYS = (
    "format", "level", "max_tokens", "timeout", "read_timeout", "connect_timeout",
    "fresh_connections", "max_response_bytes", "display_name", "base_url", "base_url_env",
    "wire", "hardware", "api_key_env", "api_key_env_fallbacks", "api_key_optional", "models",
    "default_model", "default_price", "extra_body", "notes", "id", "price", "input", "output",
    "cached_input", "checked", "source", "name", "model", "prompts", "schedule", "interval",
    "jitter", "cron", "global", "daily", "monthly", "backoff_initial", "backoff_max", "factor",
    "window", "min_samples", "groq", "cerebras", "ollama", "short", "long",
)  # fmt: skip
# Values that have broken parsers before: edge numbers, durations, crons, names, markup.
TRICKY = (
    "", " ", "0", "-1", "1e308", "-0", "nan", "inf", "-inf", ".nan", "0x10", "1_000",
    "5m", "0s", "-5m", "1h30m", "1.5.5s", "9999999999999999999999h", "5 m", "m5",
    "*/15 * * * *", "0 0 30 2 *", "* * * * * *", "*/0 * * * *", "61 * * * *", "@daily",
    "0.0.0.0:9464", "[::1]:9464", ":9464", "host:0", "host:99999", "host:port",
    "UTC", "Mars/Olympus", "../../etc/passwd", "/dev/null", "~", "null", "true",
    "llama-3.1-8b", "groq", "GROQ_API_KEY", "openai", "anthropic", "gemini", "ollama",
    "<script>alert('x')</script>", 'quote " and \\ backslash', "line\nbreak", "tab\there",
    "\u202eright-to-left", "emoji 🚀", "nul\x00byte", "{braces} {0} %s", "x" * 5000,
)  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(TRICKY),
    st.dates(),
    st.datetimes(),
)
keys = st.one_of(
    st.sampled_from(TOP_KEYS + INNER_KEYS), st.text(max_size=20), st.integers(), st.booleans()
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)


# --- what every outcome must look like ---------------------------------------------------------
def check_outcome(
    load: Any, source: str, *, canary: str | None = None, environ: dict[str, str] | None = None
) -> Config | WebConfig | None:
    """Runs `load()`: a result, or a ConfigError of the documented shape (returns None)."""
    try:
        return load()  # type: ignore[no-any-return]
    except ConfigError as exc:
        text = str(exc)
        check_message(exc, text, source)
        if canary is not None:
            shown = Redactor(secrets_from_environ(environ or {}))(text)
            token = canary.split(".", 1)[1]
            half = len(token) // 2
            for part in (canary, token[:half], token[half:]):
                assert part not in shown, f"a secret (or half of it) in: {shown!r}"
        return None
    # Anything else propagates: hypothesis reports the exception and the input.


def check_message(exc: ConfigError, text: str, source: str) -> None:
    assert exc.problems, "a ConfigError without problems"
    lines = text.splitlines()
    assert len(lines) == len(exc.problems), f"a problem spans lines: {text!r}"
    for line, problem in zip(lines, exc.problems, strict=True):
        assert line.startswith(f"{source}: "), line
        assert problem.message.strip(), f"an empty problem: {line!r}"
        if problem.path:
            assert line.startswith(f"{source}: {problem.path}: "), line
        if problem.fix is not None:
            assert line.endswith(f"; fix: {' '.join(problem.fix.splitlines())}"), line
            assert problem.fix.strip(), line
    assert "Traceback" not in text
    # Tracebacks and internal reprs a user should never see.
    for internal in ("pydantic_core", "For further information visit", "<class '", " object at 0x"):
        assert internal not in text, f"{internal!r} in: {text!r}"


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="speedkings-fuzz-") as name:
        yield Path(name)


@functools.cache
def the_catalog() -> Catalog:
    return load_catalog()


def write(folder: Path, text: str, name: str = "fuzz.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


# --- the exporter's config ---------------------------------------------------------------------
@FUZZ
@given(text=st.text(max_size=400))
def test_random_text(folder: Path, text: str) -> None:
    path = write(folder, text)
    check_outcome(lambda: load_config(path), str(path))


@FUZZ
@given(data=st.dictionaries(keys, values, max_size=8))
def test_random_documents(folder: Path, data: dict[Any, Any]) -> None:
    text = dump(data)
    path = write(folder, text)
    check_outcome(lambda: load_config(path), str(path))
    # The same data without the YAML round trip (keys YAML would turn into strings kept).
    check_outcome(lambda: parse_config(data, "<data>", catalog=the_catalog()), "<data>")


@FUZZ
@given(value=values)
def test_random_top_level_values(value: Any) -> None:
    check_outcome(lambda: parse_config(value, "<data>", catalog=the_catalog()), "<data>")


def paths_of(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from paths_of(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from paths_of(child, (*prefix, index))


def at(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


@st.composite
def mutated(draw: st.DrawFn, *, inject: str | None = None) -> Any:
    """An example config with 1-4 structural mutations (and `inject` placed somewhere)."""
    doc = copy.deepcopy(yaml.safe_load(EXAMPLES[draw(st.sampled_from(sorted(EXAMPLES)))]))
    ops = ["replace", "delete", "add", "rename", "wrap", "duplicate", "tricky"]
    for _ in range(draw(st.integers(1, 4))):
        paths = list(paths_of(doc))
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(ops))
        new = inject if inject is not None and draw(st.booleans()) else draw(values)
        if op == "tricky":
            new = draw(st.sampled_from(TRICKY))
        if not path:  # the whole document
            if op in ("replace", "tricky"):
                doc = new
            continue
        parent, last = at(doc, path[:-1]), path[-1]
        if op in ("replace", "tricky"):
            parent[last] = new
        elif op == "delete":
            del parent[last]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(keys) if inject is None else inject] = new
        elif op == "add":
            parent.insert(last, new)
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(keys)] = parent.pop(last)
        elif op == "wrap":
            parent[last] = [parent[last]] if draw(st.booleans()) else {"x": parent[last]}
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
    return doc


@FUZZ
@given(doc=mutated())
def test_mutated_examples(folder: Path, doc: Any) -> None:
    path = write(folder, dump(doc))
    check_outcome(lambda: load_config(path), str(path))
    check_outcome(lambda: parse_config(doc, "<data>", catalog=the_catalog()), "<data>")


@st.composite
def text_mutations(draw: st.DrawFn) -> str:
    """An example config's text with characters and lines deleted, inserted or repeated."""
    text = EXAMPLES[draw(st.sampled_from(sorted(EXAMPLES)))]
    for _ in range(draw(st.integers(1, 6))):
        at_ = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["delete", "insert", "repeat-line", "drop-line", "indent"]))
        if kind == "delete":
            text = text[:at_] + text[at_ + draw(st.integers(1, 30)) :]
        elif kind == "insert":
            piece = draw(
                st.one_of(
                    st.sampled_from(
                        [":", "- ", "  ", "\t", "*", "&a ", "*a", "!!python/object:os.system ",
                         "{", "[", '"', "'", "#", "\n", "---\n", "...\n", "<<: *a\n", "%YAML 1.1\n",
                         "? ", "|\n", ">-\n", "!!binary ", "\ufeff", "\x00", "\x85"]
                    ),
                    st.text(max_size=10),
                )
            )  # fmt: skip
            text = text[:at_] + piece + text[at_:]
        else:
            lines = text.splitlines()
            i = at_ % len(lines)
            if kind == "repeat-line":
                lines.insert(i, lines[i])
            elif kind == "drop-line":
                del lines[i]
            else:
                lines[i] = " " * draw(st.integers(1, 4)) + lines[i]
            text = "\n".join(lines)
    return text


@FUZZ
@given(text=text_mutations())
def test_mutated_example_text(folder: Path, text: str) -> None:
    path = write(folder, text)
    check_outcome(lambda: load_config(path), str(path))


def canary_value() -> str:
    """Shaped like no provider's key: only the environment's secrets can redact it."""
    return f"canary.{secrets.token_hex(12)}"


@st.composite
def with_canary(draw: st.DrawFn) -> tuple[Any, str]:
    token = draw(st.binary(min_size=12, max_size=12)).hex()
    assume(len(set(token)) >= 8)  # random-looking: no half of it turns up by chance
    canary = f"canary.{token}"
    # Alone, inside a longer value (clipped in messages past 60 characters), as a key.
    placed = draw(
        st.sampled_from(
            [canary, f"x{canary}", f"prefix {canary} suffix", "y" * 40 + canary, canary + "z" * 80]
        )
    )
    return draw(mutated(inject=placed)), canary


@FUZZ
@given(case=with_canary(), as_file=st.booleans())
def test_pasted_secret_never_shown(folder: Path, case: tuple[Any, str], as_file: bool) -> None:
    """A secret from the environment pasted anywhere in the file: the message, redacted as
    check-config and reload do, never shows it."""
    doc, canary = case
    environ: dict[str, str] = {"PATH": "/usr/bin"}
    if as_file:
        key_file = write(folder, canary + "\n", "secret.key")
        environ["FUZZ_API_KEY_FILE"] = str(key_file)
    else:
        environ["FUZZ_API_KEY"] = canary
    assume(canary in dump(doc) or canary in repr(doc))
    path = write(folder, dump(doc))
    check_outcome(lambda: load_config(path), str(path), canary=canary, environ=environ)


def test_canary_check_can_fail(folder: Path) -> None:
    """The secret check above sees an unredacted secret: a wrong field quoting the value."""
    canary = canary_value()
    path = write(folder, dump({"listen": canary}))
    with pytest.raises(AssertionError, match="a secret"):
        check_outcome(lambda: load_config(path), str(path), canary=canary, environ={})
    check_outcome(
        lambda: load_config(path), str(path), canary=canary, environ={"X_API_KEY": canary}
    )


def test_parse_yaml_refuses_python_tags() -> None:
    with pytest.raises(ConfigError, match="could not determine a constructor"):
        parse_yaml("listen: !!python/object/apply:os.system [echo hi]\n", "<t>")


# --- the web config (--web-config) -------------------------------------------------------------
WEB_KEYS = (
    "tls_server_config", "http_server_config", "basic_auth_users", "cert_file", "key_file",
    "client_auth_type", "client_ca_file", "min_version", "max_version", "cipher_suites",
    "curve_preferences", "prefer_server_cipher_suites", "headers", "http2",
    "Strict-Transport-Security", "X-Frame-Options", "Content-Security-Policy", "alice",
)  # fmt: skip


@st.composite
def web_documents(draw: st.DrawFn) -> Any:
    doc = yaml.safe_load(WEB_EXAMPLE)
    for _ in range(draw(st.integers(0, 4))):
        paths = list(paths_of(doc))
        path = draw(st.sampled_from(paths))
        new = draw(st.one_of(values, st.sampled_from(TRICKY)))
        if not path:
            doc = new if draw(st.booleans()) else doc
            continue
        parent, last = at(doc, path[:-1]), path[-1]
        op = draw(st.sampled_from(["replace", "delete", "add"]))
        if op == "replace":
            parent[last] = new
        elif op == "delete":
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(st.one_of(st.sampled_from(WEB_KEYS), keys))] = new
    return doc


@FUZZ
@given(doc=web_documents())
def test_web_config_mutations(folder: Path, doc: Any) -> None:
    path = write(folder, dump(doc), "web.yaml")
    check_outcome(lambda: load_web_config(path), str(path))


@FUZZ
@given(text=st.one_of(st.text(max_size=300), text_mutations()))
def test_web_config_random_text(folder: Path, text: str) -> None:
    path = write(folder, text, "web.yaml")
    check_outcome(lambda: load_web_config(path), str(path))


def test_dates_and_times_in_values() -> None:
    """YAML turns unquoted dates into date objects: a date where a string belongs is a
    problem with a path, not a crash."""
    doc = yaml.safe_load(EXAMPLES["speed-kings.minimal.yaml"])
    doc["comparisons"][0]["name"] = datetime.date(2026, 11, 22)
    doc["providers"]["local-vllm"]["base_url"] = datetime.datetime(2026, 11, 22, 1, 2, 3)
    result = check_outcome(lambda: parse_config(doc, "<data>", catalog=the_catalog()), "<data>")
    assert result is None


@pytest.mark.parametrize("key", ["state_dir", "catalog"])
@pytest.mark.parametrize("value", ["state\x00dir", "~no-such-user-here/state"])
def test_paths_the_os_would_refuse(folder: Path, key: str, value: str) -> None:
    """Found by the fuzzer: a NUL in a path, or ~user for an unknown user, raised
    ValueError / RuntimeError (a traceback at start) instead of a config error."""
    path = write(folder, dump({key: value}))
    with pytest.raises(ConfigError, match=rf"^{path}: {key}: "):
        load_config(path)


@pytest.mark.parametrize("value", ["cert\x00.pem", "~no-such-user-here/cert.pem"])
def test_web_config_paths_the_os_would_refuse(folder: Path, value: str) -> None:
    doc = {"tls_server_config": {"cert_file": value, "key_file": "key.pem"}}
    path = write(folder, dump(doc), "web.yaml")
    with pytest.raises(ConfigError, match=r"tls_server_config\.cert_file: "):
        load_web_config(path)


def test_control_characters_in_yaml() -> None:
    """Found by the fuzzer: PyYAML's reader error was two lines with no line number."""
    with pytest.raises(ConfigError) as info:
        parse_yaml("listen: ok\nstate_dir: a\x1fb\n", "f.yaml")
    assert str(info.value) == (
        "f.yaml: line 2, column 13: invalid YAML: character U+001F is not allowed (special "
        'characters are not allowed); fix: delete it, or write it as "\\x1f" inside a '
        "double-quoted string"
    )


def test_odd_keys_stay_on_one_line() -> None:
    """Found by the fuzzer: a key with a line break broke the one-line-per-problem rule."""
    with pytest.raises(ConfigError) as info:
        parse_config({"a\rb\nc": 1}, "f.yaml", catalog=the_catalog())
    assert str(info.value).startswith('f.yaml: ["a\\x0db\\x0ac"]: unknown key ')
    assert len(str(info.value).splitlines()) == 1
