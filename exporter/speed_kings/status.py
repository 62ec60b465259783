"""What the daemon shows about itself: the contract between the daemon and its web pages."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ProviderRow:
    name: str
    hardware: str
    wire: str
    status: str  # "configured (GROQ_API_KEY)", "not configured: set GROQ_API_KEY", ...
    probed: bool  # configured and used by at least one comparison
    simulated: bool = False


@dataclass(frozen=True, slots=True)
class BudgetRow:
    scope: str  # "global" or a provider name
    period: str  # "day" or "month"
    limit_dollars: float | None  # None: no cap
    spent_dollars: float


@dataclass(frozen=True, slots=True)
class CooldownRow:
    provider: str
    until: float  # wall clock, Unix seconds
    reason: str


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    version: str
    started_at: float  # wall clock
    now: float  # wall clock
    config_path: str
    demo: bool
    last_reload_ok: bool
    last_reload_error: str | None
    providers: list[ProviderRow] = field(default_factory=list)
    # Last result per (provider, model, prompt), then the most recent probes (newest first),
    # each a `ProbeResult.to_dict()` plus "finished_at" (wall clock): already redacted.
    last_results: list[dict[str, Any]] = field(default_factory=list)
    recent_probes: list[dict[str, Any]] = field(default_factory=list)
    budget: list[BudgetRow] = field(default_factory=list)
    cooldowns: list[CooldownRow] = field(default_factory=list)
    # Why the budget ledger cannot be used (None: it can). Paid providers are paused then.
    ledger_error: str | None = None


class StatusSource(Protocol):
    """Implemented by the daemon; consumed by `speed_kings.web`."""

    def snapshot(self) -> StatusSnapshot: ...

    def ready(self) -> tuple[bool, str]:
        """(ready, reason): ready once configuration is loaded and the scheduler runs."""
        ...

    def render_metrics(self) -> tuple[Iterable[bytes], str]:
        """(body in chunks, content type) of the Prometheus exposition. The chunks may be
        rendered lazily, as the response asks for them."""
        ...

    async def reload(self) -> tuple[bool, str]:
        """Reloads the config file; on an invalid file keeps the old config. (ok, message)."""
        ...
