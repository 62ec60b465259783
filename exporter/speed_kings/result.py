"""What one probe measured. Every time is seconds from t0, taken just before the request
is sent, on the monotonic clock; None means the probe never reached that point."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal


class Outcome(StrEnum):
    SUCCESS = "success"
    RATE_LIMITED = "rate_limited"  # 429, or a mid-stream rate-limit error
    OVERLOADED = "overloaded"  # 503 / 529, or a mid-stream overload error
    HTTP_ERROR = "http_error"  # any other error status, or an error event inside a 200 stream
    TIMEOUT = "timeout"  # total deadline or a stall longer than the read timeout
    CONNECTION_ERROR = "connection_error"  # DNS, refused, reset, closed early
    PROTOCOL_ERROR = "protocol_error"  # garbage, oversize, no terminator and no usage...
    SKIPPED_BUDGET = "skipped_budget"
    SKIPPED_COOLDOWN = "skipped_cooldown"


TokenSource = Literal["reported", "estimated"]


@dataclass(slots=True)
class TokenUsage:
    """Token counts. `output` counts every generated token, reasoning included
    (`reasoning` is the part of `output` spent thinking)."""

    input: int | None = None
    output: int | None = None
    reasoning: int | None = None
    cached_input: int | None = None
    source: TokenSource | None = None


@dataclass(slots=True)
class ConnectionPhases:
    """Connection set-up, seconds. `reused` is True when no new connection was opened."""

    dns_seconds: float | None = None
    connect_seconds: float | None = None
    tls_seconds: float | None = None
    reused: bool = False


@dataclass(slots=True)
class RateLimitInfo:
    """Quota signals from response headers/bodies, keyed by what they count
    (`requests`, `tokens`, `input_tokens`, `output_tokens`, `requests_day`, `tokens_minute`)."""

    limit: dict[str, float] = field(default_factory=dict)
    remaining: dict[str, float] = field(default_factory=dict)
    reset_seconds: dict[str, float] = field(default_factory=dict)
    retry_after_seconds: float | None = None

    def cooldown_seconds(self) -> float | None:
        """How long the provider asked us to wait, if it said."""
        if self.retry_after_seconds is not None:
            return self.retry_after_seconds
        exhausted = [
            self.reset_seconds[k]
            for k, v in self.remaining.items()
            if v <= 0 and k in self.reset_seconds
        ]
        return max(exhausted) if exhausted else None


@dataclass(slots=True)
class ProbeResult:
    provider: str
    model: str  # canonical model name
    provider_model: str  # the id sent on the wire
    prompt: str  # prompt name (short, medium, long, custom)
    wire: str
    nonce: str
    started_at: float  # wall clock, Unix seconds, at t0
    outcome: Outcome = Outcome.PROTOCOL_ERROR
    http_status: int | None = None
    error: str | None = None  # redacted
    request_id: str | None = None
    time_to_headers: float | None = None
    time_to_first_token: float | None = None
    time_to_first_answer_token: float | None = None
    time_to_last_token: float | None = None
    request_duration: float | None = None
    chunks: int = 0  # chunks that carried generated text
    generated_chars: int = 0
    tokens: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float | None = None
    cost_source: Literal["reported", "pricing"] | None = None
    server_timings: dict[str, float] = field(default_factory=dict)
    model_load_seconds: float | None = None
    phases: ConnectionPhases = field(default_factory=ConnectionPhases)
    rate_limit: RateLimitInfo = field(default_factory=RateLimitInfo)
    finish_reason: str | None = None

    @property
    def generation_seconds(self) -> float | None:
        if self.time_to_first_token is None or self.time_to_last_token is None:
            return None
        return self.time_to_last_token - self.time_to_first_token

    @property
    def output_tokens_per_second(self) -> float | None:
        """(output tokens - 1) / (t_last - t_first): speed after the first chunk."""
        n, span = self.tokens.output, self.generation_seconds
        if n is None or n < 2 or span is None or span <= 0:
            return None
        return (n - 1) / span

    @property
    def time_per_output_token(self) -> float | None:
        n, span = self.tokens.output, self.generation_seconds
        if n is None or n < 2 or span is None or span <= 0:
            return None
        return span / (n - 1)

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON shape of one run (`speed-kings probe --format json`)."""
        return {
            "provider": self.provider,
            "model": self.model,
            "provider_model": self.provider_model,
            "prompt": self.prompt,
            "wire": self.wire,
            "outcome": self.outcome.value,
            "http_status": self.http_status,
            "error": self.error,
            "request_id": self.request_id,
            "nonce": self.nonce,
            "started_at": self.started_at,
            "time_to_headers_seconds": self.time_to_headers,
            "time_to_first_token_seconds": self.time_to_first_token,
            "time_to_first_answer_token_seconds": self.time_to_first_answer_token,
            "time_to_last_token_seconds": self.time_to_last_token,
            "request_duration_seconds": self.request_duration,
            "output_tokens_per_second": self.output_tokens_per_second,
            "time_per_output_token_seconds": self.time_per_output_token,
            "input_tokens": self.tokens.input,
            "output_tokens": self.tokens.output,
            "reasoning_tokens": self.tokens.reasoning,
            "cached_input_tokens": self.tokens.cached_input,
            "tokens_estimated": self.tokens.source == "estimated",
            "chunks": self.chunks,
            "cost_usd": self.cost_usd,
            "cost_source": self.cost_source,
            "model_load_seconds": self.model_load_seconds,
            "server_timings": dict(self.server_timings),
            "connection": asdict(self.phases),
            "rate_limit": asdict(self.rate_limit),
            "finish_reason": self.finish_reason,
        }
