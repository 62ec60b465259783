"""`speed-kings run --web-config FILE`: TLS and basic auth for the exporter's HTTP endpoints.

The file has the shape of the Prometheus exporter-toolkit's `web-config.yml` (the
`--web.config.file` of node_exporter, blackbox_exporter...), so one file and one habit serve
every exporter of a fleet:

    tls_server_config: {cert_file, key_file, client_auth_type, client_ca_file,
                        min_version, max_version}
    http_server_config: {headers: {...}, http2}
    basic_auth_users: {USER: BCRYPT_HASH}

`load_web_config()` validates it like the exporter config (unknown keys are errors; every
problem is one line `FILE: KEY.PATH: PROBLEM; fix: FIX` in a `ConfigError`), resolves paths
from the file's folder and loads the certificates, so a bad file stops the start instead of
the first scrape. Nothing here ever quotes a password, a hash that may be a pasted password,
or the contents of a key file.

`docs/security.md` documents it; keep the two in step.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import re
import secrets
import ssl
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

import bcrypt
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from speed_kings.config import (
    ConfigError,
    Problem,
    _describe,
    _problem,
    _pydantic_problems,
    parse_yaml,
    top_level_mapping,
)

REALM = "speed-kings"
WWW_AUTHENTICATE = f'Basic realm="{REALM}"'
UNAUTHENTICATED_PATHS = frozenset({"/healthz"})
"""Served without basic auth: liveness only ("ok"), for container HEALTHCHECKs that cannot
hold a password. Everything else (/metrics, /readyz, the status page, its JSON, reload)
needs it when `basic_auth_users` is set."""
AUTH_CACHE_SIZE = 100
"""Successful verifications remembered (bcrypt costs ~50-250 ms each, on every scrape)."""
BCRYPT_MAX_PASSWORD_BYTES = 72

_BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_HASH_FIX = (
    "give the bcrypt hash of the password, never the password: "
    "python -c 'import bcrypt; print(bcrypt.hashpw(b\"PASSWORD\", bcrypt.gensalt()).decode())'"
)
_TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# exporter-toolkit keys speed-kings does not implement: a clearer message than "unknown key".
_TOOLKIT_ONLY = {
    "tls_server_config": {
        "cert": "inline PEM is not supported: put the certificate in a file, use cert_file",
        "key": "inline PEM is not supported: put the key in a file, use key_file",
        "client_ca": "inline PEM is not supported: put the CA in a file, use client_ca_file",
        "client_allowed_sans": "is not supported",
        "cipher_suites": "is not supported (Python's OpenSSL defaults are used)",
        "curve_preferences": "is not supported (Python's OpenSSL defaults are used)",
        "prefer_server_cipher_suites": "is not supported",
    },
    "": {"rate_limit": "is not supported: rate limit in the reverse proxy if you need it"},
}


# --- the schema -----------------------------------------------------------------------------
def _bcrypt_hash(value: object) -> str:
    # A value that is not a hash is often the password itself: never echo it.
    if not isinstance(value, str) or not _BCRYPT_HASH.fullmatch(value):
        raise _problem("not a bcrypt hash (value not shown: it may be a password)", _HASH_FIX)
    return value


def _lower_choice(*choices: str) -> BeforeValidator:
    def check(value: object) -> str:
        if isinstance(value, str) and value.lower() in choices:
            return value
        allowed = ", ".join(c for c in choices if c)
        raise _problem(f"must be one of {allowed} (or blank for none), got {_describe(value)}")

    return BeforeValidator(check)


BcryptHash = Annotated[str, BeforeValidator(_bcrypt_hash)]
FileName = Annotated[str, Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TLSServerConfig(_Model):
    cert_file: FileName
    key_file: FileName
    client_auth_type: Literal[
        "NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"
    ] = "NoClientCert"
    client_ca_file: FileName | None = None
    min_version: Literal["TLS12", "TLS13"] = "TLS12"
    max_version: Literal["TLS12", "TLS13"] = "TLS13"


class Headers(_Model):
    """exporter-toolkit's list: only these, each added to responses that lack it; blank
    means unset."""

    content_security_policy: str = Field(default="", alias="Content-Security-Policy")
    x_frame_options: Annotated[str, _lower_choice("deny", "sameorigin", "")] = Field(
        default="", alias="X-Frame-Options"
    )
    x_content_type_options: Annotated[str, _lower_choice("nosniff", "")] = Field(
        default="", alias="X-Content-Type-Options"
    )
    x_xss_protection: str = Field(default="", alias="X-XSS-Protection")
    strict_transport_security: str = Field(default="", alias="Strict-Transport-Security")


class HTTPServerConfig(_Model):
    headers: Headers = Field(default_factory=Headers)
    http2: bool = True  # accepted for exporter-toolkit files; aiohttp serves HTTP/1.1 only


class WebConfigFile(_Model):
    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig | None = None
    basic_auth_users: dict[str, BcryptHash] | None = None

    @field_validator("basic_auth_users")
    @classmethod
    def _user_names(cls, users: dict[str, str] | None) -> dict[str, str] | None:
        for n, name in enumerate(users or {}, 1):
            if not name or ":" in name:
                # Not quoted: "alice:secret" is a password typed in the wrong place.
                raise _problem(
                    f"user name #{n} is empty or contains ':' (not shown: it may hold a password)",
                    "use a non-empty name without ':' (basic auth splits user and password "
                    "at the first ':'); the password's bcrypt hash goes after the name",
                )
        return users


# --- the result -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WebConfig:
    """A loaded `--web-config`: what `speed_kings.web` needs to serve with it."""

    source: str
    ssl_context: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def tls(self) -> bool:
        return self.ssl_context is not None

    @property
    def basic_auth(self) -> bool:
        return bool(self.users)


# --- loading --------------------------------------------------------------------------------
def _toolkit_only(problems: list[Problem]) -> list[Problem]:
    out = []
    for p in problems:
        section, _, key = p.path.rpartition(".")
        note = _TOOLKIT_ONLY.get(section, {}).get(key)
        if note is not None and p.message.startswith("unknown key"):
            p = Problem(p.path, f"exporter-toolkit's {key!r} {note}", "remove it")
        out.append(p)
    return out


def _resolve(base: Path, name: str) -> Path:
    path = Path(name)
    with contextlib.suppress(RuntimeError):  # "~name" for an unknown user: used as written
        path = path.expanduser()
    return path if path.is_absolute() else base / path


def _read_pem(path: Path, key: str, want: tuple[str, ...], what: str) -> str | Problem:
    """The file's text, or the problem with it (its contents are never quoted)."""
    where = f"tls_server_config.{key}"
    try:
        text = path.read_text(encoding="latin-1")  # any bytes: PEM is checked below
    except FileNotFoundError:
        return Problem(
            where,
            f"file not found: {path}",
            "check the path (a relative path is from the web config file's folder)",
        )
    except OSError as exc:
        return Problem(where, f"cannot read {path}: {exc.strerror or type(exc).__name__}")
    except ValueError:  # a NUL character: no file can have that name
        return Problem(where, f"invalid path {str(path)!r}", "remove the NUL character")
    if not any(marker in text for marker in want):
        return Problem(where, f"{path} holds no PEM {what}", f"give a PEM-encoded {what}")
    return text


