"""The exporter's configuration file: what to probe, how often, and how much may be spent.

`load_config()` reads YAML, validates its structure with pydantic (every model forbids
unknown keys), then checks what pydantic cannot see alone: names that refer to each other,
providers against the catalog, schedules. Every problem is reported at once as one line
`FILE: KEY.PATH: PROBLEM; fix: FIX` in a `ConfigError`, never as a traceback.

`docs/configuration.md` documents every key; keep the two in step.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo

import yaml
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from yaml.constructor import ConstructorError

from speed_kings.catalog import (
    Catalog,
    CatalogError,
    Dollars,
    EnvName,
    Hardware,
    ModelEntry,
    ModelName,
    NonEmpty,
    PriceEntry,
    ProviderEntry,
    ProviderName,
    load_catalog,
)
from speed_kings.demo import DEMO_PROVIDERS, WIRE_BASE_SUFFIX
from speed_kings.durations import Duration, DurationOrZero, format_duration
from speed_kings.prompts import PROMPTS

# --- constants (documented in docs/configuration.md) -----------------------------------------

DEFAULT_LISTEN = "0.0.0.0:9464"
MONTH_SECONDS = 30 * 86400.0
"""A budget month, for spreading a monthly allowance over time."""
DEFAULT_MONTHLY_ALLOWANCE = 5.0
"""Dollars per month assumed by budget-derived schedules when no global cap is set."""
MIN_DERIVED_INTERVAL = 60.0
"""Budget-derived schedules never probe more often than this (free providers included)."""
MAX_DERIVED_INTERVAL = MONTH_SECONDS
"""...nor less often than once a month."""
DEMO_KEY_ENV = "SPEEDKINGS_DEMO_API_KEY"
"""Demo providers read their (fake) key from this variable; see `demo_environ`."""
DEMO_KEY = "sim-demo-key"

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
MODEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$"
_PROVIDER_PATTERN = r"^[a-z][a-z0-9_-]*$"  # catalog.ProviderName
_MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"  # catalog.ModelName
_ENV_PATTERN = r"^[A-Z_][A-Z0-9_]*$"  # catalog.EnvName

# What each name pattern is called and allows, for messages: pydantic would quote the regex.
_PATTERNS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        NAME_PATTERN: (
            "name",
            "use lowercase letters, digits, '-' and '_', starting with a letter or digit",
        ),
        _PROVIDER_PATTERN: (
            "provider name",
            "use lowercase letters, digits, '-' and '_', starting with a letter",
        ),
        _MODEL_NAME_PATTERN: (
            "canonical model name",
            "use lowercase letters, digits, '.', '-' and '_', like llama-3.1-8b",
        ),
        MODEL_PATTERN: (
            "model",
            "use a canonical model name like llama-3.1-8b, or the provider's own id (no spaces)",
        ),
        _ENV_PATTERN: (
            "environment variable name",
            "use A-Z, 0-9 and '_', like GROQ_API_KEY",
        ),
    }
)

# Cron schedules are measured from a fixed Monday, over whole weeks, so weekdays count evenly.
_CRON_EPOCH = (2026, 1, 5)  # a Monday
_CRON_FIX = (
    'use five fields "minute hour day-of-month month day-of-week", quoted in YAML, '
    'like "*/15 * * * *" or "0 9-17 * * mon-fri"'
)

ComparisonName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
PromptName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
ModelRef = Annotated[str, StringConstraints(pattern=MODEL_PATTERN)]
"""A canonical model name, or a provider's raw model id passed through unchanged."""


# --- errors ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config: where (`a.b[0].c`, "" for the whole file), what, and
    how to fix it when that can be said."""

    path: str
    message: str
    fix: str | None = None

    def line(self, source: str) -> str:
        head = f"{source}: {self.path}: " if self.path else f"{source}: "
        # One line per problem, whatever a message quotes (YAML errors, library messages).
        return " ".join(
            (head + self.message + (f"; fix: {self.fix}" if self.fix else "")).splitlines()
        )


class ConfigError(ValueError):
    """An unreadable or invalid config. `str()` is one line per problem:
    `{file}: {key.path}: {problem}; fix: {fix}`."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__("\n".join(problem.line(source) for problem in self.problems))


def _problem(message: str, fix: str | None = None) -> PydanticCustomError:
    # The message travels in ctx, not the template: user text may contain braces.
    context: dict[str, Any] = {"problem": message}
    if fix:
        context["fix"] = fix
    return PydanticCustomError("config", "{problem}", context)


