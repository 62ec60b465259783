"""A `StatusSource` test double, and realistic snapshots built from real `ProbeResult`s."""

from __future__ import annotations

from typing import Any

from speed_kings.result import Outcome, ProbeResult, TokenUsage
from speed_kings.status import BudgetRow, CooldownRow, ProviderRow, StatusSnapshot

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class FakeStatus:
    """Everything settable; `reload_calls` counts reloads."""

    def __init__(self, snapshot: StatusSnapshot | None = None) -> None:
        self.status = snapshot if snapshot is not None else empty_snapshot()
        self.readiness: tuple[bool, str] = (True, "")
        self.reload_result: tuple[bool, str] = (True, "configuration reloaded")
        self.reload_error: Exception | None = None
        self.reload_calls = 0
        self.metrics: tuple[list[bytes], str] = ([b"speedkings_build_info 1\n"], METRICS_TYPE)

    def snapshot(self) -> StatusSnapshot:
        return self.status

    def ready(self) -> tuple[bool, str]:
        return self.readiness

    def render_metrics(self) -> tuple[list[bytes], str]:
        return self.metrics

    async def reload(self) -> tuple[bool, str]:
        self.reload_calls += 1
        if self.reload_error is not None:
            raise self.reload_error
        return self.reload_result


def empty_snapshot(**overrides: Any) -> StatusSnapshot:
    fields: dict[str, Any] = {
        "version": "0.1.0",
        "started_at": NOW - 3725,
        "now": NOW,
        "config_path": "/etc/speed-kings/config.yaml",
        "demo": False,
        "last_reload_ok": True,
        "last_reload_error": None,
    }
    return StatusSnapshot(**(fields | overrides))


def probe(
    provider: str,
    model: str = "llama-3.1-8b",
    prompt: str = "short",
    *,
    outcome: Outcome = Outcome.SUCCESS,
    ttft: float | None = 0.2345,
    finished_ago: float = 10.0,
    error: str | None = None,
    http_status: int | None = 200,
    estimated: bool = False,
) -> dict[str, Any]:
    """One `ProbeResult.to_dict()` plus "finished_at", as the daemon stores it."""
    duration = None if ttft is None else ttft + 0.5
    result = ProbeResult(
        provider=provider,
        model=model,
        provider_model=model,
        prompt=prompt,
        wire="openai",
        nonce="n0nce",
        started_at=NOW - finished_ago - (duration or 0.0),
        outcome=outcome,
        http_status=http_status,
        error=error,
        time_to_headers=None if ttft is None else ttft / 2,
        time_to_first_token=ttft,
        time_to_first_answer_token=None if ttft is None else ttft + 0.01,
        time_to_last_token=duration,
        request_duration=duration,
        tokens=TokenUsage(
            input=42,
            output=None if ttft is None else 128,
            source="estimated" if estimated else "reported",
        ),
        cost_usd=None if ttft is None else 0.0000123,
        cost_source=None if ttft is None else "pricing",
    )
    return result.to_dict() | {"finished_at": NOW - finished_ago}


def busy_snapshot(**overrides: Any) -> StatusSnapshot:
    """Every table populated, including hostile text and failures."""
    last = [
        probe("cerebras", ttft=0.0871, finished_ago=4),
        probe("groq", ttft=0.1432, finished_ago=9, estimated=True),
        probe(
            "sambanova",
            outcome=Outcome.RATE_LIMITED,
            ttft=None,
            http_status=429,
            error="429 Too Many Requests: retry after 30s",
            finished_ago=61,
        ),
    ]
    recent = [
        *last,
        probe(
            "together",
            outcome=Outcome.TIMEOUT,
            ttft=None,
            http_status=None,
            error="stalled 30.0s after 12 chunks",
            finished_ago=125,
        ),
        probe(
            "fireworks",
            outcome=Outcome.PROTOCOL_ERROR,
            ttft=None,
            http_status=200,
            error='bad chunk: {"error": <b>upstream</b>}\nline two of the detail',
            finished_ago=300,
        ),
    ]
    fields: dict[str, Any] = {
        "providers": [
            ProviderRow("cerebras", "WSE", "openai", "configured (CEREBRAS_API_KEY)", True),
            ProviderRow("groq", "LPU", "openai", "configured (GROQ_API_KEY)", True),
            ProviderRow("sambanova", "RDU", "openai", "configured (SAMBANOVA_API_KEY)", True),
            ProviderRow("openai", "GPU", "openai", "not configured: set OPENAI_API_KEY", False),
            ProviderRow("local", "local", "ollama", "configured", True, simulated=True),
        ],
        "last_results": last,
        "recent_probes": recent,
        "budget": [
            BudgetRow("global", "day", 1.0, 0.42),
            BudgetRow("global", "month", 20.0, 18.5),
            BudgetRow("groq", "day", None, 0.0123),
        ],
        "cooldowns": [CooldownRow("sambanova", NOW + 29, "429 Retry-After: 30")],
    }
    return empty_snapshot(**(fields | overrides))