class _KeyHasPassphrase(Exception):
    pass


def _no_passphrase() -> str:
    # Without a callback OpenSSL would prompt on the terminal: a daemon must fail instead.
    raise _KeyHasPassphrase


def _ssl_reason(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc.strerror or exc).replace("_", " ").lower()


def _ssl_context(tls: TLSServerConfig, base: Path) -> ssl.SSLContext | list[Problem]:
    problems: list[Problem] = []
    cert = _resolve(base, tls.cert_file)
    key = _resolve(base, tls.key_file)
    ca = _resolve(base, tls.client_ca_file) if tls.client_ca_file else None
    checks = [
        _read_pem(cert, "cert_file", ("-----BEGIN CERTIFICATE-----",), "certificate"),
        _read_pem(key, "key_file", ("PRIVATE KEY-----",), "private key"),
    ]
    if ca is not None:
        checks.append(
            _read_pem(ca, "client_ca_file", ("-----BEGIN CERTIFICATE-----",), "CA certificate")
        )
    problems += [c for c in checks if isinstance(c, Problem)]
    verify = _CLIENT_AUTH[tls.client_auth_type]
    if verify != ssl.CERT_NONE and tls.client_ca_file is None:
        problems.append(
            Problem(
                "tls_server_config.client_ca_file",
                f"client_auth_type {tls.client_auth_type} needs client_ca_file",
                "name the PEM file of the CA that signs client certificates",
            )
        )
    if verify == ssl.CERT_NONE and tls.client_ca_file is not None:
        problems.append(
            Problem(
                "tls_server_config.client_auth_type",
                "client_ca_file is set but client_auth_type is NoClientCert: "
                "client certificates would not be checked",
                "set client_auth_type: RequireAndVerifyClientCert (or drop client_ca_file)",
            )
        )
    if _TLS_VERSIONS[tls.min_version] > _TLS_VERSIONS[tls.max_version]:
        problems.append(
            Problem(
                "tls_server_config.min_version",
                f"min_version {tls.min_version} is above max_version {tls.max_version}",
            )
        )
    if problems:
        return problems

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[tls.min_version]
    context.maximum_version = _TLS_VERSIONS[tls.max_version]
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except _KeyHasPassphrase:
        return [
            Problem(
                "tls_server_config.key_file",
                f"{key} is encrypted with a passphrase",
                f"give an unencrypted key: openssl pkey -in {key} -out {key.stem}-plain.pem",
            )
        ]
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            return [
                Problem(
                    "tls_server_config.key_file",
                    f"{key} is not the key of the certificate in {cert}",
                    "give the private key that was issued with cert_file",
                )
            ]
        return [
            Problem(
                "tls_server_config",
                f"cannot load cert_file and key_file: {_ssl_reason(exc)}",
                "check that both are PEM files: the certificate (chain) and its private key",
            )
        ]
    context.verify_mode = verify
    if ca is not None:
        try:
            context.load_verify_locations(cafile=ca)
        except ssl.SSLError as exc:
            return [
                Problem(
                    "tls_server_config.client_ca_file",
                    f"cannot load {ca}: {_ssl_reason(exc)}",
                    "give the PEM-encoded CA certificate(s)",
                )
            ]
    return context