def _close(name: str, candidates: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


# --- small validators -----------------------------------------------------------------------


def parse_listen(value: str) -> tuple[str, int]:
    """(host, port) from "HOST:PORT" ("[::1]:9464" for IPv6). ValueError otherwise."""
    host, colon, port = value.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT")
    return host, int(port)


_LISTEN_FIX = 'use e.g. "0.0.0.0:9464" (all interfaces) or "127.0.0.1:9464" (this host only)'


def _check_cron(expr: str) -> None:
    try:
        trigger = CronTrigger.from_crontab(expr, timezone="UTC")
    except (ValueError, TypeError, KeyError) as exc:
        reason = str(exc) or type(exc).__name__
        reason = reason[:1].lower() + reason[1:]
        raise _problem(f"invalid cron expression {expr!r}: {reason}", _CRON_FIX) from None
    start = datetime(*_CRON_EPOCH, tzinfo=ZoneInfo("UTC"))
    fire = trigger.get_next_fire_time(None, start)
    if fire is None or fire - start > timedelta(days=400):
        raise _problem(
            f"cron expression {expr!r} never fires",
            "check that the date exists (February has no 30th) and the field order: "
            "minute hour day-of-month month day-of-week",
        )


def _cron_rounds_per_month(expr: str, zone: ZoneInfo) -> float:
    """Average firings per 30 days, counted over whole weeks from a fixed Monday."""
    trigger = CronTrigger.from_crontab(expr, timezone=zone)
    start = datetime(*_CRON_EPOCH, tzinfo=zone)
    count = 0
    for days in (7, 364):  # a week is exact for frequent crons; a year for rare ones
        end = start + timedelta(days=days)
        count, previous, now = 0, None, start
        while (fire := trigger.get_next_fire_time(previous, now)) is not None and fire < end:
            count += 1
            previous, now = fire, fire + timedelta(microseconds=1)
        if count >= 30:
            return count * 30 / days
    return count * 30 / 364


# --- the schema -----------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogConfig(_Model):
    format: Literal["json", "console", "auto"] = "auto"  # auto: console on a TTY, else JSON
    level: Literal["debug", "info", "warning", "error"] = "info"


class ProbeDefaults(_Model):
    """Per-probe settings; a comparison may override max_tokens."""

    max_tokens: int = Field(default=300, ge=1)
    timeout: Duration = 60.0  # whole request, headers to end of stream
    read_timeout: Duration = 30.0  # longest silence tolerated mid-stream
    connect_timeout: Duration = 10.0
    fresh_connections: bool = True  # cold connections every probe: DNS/TCP/TLS always measured
    max_response_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)


