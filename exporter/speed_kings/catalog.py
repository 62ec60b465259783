"""The provider catalog: providers are data (`catalog.yaml`), adapters are per wire protocol.

`load_catalog()` reads and validates the packaged catalog (or another file); a mistake is
reported with the file, the key path and what was expected, never as a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from speed_kings.pricing import Price
from speed_kings.wire import WIRE_NAMES

Hardware = Literal["WSE", "LPU", "RDU", "GPU", "TPU", "local", "aggregator", "mixed", "unknown"]
HARDWARE_CLASSES: tuple[str, ...] = get_args(Hardware)

# Names end up in metric labels and env-var-like places: keep them plain.
ProviderName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]*$")]
ModelName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$")]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
Dollars = Annotated[float, Field(ge=0, allow_inf_nan=False)]

ESTIMATE_SOURCE = "unverified estimate"
"""The `source` of a price that does not come from a checked reference."""


class CatalogError(ValueError):
    """The catalog file cannot be read or is invalid; the message says where and why."""


class UnknownProviderError(KeyError):
    """A provider name the catalog does not know; the message lists the known ones."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriceEntry(_Frozen):
    """US dollars per million tokens, with the day it was checked and where it comes from."""

    input: Dollars
    cached_input: Dollars | None = None  # None: cached input is billed as input
    output: Dollars
    checked: date
    source: NonEmpty

    @property
    def is_estimate(self) -> bool:
        return self.source.lower().startswith(ESTIMATE_SOURCE)

    def to_price(self) -> Price:
        return Price(
            input_per_million=self.input,
            output_per_million=self.output,
            cached_input_per_million=self.cached_input,
            checked=self.checked,
            source=self.source,
        )


class ModelEntry(_Frozen):
    """One canonical model as a provider serves it."""

    id: NonEmpty
    price: PriceEntry | None = None  # None: no known price (see notes)
    notes: str | None = None


class ProviderEntry(_Frozen):
    """One provider. Field order matters: validators of later fields read earlier ones."""

    display_name: NonEmpty
    wire: str
    hardware: Hardware
    api_key_env: EnvName | None
    api_key_env_fallbacks: tuple[EnvName, ...] = ()
    api_key_optional: bool = False
    base_url_env: EnvName | None = None
    base_url: str | None
    models: dict[ModelName, ModelEntry] = Field(min_length=1)
    default_model: ModelName
    default_price: PriceEntry | None = None  # for models without their own price (self-hosted)
    extra_body: dict[str, Any] = Field(default_factory=dict)
    notes: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()  # facts not verified against a source

    @field_validator("wire")
    @classmethod
    def _known_wire(cls, value: str) -> str:
        if value not in WIRE_NAMES:
            raise ValueError(f"unknown wire {value!r}; expected one of {', '.join(WIRE_NAMES)}")
        return value

    @field_validator("api_key_env_fallbacks", "api_key_optional")
    @classmethod
    def _needs_key_env(cls, value: object, info: ValidationInfo) -> object:
        if value and info.data.get("api_key_env", "absent") is None:
            raise ValueError("needs api_key_env to be set")
        return value

    @field_validator("base_url")
    @classmethod
    def _valid_base_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if info.data.get("base_url_env") is None:
                raise ValueError(
                    "is null, so base_url_env must name the variable that gives the URL"
                )
            return None
        _check_url(value)
        return value

    @field_validator("models")
    @classmethod
    def _unique_ids(cls, value: dict[str, ModelEntry]) -> dict[str, ModelEntry]:
        seen: dict[str, str] = {}
        for canonical, entry in value.items():
            if entry.id in seen:
                raise ValueError(
                    f"provider model id {entry.id!r} is used by both {seen[entry.id]!r} and "
                    f"{canonical!r}; each id may appear once so reverse lookup is unambiguous"
                )
            seen[entry.id] = canonical
        return value

    @field_validator("default_model")
    @classmethod
    def _default_in_models(cls, value: str, info: ValidationInfo) -> str:
        models = info.data.get("models")
        if models is not None and value not in models:
            raise ValueError(
                f"{value!r} is not one of this provider's models; expected one of "
                f"{', '.join(models)}"
            )
        return value

    @property
    def key_env_names(self) -> tuple[str, ...]:
        """Env var names to try for the API key, in order (empty: no key needed)."""
        if self.api_key_env is None:
            return ()
        return (self.api_key_env, *self.api_key_env_fallbacks)

    @property
    def needs_key(self) -> bool:
        return self.api_key_env is not None and not self.api_key_optional

    def model_id(self, canonical: str) -> str:
        """The provider's id for a canonical model; an unknown name is taken as a raw id."""
        entry = self.models.get(canonical)
        return entry.id if entry is not None else canonical

    def canonical_for(self, model_id: str) -> str:
        """The canonical name for a provider model id; an unknown id is returned unchanged."""
        if model_id in self.models:
            return model_id
        for canonical, entry in self.models.items():
            if entry.id == model_id:
                return canonical
        return model_id

    def price(self, canonical: str) -> Price | None:
        """Price of a model (canonical name or raw provider id); None when unknown."""
        entry = self.models.get(self.canonical_for(canonical))
        if entry is not None and entry.price is not None:
            return entry.price.to_price()
        return self.default_price.to_price() if self.default_price is not None else None

    def resolve_base_url(self, environ: Mapping[str, str]) -> str | None:
        """The base URL, honouring `base_url_env` (which may be a bare `host[:port]`)."""
        override = environ.get(self.base_url_env, "") if self.base_url_env else ""
        override = override.strip().rstrip("/")
        if not override:
            return self.base_url
        if "://" not in override:
            # OLLAMA_HOST style `host[:port]`: http, and the catalog URL's port if none given.
            _, colon, port = override.rpartition(":")
            default_port = urlsplit(self.base_url or "").port
            if not (colon and port.isdigit()) and default_port is not None:
                override = f"{override}:{default_port}"
            override = f"http://{override}"
        return override