def parse_web_config(data: object, source: str, *, base: Path) -> WebConfig:
    """Validate parsed YAML; `base` is the folder relative file names start from."""
    data = top_level_mapping(
        data,
        source,
        empty_fix="set tls_server_config and/or basic_auth_users (see docs/security.md), "
        "or drop --web-config",
    )
    try:
        doc = WebConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            source, _toolkit_only(_pydantic_problems(exc, (), WebConfigFile))
        ) from None

    context: ssl.SSLContext | None = None
    if doc.tls_server_config is not None:
        built = _ssl_context(doc.tls_server_config, base)
        if isinstance(built, list):
            raise ConfigError(source, built)
        context = built
    headers: dict[str, str] = {}
    if doc.http_server_config is not None:
        dumped = doc.http_server_config.headers.model_dump(by_alias=True)
        headers = {name: value for name, value in dumped.items() if value}
    users = {user: h.encode("ascii") for user, h in (doc.basic_auth_users or {}).items()}
    return WebConfig(
        source=source,
        ssl_context=context,
        users=MappingProxyType(users),
        headers=MappingProxyType(headers),
    )


def load_web_config(path: Path) -> WebConfig:
    """Read, validate and load (certificates too) a web config file; any problem raises
    `ConfigError` naming the file."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            source,
            [Problem("", "web config file not found", "check the --web-config path")],
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = (exc.strerror or type(exc).__name__) if isinstance(exc, OSError) else "not UTF-8"
        raise ConfigError(
            source, [Problem("", f"cannot read the web config file: {reason}")]
        ) from None
    return parse_web_config(parse_yaml(text, source), source, base=path.parent)


# --- basic auth -----------------------------------------------------------------------------
def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # longer than bcrypt's 72 bytes (bcrypt >= 5 refuses to truncate)
        return False


class BasicAuth:
    """Checks `Authorization: Basic ...` against bcrypt hashes, as exporter-toolkit does:
    one bcrypt at a time, off the event loop (it must not delay probe timestamps); an unknown
    user costs a bcrypt too (no user enumeration by timing); successful checks are cached
    in a bounded LRU keyed by (user, sha256(password)), never the password itself."""

    def __init__(self, users: Mapping[str, bytes], *, cache_size: int = AUTH_CACHE_SIZE) -> None:
        self._users = dict(users)
        costs = [int(h.split(b"$")[2]) for h in self._users.values()] or [4]
        # A hash of a random password nobody knows, as dear as the dearest real one.
        self._decoy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(max(costs)))
        self._cache: OrderedDict[tuple[str, bytes], None] = OrderedDict()
        self._cache_size = cache_size
        self._lock = asyncio.Lock()
        self.bcrypt_runs = 0  # for tests and curiosity: how often the cache missed

    @staticmethod
    def parse(header: str | None) -> tuple[str, bytes] | None:
        """(user, password) from an Authorization header, None if it is not valid Basic."""
        if not header:
            return None
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic" or not token:
            return None
        try:
            raw = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        user, colon, password = raw.partition(b":")
        if not colon:
            return None
        try:
            return user.decode("utf-8"), password
        except UnicodeDecodeError:
            return None

    async def check(self, header: str | None) -> bool:
        parsed = self.parse(header)
        if parsed is None:
            return False
        user, password = parsed
        cache_key = (user, hashlib.sha256(password).digest())
        if cache_key in self._cache:
            self._cache.move_to_end(cache_key)
            return True
        hashed = self._users.get(user)
        async with self._lock:
            self.bcrypt_runs += 1
            ok = await asyncio.to_thread(
                _checkpw, password, hashed if hashed is not None else self._decoy
            )
        if not (ok and hashed is not None):
            return False
        self._cache[cache_key] = None
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return True


def describe(web_config: WebConfig) -> dict[str, Any]:
    """Log fields saying what a web config turned on (no secrets)."""
    return {
        "web_config": web_config.source,
        "tls": web_config.tls,
        "basic_auth_users": len(web_config.users),
    }
