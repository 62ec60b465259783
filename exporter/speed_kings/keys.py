"""API keys from environment variables or `*_FILE` files (Docker secrets).

Callers pass the environment in (nothing here reads `os.environ`), and no result ever shows
a key: not in `repr`, not in a problem message (file contents are never quoted).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from speed_kings.catalog import ProviderEntry


@dataclass(frozen=True, slots=True)
class KeyLookup:
    """Where a key was found (`source` is the variable name, e.g. `GROQ_API_KEY_FILE`), or
    why it could not be read (`problem`). All None: not set anywhere."""

    value: str | None = field(default=None, repr=False)
    source: str | None = None
    problem: str | None = None

    @property
    def found(self) -> bool:
        return self.value is not None


def _read_key_file(var: str, path: str) -> KeyLookup:
    def problem(reason: str) -> KeyLookup:
        return KeyLookup(problem=f"{var} points to {path} which cannot be read: {reason}")

    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        # The codec's message quotes bytes of the file: use a fixed reason instead.
        return problem("not UTF-8 text")
    except OSError as exc:
        return problem(exc.strerror or type(exc).__name__)
    key = text.strip()
    if not key:
        return problem("the file is empty")
    if any(ch.isspace() for ch in key):
        return problem("the file holds more than the key (whitespace inside)")
    return KeyLookup(value=key, source=var)


def resolve_api_key(env_names: Sequence[str], environ: Mapping[str, str]) -> KeyLookup:
    """The first key found, trying each name in order: `NAME`, then the file named by
    `NAME_FILE`. A `NAME_FILE` that cannot be read stops the search with a problem rather
    than silently falling back: the user pointed at that file on purpose."""
    for name in env_names:
        value = environ.get(name, "").strip()
        if value:
            return KeyLookup(value=value, source=name)
        file_var = f"{name}_FILE"
        file_path = environ.get(file_var, "").strip()
        if file_path:
            return _read_key_file(file_var, file_path)
    return KeyLookup()


def provider_key(entry: ProviderEntry, environ: Mapping[str, str]) -> KeyLookup:
    """The API key of a catalog provider (an empty lookup when it needs none)."""
    return resolve_api_key(entry.key_env_names, environ)


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    """Whether a provider can be probed with this environment, and a one-line reason fit
    for logs and `speed-kings providers` (never containing the key)."""

    ready: bool
    text: str
    key: KeyLookup


def provider_status(entry: ProviderEntry, environ: Mapping[str, str]) -> ProviderStatus:
    key = provider_key(entry, environ)
    names = entry.key_env_names
    if key.problem is not None:
        return ProviderStatus(False, key.problem, key)
    if entry.resolve_base_url(environ) is None:
        where = f"set {entry.base_url_env} or " if entry.base_url_env else ""
        return ProviderStatus(False, f"not configured: {where}base_url in the config", key)
    if key.found:
        return ProviderStatus(True, f"configured ({key.source})", key)
    if not names:
        return ProviderStatus(True, "no key needed", key)
    if entry.api_key_optional:
        return ProviderStatus(True, f"no key ({names[0]} optional)", key)
    return ProviderStatus(False, f"not configured: set {' or '.join(names)}", key)


# Env var names that hold secrets by convention (provider keys and the like).
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$")


def secrets_from_environ(environ: Mapping[str, str]) -> list[str]:
    """Every secret-looking value of the environment, `*_FILE` contents included: what an
    error message quoting a mis-pasted value must never show, before any config is valid."""
    names = {
        name.removesuffix("_FILE")
        for name in environ
        if _SECRET_NAME.search(name.removesuffix("_FILE"))
    }
    found = []
    for name in sorted(names):
        lookup = resolve_api_key([name], environ)
        if lookup.value:
            found.append(lookup.value)
    return found
