"""Simulated provider profiles: how fast, in which shape and how often things go wrong.

Numbers for the named providers are plausible public figures (2025-2026), not measurements;
wire quirks follow `reference/providers.md`. Test-oriented profiles (`fast`, `crlf`,
`reasoning`) have no jitter and no diurnal load so tests can assert tight tolerances.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal

Wire = Literal["openai", "anthropic", "gemini", "ollama"]
WIRES: tuple[Wire, ...] = ("openai", "anthropic", "gemini", "ollama")

FAULTS: tuple[str, ...] = (
    "rate_limit",
    "overloaded",
    "overloaded_529",
    "server_error",
    "midstream_error",
    "reset",
    "stall",
    "garbage",
    "huge",
    "truncated",
    "empty",
)

UsagePlacement = Literal["separate", "finish", "choice", "x_groq", "last", "none"]
ServerTimings = Literal["none", "cerebras", "groq", "sambanova", "fireworks"]
RoleChunk = Literal["none", "openai", "deepseek"]
RateLimitHeaders = Literal["none", "openai", "groq", "cerebras", "anthropic"]
CacheFields = Literal["openai", "deepseek"]


def _frozen(mapping: Mapping[str, float] | None = None) -> Mapping[str, float]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Profile:
    """One simulated provider. Every field has a default so tests can build small ones."""

    name: str = "custom"
    description: str = ""
    wire: Wire = "openai"  # the wire it imitates (all wires are served for every profile)
    model: str = "sim-model"  # listed by Ollama /api/tags
    ttft_seconds: float = 0.05
    ttft_jitter: float = 0.0  # +- fraction of ttft, seeded
    tokens_per_second: float = 1000.0
    tokens_per_second_jitter: float = 0.0  # +- fraction, seeded
    tokens_per_chunk: int = 1
    output_tokens: int | None = None  # None: as many as the request's max_tokens
    default_max_tokens: int = 256  # when the request sets no limit
    reasoning_tokens: int = 0  # emitted first, counted inside output tokens
    reasoning_field: Literal["reasoning", "reasoning_content"] = "reasoning"
    usage_placement: UsagePlacement = "separate"
    cache_fields: CacheFields = "openai"  # deepseek adds prompt_cache_hit/miss_tokens
    server_timings: ServerTimings = "none"
    role_only_first_chunk: RoleChunk = "openai"  # "none": role rides on the first text delta
    repeat_role: bool = False
    keepalive: str | None = None  # SSE comment sent while waiting for the first token
    keepalive_interval: float = 0.5
    headers_at_first_token: bool = False  # hold the status line until the first token is due
    line_ending: Literal["\n", "\r\n"] = "\n"
    data_prefix: Literal["data: ", "data:"] = "data: "
    send_done: bool = True
    rate_limit_headers: RateLimitHeaders = "none"
    diurnal_amplitude: float = 0.0
    # Provider-side throttling: this share of requests is served `slowdown_factor` times
    # slower (TTFT longer, tokens/s lower), for throttling detection to find.
    slowdown_rate: float = 0.0
    slowdown_factor: float = 4.0
    fault_rates: Mapping[str, float] = field(default_factory=_frozen)
    model_load_seconds: float = 0.0
    require_auth: bool = True
    price_input_per_million: float = 0.0  # for OpenRouter-style usage.cost
    price_output_per_million: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens_per_second <= 0:
            raise ValueError(f"profile {self.name}: tokens_per_second must be > 0")
        if self.tokens_per_chunk < 1:
            raise ValueError(f"profile {self.name}: tokens_per_chunk must be >= 1")
        if self.ttft_seconds < 0 or self.keepalive_interval <= 0:
            raise ValueError(f"profile {self.name}: ttft must be >= 0, keepalive_interval > 0")
        if not (0 <= self.ttft_jitter < 1 and 0 <= self.tokens_per_second_jitter < 1):
            raise ValueError(f"profile {self.name}: jitter fractions must be in [0, 1)")
        if not (0 <= self.slowdown_rate <= 1 and self.slowdown_factor >= 1):
            raise ValueError(f"profile {self.name}: slowdown_rate in 0..1, slowdown_factor >= 1")
        if not 0 <= self.diurnal_amplitude <= 1:
            raise ValueError(f"profile {self.name}: diurnal_amplitude must be in 0..1")
        unknown = set(self.fault_rates) - set(FAULTS)
        if unknown:
            raise ValueError(f"profile {self.name}: unknown faults {sorted(unknown)}")
        if sum(self.fault_rates.values()) > 1:
            raise ValueError(f"profile {self.name}: fault rates add up to more than 1")
        # A plain dict passed in would make the frozen profile mutable through the back door.
        object.__setattr__(self, "fault_rates", _frozen(self.fault_rates))

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["fault_rates"] = dict(self.fault_rates)
        return data


def _p(**kwargs: Any) -> Profile:
    return Profile(**kwargs)


_BUILTIN = (
    _p(
        name="openai",
        description="OpenAI: role chunk with refusal, usage chunk with choices [] (include_usage)",
        model="gpt-4.1-mini",
        ttft_seconds=0.5,
        ttft_jitter=0.2,
        tokens_per_second=80,
        tokens_per_second_jitter=0.1,
        rate_limit_headers="openai",
        diurnal_amplitude=0.3,
    ),
    _p(
        name="groq",
        description="Groq (LPU): x_groq id on the first chunk, x_groq.usage with server times",
        model="llama-3.1-8b-instant",
        ttft_seconds=0.2,
        ttft_jitter=0.2,
        tokens_per_second=800,
        tokens_per_second_jitter=0.05,
        tokens_per_chunk=2,
        usage_placement="x_groq",
        server_timings="groq",
        rate_limit_headers="groq",
        diurnal_amplitude=0.3,
    ),
    _p(
        name="cerebras",
        description="Cerebras (WSE): usage and time_info on the finish chunk",
        model="llama-3.3-70b",
        ttft_seconds=0.25,
        ttft_jitter=0.2,
        tokens_per_second=2000,
        tokens_per_second_jitter=0.05,
        tokens_per_chunk=4,
        usage_placement="finish",
        server_timings="cerebras",
        rate_limit_headers="cerebras",
        diurnal_amplitude=0.2,
    ),
    _p(
        name="sambanova",
        description="SambaNova (RDU): usage chunk with time_to_first_token and speeds",
        model="Meta-Llama-3.3-70B-Instruct",
        ttft_seconds=0.35,
        ttft_jitter=0.2,
        tokens_per_second=500,
        tokens_per_second_jitter=0.05,
        tokens_per_chunk=2,
        server_timings="sambanova",
        diurnal_amplitude=0.3,
    ),
    _p(
        name="fireworks",
        description="Fireworks: headers wait for the first token, server TTFT header",
        model="accounts/fireworks/models/llama-v3p3-70b-instruct",
        ttft_seconds=0.3,
        ttft_jitter=0.2,
        tokens_per_second=250,
        tokens_per_second_jitter=0.1,
        usage_placement="finish",
        server_timings="fireworks",
        headers_at_first_token=True,
        diurnal_amplitude=0.3,
    ),
    _p(
        name="together",
        description="Together AI: usage on the finish chunk",
        model="meta-llama/Llama-3.3-70B-Instruct-Turbo",
        ttft_seconds=0.4,
        ttft_jitter=0.25,
        tokens_per_second=200,
        tokens_per_second_jitter=0.1,
        usage_placement="finish",
        role_only_first_chunk="none",
        diurnal_amplitude=0.3,
    ),
    _p(
        name="deepseek",
        description="DeepSeek: keep-alive comments, reasoning_content, cache hit/miss usage",
        model="deepseek-reasoner",
        ttft_seconds=0.9,
        ttft_jitter=0.3,
        tokens_per_second=60,
        tokens_per_second_jitter=0.1,
        tokens_per_chunk=1,
        reasoning_tokens=20,
        reasoning_field="reasoning_content",
        usage_placement="finish",
        cache_fields="deepseek",
        role_only_first_chunk="deepseek",
        keepalive=": keep-alive",
        keepalive_interval=0.3,
        diurnal_amplitude=0.5,
    ),
    _p(
        name="zai",
        description="Z.ai (GLM): role repeated in every delta, reasoning_content, usage on finish",
        model="glm-4.7",
        ttft_seconds=0.6,
        ttft_jitter=0.2,
        tokens_per_second=90,
        tokens_per_second_jitter=0.1,
        reasoning_tokens=16,
        reasoning_field="reasoning_content",
        usage_placement="finish",
        repeat_role=True,
        role_only_first_chunk="none",
        diurnal_amplitude=0.4,
    ),
    _p(
        name="moonshot",
        description="Moonshot (Kimi): usage inside choices[0].usage on the finish chunk",
        model="kimi-k2.5",
        ttft_seconds=0.7,
        ttft_jitter=0.2,
        tokens_per_second=60,
        tokens_per_second_jitter=0.1,
        reasoning_field="reasoning_content",
        usage_placement="choice",
        diurnal_amplitude=0.4,
    ),
    _p(
        name="openrouter",
        description="OpenRouter: PROCESSING comments, usage with cost always in the last chunk",
        model="meta-llama/llama-3.3-70b-instruct",
        ttft_seconds=0.9,
        ttft_jitter=0.3,
        tokens_per_second=120,
        tokens_per_second_jitter=0.15,
        usage_placement="last",
        keepalive=": OPENROUTER PROCESSING",
        keepalive_interval=0.3,
        diurnal_amplitude=0.3,
        price_input_per_million=0.59,
        price_output_per_million=0.79,
    ),
    _p(
        name="mistral",
        description="Mistral: OpenAI-style stream, usage on the finish chunk",
        model="mistral-small-latest",
        ttft_seconds=0.35,
        ttft_jitter=0.2,
        tokens_per_second=150,
        tokens_per_second_jitter=0.1,
        usage_placement="finish",
        diurnal_amplitude=0.3,
    ),
    _p(
        name="anthropic",
        description="Anthropic Messages: named events, ping, cumulative output_tokens",
        wire="anthropic",
        model="claude-haiku-4-5",
        ttft_seconds=0.7,
        ttft_jitter=0.2,
        tokens_per_second=70,
        tokens_per_second_jitter=0.1,
        tokens_per_chunk=3,
        rate_limit_headers="anthropic",
        diurnal_amplitude=0.3,
    ),
    _p(
        name="gemini",
        description="Gemini streamGenerateContent: full responses, cumulative usageMetadata",
        wire="gemini",
        model="gemini-2.5-flash",
        ttft_seconds=0.6,
        ttft_jitter=0.2,
        tokens_per_second=180,
        tokens_per_second_jitter=0.1,
        tokens_per_chunk=8,
        diurnal_amplitude=0.3,
    ),
    _p(
        name="ollama",
        description="Ollama native NDJSON: model load on first use, durations in ns",
        wire="ollama",
        model="llama3.2:latest",
        ttft_seconds=0.08,
        ttft_jitter=0.1,
        tokens_per_second=60,
        tokens_per_second_jitter=0.05,
        usage_placement="none",
        model_load_seconds=1.0,
        require_auth=False,
    ),
    _p(
        name="fast",
        description="Test profile: 5,000 tokens/s, 1 token per chunk, no jitter",
        ttft_seconds=0.02,
        tokens_per_second=5000,
    ),
    _p(
        name="crlf",
        description="Test profile: CRLF line endings, 'data:' without space, no [DONE]",
        ttft_seconds=0.02,
        tokens_per_second=1000,
        tokens_per_chunk=2,
        usage_placement="finish",
        line_ending="\r\n",
        data_prefix="data:",
        send_done=False,
    ),
    _p(
        name="reasoning",
        description="Test profile: OpenAI-compatible, 40 reasoning tokens before the answer",
        ttft_seconds=0.05,
        tokens_per_second=1000,
        reasoning_tokens=40,
        reasoning_field="reasoning",
    ),
)

PROFILES: Mapping[str, Profile] = MappingProxyType({p.name: p for p in _BUILTIN})