class ProviderConfig(_Model):
    """A provider to use: for a catalog provider, fields to override (`models` merges by
    canonical name, everything else replaces); for a new one, its whole description.
    Only keys actually written count (`model_fields_set`), so `api_key_env: null` works."""

    display_name: NonEmpty | None = None
    base_url: str | None = None
    base_url_env: EnvName | None = None
    wire: str | None = None
    hardware: Hardware | None = None
    api_key_env: EnvName | None = None
    api_key_env_fallbacks: tuple[EnvName, ...] | None = None
    api_key_optional: bool | None = None
    models: dict[ModelName, ModelEntry] | None = None
    default_model: ModelName | None = None
    default_price: PriceEntry | None = None
    extra_body: dict[str, Any] | None = None
    notes: tuple[str, ...] | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, data: object) -> object:
        return {} if data is None else data  # `groq:` with nothing after it means `groq: {}`

    def overrides(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class Schedule(_Model):
    """Exactly one of interval (with optional jitter) or cron."""

    interval: Duration | None = None
    jitter: DurationOrZero | None = None  # random delay up to this much, on each firing
    cron: str | None = None

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None:
            _check_cron(value)
        return value


class Comparison(_Model):
    """One canonical model on one or more providers, probed as a round, back to back."""

    name: ComparisonName
    model: ModelRef
    providers: tuple[str, ...] = Field(min_length=1)
    prompts: tuple[str, ...] = Field(default=("short",), min_length=1)
    schedule: Schedule | None = None  # None: derived from the budget
    max_tokens: int | None = Field(default=None, ge=1)


class BudgetCaps(_Model):
    daily: Dollars | None = None  # None: no cap
    monthly: Dollars | None = None


class BudgetConfig(_Model):
    global_: BudgetCaps = Field(default_factory=BudgetCaps, alias="global")
    providers: dict[str, BudgetCaps] = Field(default_factory=dict)


class RateLimitConfig(_Model):
    backoff_initial: Duration = 30.0  # cooldown after a 429 without Retry-After
    backoff_max: Duration = 3600.0


class ThrottlingConfig(_Model):
    factor: float = Field(
        default=3.0, gt=1, allow_inf_nan=False
    )  # "far off": this many times worse
    window: int = Field(default=20, ge=2)  # rolling baseline over the last N successful probes
    min_samples: int = Field(default=5, ge=1)  # no flag before the baseline has this many


class Config(_Model):
    listen: str = DEFAULT_LISTEN
    state_dir: Path = Path("state")
    timezone: str = "UTC"
    log: LogConfig = Field(default_factory=LogConfig)
    catalog: Path | None = None
    defaults: ProbeDefaults = Field(default_factory=ProbeDefaults)
    concurrency: int = Field(default=1, ge=1)
    providers: dict[ProviderName, ProviderConfig] = Field(default_factory=dict)
    prompts: dict[PromptName, str] = Field(default_factory=dict)
    comparisons: tuple[Comparison, ...] = ()
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    rate_limits: RateLimitConfig = Field(default_factory=RateLimitConfig)
    throttling: ThrottlingConfig = Field(default_factory=ThrottlingConfig)

    @field_validator("listen")
    @classmethod
    def _valid_listen(cls, value: str) -> str:
        try:
            parse_listen(value)
        except ValueError as exc:
            raise _problem(str(exc), _LISTEN_FIX) from None
        return value

    @field_validator("state_dir", "catalog")
    @classmethod
    def _valid_path(cls, value: Path | None) -> Path | None:
        # The OS refuses these only when the file is opened: say so at load, with the key.
        if value is None:
            return None
        if "\x00" in str(value):
            raise _problem("a path cannot contain a NUL character", "remove it from the path")
        try:
            value.expanduser()
        except RuntimeError:  # "~name/..." for a user this machine does not know
            raise _problem(
                f"cannot expand {str(value)!r}: no home directory for that user",
                "give an absolute path, or one relative to the config file's folder",
            ) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
            raise _problem(
                f"unknown time zone {value!r}",
                'use an IANA name, like "UTC", "Europe/Paris" or "America/New_York"',
            ) from None
        return value

    # --- derived values -------------------------------------------------------------------

    @property
    def listen_address(self) -> tuple[str, int]:
        return parse_listen(self.listen)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def state_path(self, config_file: Path | None) -> Path:
        """The state directory (SQLite ledger); relative paths are from the config file's
        folder, or the working directory when there is no file (demo mode)."""
        path = self.state_dir.expanduser()
        if path.is_absolute() or config_file is None:
            return path
        return config_file.parent / path

    def catalog_path(self, config_file: Path | None) -> Path | None:
        if self.catalog is None:
            return None
        path = self.catalog.expanduser()
        if path.is_absolute() or config_file is None:
            return path
        return config_file.parent / path

    def load_catalog(self, config_file: Path | None) -> Catalog:
        """The catalog this config uses (`catalog`, else the packaged one)."""
        try:
            return load_catalog(self.catalog_path(config_file))
        except CatalogError as exc:
            source = str(config_file) if config_file else "<config>"
            # The catalog's message already names its own file and key paths; keep one line.
            message = " ".join(line.strip() for line in str(exc).splitlines())
            raise ConfigError(source, [Problem("catalog", message)]) from None

    def prompt_text(self, name: str) -> str:
        """A custom prompt's text, else a built-in one's. KeyError for an unknown name."""
        if name in self.prompts:
            return self.prompts[name]
        return PROMPTS[name]

    def max_tokens_for(self, comparison: Comparison) -> int:
        return comparison.max_tokens or self.defaults.max_tokens

    def comparison(self, name: str) -> Comparison:
        for comparison in self.comparisons:
            if comparison.name == name:
                return comparison
        raise KeyError(name)

    def resolved_providers(self, catalog: Catalog) -> dict[str, ProviderEntry]:
        """Every provider listed under `providers` as a validated catalog entry: catalog
        entries with the overrides applied, custom ones built from their fields."""
        resolved, problems = _resolve_providers(self, catalog)
        if problems:
            raise ConfigError("<config>", problems)
        return resolved

    def round_cost_worst_case(
        self, comparison: Comparison, providers: Mapping[str, ProviderEntry]
    ) -> float | None:
        """Upper bound of one round (every provider x every prompt, once) in dollars;
        None when a provider has no price for the model."""
        total = 0.0
        for name in comparison.providers:
            for prompt in comparison.prompts:
                cost = worst_case_probe_cost(
                    providers[name],
                    comparison.model,
                    self.prompt_text(prompt),
                    self.max_tokens_for(comparison),
                )
                if cost is None:
                    return None
                total += cost
        return total

    @property
    def monthly_allowance(self) -> float:
        """Dollars per month budget-derived schedules spread: the tighter of the global
        monthly cap and 30 x the global daily cap, else DEFAULT_MONTHLY_ALLOWANCE."""
        caps = self.budget.global_
        limits = [caps.monthly] if caps.monthly is not None else []
        if caps.daily is not None:
            limits.append(caps.daily * 30)
        return min(limits) if limits else DEFAULT_MONTHLY_ALLOWANCE

    def effective_interval(self, comparison: Comparison, round_cost_worst_case: float) -> float:
        """Seconds between rounds. An interval schedule gives its interval; a cron schedule
        its average spacing. Without a schedule the monthly allowance is shared evenly by
        all comparisons: max(60 s, 30 days x round cost / (allowance / comparisons)),
        at most 30 days."""
        schedule = comparison.schedule
        if schedule is not None and schedule.interval is not None:
            return schedule.interval
        if schedule is not None and schedule.cron is not None:
            rounds = _cron_rounds_per_month(schedule.cron, self.zone)
            return MONTH_SECONDS / rounds if rounds > 0 else MAX_DERIVED_INTERVAL
        if round_cost_worst_case <= 0:
            return MIN_DERIVED_INTERVAL
        share = self.monthly_allowance / max(1, len(self.comparisons))
        if share <= 0:
            return MAX_DERIVED_INTERVAL
        interval = MONTH_SECONDS * round_cost_worst_case / share
        return min(MAX_DERIVED_INTERVAL, max(MIN_DERIVED_INTERVAL, interval))

    def rounds_per_month(self, comparison: Comparison, round_cost_worst_case: float) -> float:
        """Rounds in 30 days at most (jitter only delays firings, so it is ignored)."""
        return MONTH_SECONDS / self.effective_interval(comparison, round_cost_worst_case)


def worst_case_probe_cost(
    entry: ProviderEntry, model: str, prompt_text: str, max_tokens: int
) -> float | None:
    """What one probe can cost at most: the prompt uncached plus `max_tokens` of output."""
    price = entry.price(model)
    if price is None:
        return None
    return price.probe_worst_case(prompt_text, max_tokens)


# --- provider resolution --------------------------------------------------------------------


def _used_models(config: Config, provider: str) -> list[str]:
    models: list[str] = []
    for comparison in config.comparisons:
        if provider in comparison.providers and comparison.model not in models:
            models.append(comparison.model)
    return models


def _resolve_one(
    name: str, override: ProviderConfig, config: Config, catalog: Catalog
) -> ProviderEntry | list[Problem]:
    update = override.overrides()
    base = catalog.providers.get(name)
    if base is not None:
        if "models" in update:
            update["models"] = {**base.models, **update["models"]}
        data = base.model_copy(update=update).model_dump()
    else:
        has_url = update.get("base_url") is not None or update.get("base_url_env") is not None
        if not has_url or update.get("wire") is None:
            missing = [
                key
                for key, ok in (("base_url", has_url), ("wire", update.get("wire") is not None))
                if not ok
            ]
            return [
                Problem(
                    f"providers.{name}",
                    f"{name!r} is not in the catalog{_close(name, catalog.names)}, so it is a "
                    f"custom provider and needs {' and '.join(missing)}",
                    "give base_url and wire for a custom provider (e.g. base_url: "
                    '"http://localhost:8000/v1", wire: openai), or use a catalog provider: '
                    + ", ".join(catalog.names),
                )
            ]
        models = update.get("models")
        if not models:
            # Canonical-looking names only: a raw id like org/Model cannot be a models key.
            used = [m for m in _used_models(config, name) if re.match(_MODEL_NAME_PATTERN, m)]
            models = {model: ModelEntry(id=model) for model in used}
        if not models:
            return [
                Problem(
                    f"providers.{name}.models",
                    "a custom provider needs at least one model",
                    "add models: {CANONICAL_NAME: {id: SERVER_MODEL_ID}}, or use the provider "
                    "in a comparison with a canonical model name",
                )
            ]
        data = {
            "display_name": name,
            "hardware": "unknown",
            "api_key_env": None,
            "base_url": None,
            **update,
            "models": models,
        }
        data.setdefault("default_model", next(iter(models)))
    try:
        return ProviderEntry.model_validate(data)
    except ValidationError as exc:
        return _pydantic_problems(exc, ("providers", name), ProviderEntry)


def _resolve_providers(
    config: Config, catalog: Catalog
) -> tuple[dict[str, ProviderEntry], list[Problem]]:
    resolved: dict[str, ProviderEntry] = {}
    problems: list[Problem] = []
    for name, override in config.providers.items():
        result = _resolve_one(name, override, config, catalog)
        if isinstance(result, list):
            problems.extend(result)
        else:
            resolved[name] = result
    return resolved, problems


# --- checks across keys ---------------------------------------------------------------------


def _check(config: Config, catalog: Catalog) -> list[Problem]:
    problems: list[Problem] = []
    builtin = ", ".join(PROMPTS)

    for name, text in config.prompts.items():
        if name in PROMPTS:
            problems.append(
                Problem(
                    f"prompts.{name}",
                    f"{name!r} is a built-in prompt and cannot be redefined",
                    "give the custom prompt another name; built-in prompts keep their text so "
                    "results stay comparable",
                )
            )
        elif not text.strip():
            problems.append(Problem(f"prompts.{name}", "the prompt text is empty"))

    resolved, resolve_problems = _resolve_providers(config, catalog)
    problems.extend(resolve_problems)

    if not config.comparisons:
        problems.append(
            Problem(
                "comparisons",
                "nothing to probe: no comparisons",
                "add one, e.g. {name: groq-8b, model: llama-3.1-8b, providers: [groq]}",
            )
        )
    known_providers = sorted({*config.providers, *catalog.names})
    first_seen: dict[str, int] = {}
    for index, comparison in enumerate(config.comparisons):
        where = f"comparisons[{index}]"
        if comparison.name in first_seen:
            problems.append(
                Problem(
                    f"{where}.name",
                    f"duplicate comparison name {comparison.name!r} "
                    f"(also comparisons[{first_seen[comparison.name]}])",
                    "give each comparison a unique name",
                )
            )
        else:
            first_seen[comparison.name] = index

        seen_providers: set[str] = set()
        for p_index, provider in enumerate(comparison.providers):
            at = f"{where}.providers[{p_index}]"
            if provider in seen_providers:
                problems.append(
                    Problem(
                        at,
                        f"provider {provider!r} is listed twice",
                        "list each provider once; rounds alternate the order by themselves",
                    )
                )
            seen_providers.add(provider)
            if provider in config.providers:
                continue
            if provider in catalog.providers:
                problems.append(
                    Problem(
                        at,
                        f"provider {provider!r} is not listed under providers",
                        f"add `{provider}: {{}}` under providers",
                    )
                )
            else:
                problems.append(
                    Problem(
                        at,
                        f"unknown provider {provider!r}{_close(provider, known_providers)}: it "
                        "is neither listed under providers nor in the catalog",
                        "list it under providers: a catalog provider as `NAME: {}` ("
                        + ", ".join(catalog.names)
                        + "), or a custom one with base_url and wire",
                    )
                )

        prompt_names = [*PROMPTS, *config.prompts]
        seen_prompts: set[str] = set()
        for q_index, prompt in enumerate(comparison.prompts):
            at = f"{where}.prompts[{q_index}]"
            if prompt in seen_prompts:
                problems.append(Problem(at, f"prompt {prompt!r} is listed twice"))
            seen_prompts.add(prompt)
            if prompt not in prompt_names:
                problems.append(
                    Problem(
                        at,
                        f"unknown prompt {prompt!r}{_close(prompt, prompt_names)}",
                        f"use a built-in prompt ({builtin}) or define it under prompts",
                    )
                )

        schedule = comparison.schedule
        if schedule is None:
            problems.extend(_check_derivable(config, index, comparison, resolved))
        elif (schedule.interval is None) == (schedule.cron is None):
            both = schedule.interval is not None
            problems.append(
                Problem(
                    f"{where}.schedule",
                    "both interval and cron are given" if both else "no interval or cron given",
                    'give exactly one: {interval: 15m, jitter: 1m} or {cron: "*/15 * * * *"}; '
                    "or leave schedule out for a budget-derived interval",
                )
            )
        elif (
            schedule.interval is not None
            and schedule.jitter is not None
            and schedule.jitter >= schedule.interval
        ):
            problems.append(
                Problem(
                    f"{where}.schedule.jitter",
                    f"jitter {format_duration(schedule.jitter)} is not shorter than the "
                    f"interval {format_duration(schedule.interval)}",
                    "use a jitter well below the interval, e.g. a tenth of it",
                )
            )

    for name in config.budget.providers:
        if name not in config.providers:
            problems.append(
                Problem(
                    f"budget.providers.{name}",
                    f"provider {name!r} is not listed under providers",
                    f"add `{name}: {{}}` under providers, or remove this cap",
                )
            )

    limits = config.rate_limits
    if limits.backoff_initial > limits.backoff_max:
        problems.append(
            Problem(
                "rate_limits.backoff_initial",
                f"{format_duration(limits.backoff_initial)} is longer than backoff_max "
                f"{format_duration(limits.backoff_max)}",
                "make backoff_initial at most backoff_max",
            )
        )
    throttling = config.throttling
    if throttling.min_samples > throttling.window:
        problems.append(
            Problem(
                "throttling.min_samples",
                f"{throttling.min_samples} is more than the window of {throttling.window} "
                "samples, so no probe would ever be flagged",
                "make min_samples at most window",
            )
        )
    return problems


def _check_derivable(
    config: Config, index: int, comparison: Comparison, resolved: Mapping[str, ProviderEntry]
) -> list[Problem]:
    """A budget-derived interval needs every price; an unknown one would read as free and
    probe a paid provider every minute."""
    for name in comparison.providers:
        entry = resolved.get(name)
        if entry is None or entry.price(comparison.model) is not None:
            continue
        fix = "give a schedule"
        if re.match(_MODEL_NAME_PATTERN, comparison.model):
            fix += f", or a price under providers.{name}.models.{comparison.model}"
        return [
            Problem(
                f"comparisons[{index}]",
                f"no schedule, and a budget-derived interval needs prices, but {name!r} has "
                f"none for {comparison.model!r}",
                fix,
            )
        ]
    return []


# --- pydantic errors as problems ------------------------------------------------------------


def format_loc(loc: Sequence[int | str]) -> str:
    """("comparisons", 0, "schedule", "interval") -> "comparisons[0].schedule.interval"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            out += f".{part}" if out else part
        else:
            out += '["' + "".join(map(_escape_char, part)) + '"]'
    return out


def _escape_char(char: str) -> str:
    """A character of a quoted key in a path: quotes, backslashes and anything unprintable
    (line breaks, control characters) escaped, so a path stays on one line."""
    if char in '"\\':
        return "\\" + char
    if char.isprintable():
        return char
    code = ord(char)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def _unwrap(annotation: Any) -> Any:
    """The model, dict or sequence type inside Annotated[...] / X | None."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or origin is UnionType:
            options = [arg for arg in get_args(annotation) if arg is not type(None)]
            annotation = options[0] if len(options) == 1 else Any
        else:
            return annotation


def _model_at(root: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next(
                (f for n, f in current.model_fields.items() if (f.alias or n) == part), None
            )
            if field is None:
                return None
            current = field.annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif get_origin(current) in (list, tuple):
            current = get_args(current)[0]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _describe(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _error_problem(
    error: Mapping[str, Any], loc: tuple[int | str, ...], root: type[BaseModel]
) -> Problem:
    kind: str = error["type"]
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    if "problem" in ctx:
        return Problem(format_loc(loc), str(ctx["problem"]), ctx.get("fix"))
    if kind == "extra_forbidden":
        key = str(loc[-1])
        model = _model_at(root, loc[:-1])
        allowed = _keys_of(model) if model else []
        hint = f"use one of: {', '.join(allowed)}{_close(key, allowed)}" if allowed else None
        return Problem(format_loc(loc), f"unknown key {key!r}", hint)
    if kind == "missing":
        return Problem(format_loc(loc[:-1]), f"required key {str(loc[-1])!r} is missing")
    if {"api_key_env", "api_key_env_fallbacks"} & {part for part in loc if isinstance(part, str)}:
        # People paste the key itself here: never echo the value.
        return Problem(
            format_loc(loc),
            "not an environment variable name (value not shown: it may be a key)",
            "give the name of the variable that holds the key, like GROQ_API_KEY, never the key",
        )
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]  # the key itself is wrong: its path is where it stands
    fix: str | None = None
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        message = f"expected a mapping (key: value), got {_describe(value)}"
        if tuple(loc) == ("providers",):
            fix = "write one `NAME: {}` per provider, like `groq: {}`"
    elif kind in ("list_type", "tuple_type"):
        message = f"expected a list, got {_describe(value)}"
        if isinstance(value, str) and re.fullmatch(r"[\w.@:/+-]+(\s*,\s*[\w.@:/+-]+)*", value):
            fix = f"write [{value}]"
        elif isinstance(value, str):
            fix = "write a YAML list, like [a, b]"
    elif kind == "string_type":
        message = f"expected a string, got {_describe(value)}"
    elif kind == "path_type":
        message = f"expected a path (a string), got {_describe(value)}"
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        message = f"expected a whole number, got {_describe(value)}"
    elif kind in ("float_type", "float_parsing", "finite_number"):
        message = f"expected a finite number, got {_describe(value)}"
    elif kind in ("bool_type", "bool_parsing"):
        message = f"expected true or false, got {_describe(value)}"
    elif kind in ("date_type", "date_parsing", "date_from_datetime_parsing"):
        message = f"expected a date like 2026-11-22, got {_describe(value)}"
    elif kind == "literal_error":
        message = f"must be one of {ctx.get('expected')}, got {_describe(value)}"
    elif kind == "greater_than_equal":
        message = f"must be at least {_number(ctx.get('ge'))}, got {_describe(value)}"
        if loc and loc[0] == "budget":
            fix = "a cap is dollars >= 0: use 0 to allow no spending, or leave it out for no cap"
    elif kind == "greater_than":
        message = f"must be more than {_number(ctx.get('gt'))}, got {_describe(value)}"
    elif kind == "too_short":
        need = ctx.get("min_length", 1)
        noun = {"providers": "provider", "prompts": "prompt"}.get(str(loc[-1]), "item")
        message = f"needs at least {need} {noun}{'s' if need != 1 else ''}"
        if noun == "provider":
            fix = "list the providers to compare, like [cerebras, groq]"
    elif kind == "string_too_short":
        message = "must not be empty"
    elif kind == "string_pattern_mismatch":
        noun, fix = _PATTERNS.get(ctx.get("pattern", ""), ("value", None))
        message = f"invalid {noun} {_describe(value)}"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        if kind != "value_error":
            message += f" (got {_describe(value)})"
    return Problem(format_loc(loc), message, fix)


def _pydantic_problems(
    exc: ValidationError, prefix: tuple[int | str, ...], root: type[BaseModel]
) -> list[Problem]:
    return [
        _error_problem(error, prefix + tuple(error["loc"]), root)
        for error in exc.errors(include_url=False)
    ]


# --- YAML -----------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                continue  # unhashable; the schema rejects it later
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {first})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError, text: str) -> Problem:
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML refuses anywhere
        before = text[: exc.position]
        where = f"line {before.count(chr(10)) + 1}, column {len(before.rpartition(chr(10))[2]) + 1}"
        code = (
            exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
        )
        escape = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
        return Problem(
            where,
            f"invalid YAML: character U+{code:04X} is not allowed ({exc.reason})",
            f'delete it, or write it as "{escape}" inside a double-quoted string',
        )
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        message = exc.problem or "invalid YAML"
        if exc.context:
            context_line = f" on line {exc.context_mark.line + 1}" if exc.context_mark else ""
            message += f" ({exc.context}{context_line})"
        fix: str | None = None
        if "duplicate key" in message:
            fix = "keep one of the two entries"
        elif "<block end>" in message or "mapping values" in message:
            fix = "check the indentation: keys of one mapping must line up"
        elif "alias" in message or "'*'" in message:
            fix = 'quote values that start with "*", like cron: "*/15 * * * *"'
        return Problem(where, f"invalid YAML: {message}", fix)
    return Problem("", f"invalid YAML: {exc}")


