"""The contract every wire protocol module fulfils.

A wire module knows how to build the HTTP request for a streamed completion, how to read the
events of its stream (a `Decoder`, one per probe), and how to read an error response. The
HTTP exchange, timing and outcome mapping live once in `speed_kings.probe`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import aiohttp

from speed_kings.clock import Clock
from speed_kings.result import Outcome, TokenUsage

Framing = Literal["sse", "ndjson"]


@dataclass(frozen=True, slots=True)
class Target:
    """One provider endpoint and model to probe."""

    provider: str
    base_url: str  # e.g. https://api.groq.com/openai/v1 (no trailing slash)
    wire: str
    model: str  # canonical name, used in labels
    provider_model: str  # id sent on the wire
    api_key: str | None = field(default=None, repr=False)
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    extra_body: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    json: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """What an error response (or mid-stream error event) means."""

    outcome: Outcome
    detail: str
    retry_after_seconds: float | None = None


class StreamError(Exception):
    """Raised by a decoder when the stream itself reports an error (HTTP status still 200)."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(info.detail)
        self.info = info


class Decoder:
    """Reads one stream's events. Subclasses override `feed`.

    `feed(event, data)` gets the SSE event name ("" when absent) or "" for NDJSON, and the
    event's data (one JSON document, or `[DONE]`). It returns (reasoning_chars, answer_chars)
    of generated text the event carried, updates usage/timings as reported, sets `done` once
    the stream says it is complete, and raises `StreamError` for an error event or
    `ValueError` (json.JSONDecodeError included) for a malformed one.
    """

    __slots__ = ("done", "finish_reason", "reported_cost", "server_timings", "usage")

    def __init__(self) -> None:
        self.usage = TokenUsage()
        self.server_timings: dict[str, float] = {}
        self.reported_cost: float | None = None
        self.finish_reason: str | None = None
        self.done = False

    def feed(self, event: str, data: str) -> tuple[int, int]:
        raise NotImplementedError


class Wire(Protocol):
    name: str
    framing: Framing

    def build_request(self, target: Target, prompt: str, max_tokens: int) -> HttpRequest:
        """The streamed completion request for `prompt` (which already carries the nonce)."""

    def decoder(self) -> Decoder:
        """A fresh decoder for one stream."""

    def classify_error(self, status: int, body: str) -> ErrorInfo:
        """Meaning of a non-2xx response with (at most the first 64 KiB of) its body."""

    async def prepare(
        self, session: aiohttp.ClientSession, target: Target, clock: Clock, timeout: float
    ) -> float | None:
        """Work before the timed request (Ollama: load the model). Returns seconds spent
        loading a model, or None when nothing was loaded. Never timed as part of the probe."""


def outcome_for_status(status: int) -> Outcome:
    if status == 429:
        return Outcome.RATE_LIMITED
    if status in (503, 529):
        return Outcome.OVERLOADED
    return Outcome.HTTP_ERROR


def clip(text: str, limit: int = 300) -> str:
    """Error details stay short: a provider's HTML error page is not a log line."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def merge_body(body: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`body` with `extra` merged in, nested objects merged key by key (so `extra_body` can
    add to a nested object without dropping the fields this wire set). `extra` wins; its
    values are copied, so the target's mapping is never shared with a request."""
    for key, value in extra.items():
        current = body.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            body[key] = merge_body(dict(current), value)
        else:
            body[key] = _plain(value)
    return body


def _plain(value: Any) -> Any:
    """A JSON-serialisable copy (read-only mappings from a frozen config become dicts)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def stream_headers(target: Target, accept: str, auth: Mapping[str, str]) -> dict[str, str]:
    """Request headers every wire sends: JSON in, a stream out, no compression (a
    compressed stream can be buffered by the server or a proxy), the wire's auth headers,
    then the target's own headers (lower-cased, so they replace ours)."""
    headers = {
        "content-type": "application/json",
        "accept": accept,
        "accept-encoding": "identity",
        **auth,
    }
    for key, value in target.extra_headers.items():
        headers[key.lower()] = value
    return headers


def load_object(data: str, what: str = "event") -> dict[str, Any]:
    """One stream event's JSON object; ValueError for anything else, including JSON nested
    deeply enough to exhaust the parser's recursion."""
    try:
        obj = json.loads(data)
    except RecursionError as exc:
        raise ValueError(f"{what} JSON nested too deeply") from exc
    if type(obj) is not dict:
        raise ValueError(f"{what} is not a JSON object: {clip(data, 80)}")
    return obj