class Catalog(_Frozen):
    """Every known provider, keyed by the name used in configs and metric labels."""

    checked: date
    providers: dict[ProviderName, ProviderEntry] = Field(min_length=1)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.providers)

    def get(self, name: str) -> ProviderEntry:
        try:
            return self.providers[name]
        except KeyError:
            raise UnknownProviderError(unknown_provider_message(name, self.names)) from None


def unknown_provider_message(name: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown provider {name!r}{hint}; known providers: {', '.join(known)}"


def _check_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"{value!r} is not an http(s) URL; expected e.g. https://api.groq.com/openai/v1"
        )
    if value.endswith("/") or parts.query or parts.fragment:
        raise ValueError(
            f"{value!r} must not end with '/' or carry a query: it is the part before the "
            "wire's fixed path (e.g. https://api.groq.com/openai/v1)"
        )


def _format_error(error: Mapping[str, Any]) -> str:
    loc = ".".join(str(part) for part in error["loc"]) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown key (check its spelling and indentation)"
    elif kind == "missing":
        message = "required key is missing"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        if "input" in error and kind != "value_error":
            got = repr(error["input"])
            message += f" (got {got if len(got) <= 60 else got[:57] + '...'})"
    return f"{loc}: {message}"


def parse_catalog(text: str, source: str) -> Catalog:
    """Validate catalog YAML; `source` names the file in error messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{source}: expected a mapping with 'checked' and 'providers'")
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        lines = [_format_error(err) for err in exc.errors(include_url=False)]
        raise CatalogError(
            f"{source}: invalid catalog ({len(lines)} error{'s' if len(lines) != 1 else ''}):\n"
            + "\n".join(f"  {line}" for line in lines)
        ) from None


def load_catalog(path: Path | None = None) -> Catalog:
    """Load a catalog file; without `path`, the one packaged with speed_kings."""
    if path is None:
        resource = resources.files("speed_kings") / "catalog.yaml"
        return parse_catalog(resource.read_text(encoding="utf-8"), str(resource))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise CatalogError(f"{path}: cannot read the catalog: {reason}") from None
    return parse_catalog(text, str(path))