def parse_yaml(text: str, source: str) -> object:
    """YAML text to data; syntax errors (and duplicate keys) become a ConfigError."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        raise ConfigError(source, [_yaml_problem(exc, text)]) from None


# --- entry points ---------------------------------------------------------------------------


def top_level_mapping(data: object, source: str, *, empty_fix: str) -> dict[str, Any]:
    """Parsed YAML as the mapping of settings a config file must be, or its ConfigError."""
    if data is None:
        raise ConfigError(source, [Problem("", "the file is empty", empty_fix)])
    if not isinstance(data, dict):
        raise ConfigError(
            source,
            [
                Problem(
                    "", f"expected a mapping of settings at the top level, got {_describe(data)}"
                )
            ],
        )
    return data


def parse_config(
    data: object,
    source: str,
    *,
    config_file: Path | None = None,
    catalog: Catalog | None = None,
) -> Config:
    """Validate parsed YAML. `source` names the file in messages; `config_file`'s folder
    resolves a relative `catalog` path; `catalog` replaces the one the config names."""
    data = top_level_mapping(data, source, empty_fix="start from config/speed-kings.example.yaml")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _pydantic_problems(exc, (), Config)) from None
    if catalog is None:
        try:
            catalog = config.load_catalog(config_file)
        except ConfigError as exc:
            raise ConfigError(source, exc.problems) from None
    problems = _check(config, catalog)
    if problems:
        raise ConfigError(source, problems)
    return config


def load_config(path: Path) -> Config:
    """Read and validate a config file; any problem raises ConfigError naming the file."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            source,
            [
                Problem(
                    "",
                    "config file not found",
                    "check the path, or start from config/speed-kings.example.yaml",
                )
            ],
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = (exc.strerror or type(exc).__name__) if isinstance(exc, OSError) else "not UTF-8"
        raise ConfigError(source, [Problem("", f"cannot read the config file: {reason}")]) from None
    return parse_config(parse_yaml(text, source), source, config_file=path)


# --- demo -----------------------------------------------------------------------------------


def demo_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` plus the simulator's fake key, for resolving demo providers' keys."""
    return {**environ, DEMO_KEY_ENV: DEMO_KEY}


def demo_config(simulator_url: str, *, catalog: Catalog | None = None) -> Config:
    """The `--demo` config: every simulated provider (demo.DEMO_PROVIDERS) as a custom
    provider on the simulator, with its real counterpart's hardware and price; providers
    serving the same model compared with each other, the others probed alone.
    Their key is read from DEMO_KEY_ENV: resolve keys with `demo_environ(os.environ)`."""
    catalog = catalog if catalog is not None else load_catalog()
    base = simulator_url.rstrip("/")
    providers: dict[str, Any] = {}
    by_model: dict[str, list[str]] = {}
    for demo in DEMO_PROVIDERS:
        real = catalog.get(demo.counterpart)
        real_model = real.models.get(demo.model)
        price = real_model.price if real_model and real_model.price else real.default_price
        model: dict[str, Any] = {"id": real.model_id(demo.model)}
        if price is not None:
            model["price"] = price
        providers[demo.name] = {
            "display_name": f"{real.display_name} (simulated)",
            "base_url": f"{base}/{demo.profile}{WIRE_BASE_SUFFIX[demo.wire]}",
            "wire": demo.wire,
            "hardware": real.hardware,
            "api_key_env": DEMO_KEY_ENV if real.needs_key else None,
            "models": {demo.model: model},
        }
        by_model.setdefault(demo.model, []).append(demo.name)
    comparisons = [
        {
            "name": "sim-" + "-vs-".join(name.removeprefix("sim-") for name in names),
            "model": model_name,
            "providers": names,
            "schedule": {"interval": "10s", "jitter": "2s"},
        }
        for model_name, names in by_model.items()
    ]
    data = {
        "defaults": {"max_tokens": 120},
        "concurrency": 2,
        # The demo's simulator slows some responses down 4x: flag them after a short baseline.
        "throttling": {"factor": 2.5, "window": 20, "min_samples": 3},
        "providers": providers,
        "comparisons": comparisons,
        # Caps that a long demo does reach, so budget panels and alerts show something.
        "budget": {
            "global": {"daily": 5.0, "monthly": 50.0},
            "providers": {"sim-anthropic": {"daily": 2.0}},
        },
    }
    return parse_config(data, "<demo>", catalog=catalog)
