"""Anthropic Messages streaming: `POST {base_url}/messages`, SSE with named events.

Event → field mapping of `AnthropicDecoder.feed` (the SSE event name decides; when a proxy
drops `event:` lines the data's own `type` is used instead):

- `message_start`: `message.usage`: `input_tokens` + `cache_creation_input_tokens` +
  `cache_read_input_tokens` → usage.input; `cache_read_input_tokens` → usage.cached_input;
  `output_tokens` (usually 1) → usage.output.
- `content_block_start`: a `text` block's initial `text` → answer chars; a `thinking`
  block's initial `thinking` → reasoning chars; other blocks (`redacted_thinking`,
  `tool_use`...) → (0, 0).
- `content_block_delta`: `text_delta.text` → answer chars; `thinking_delta.thinking` →
  reasoning chars; `signature_delta`, `input_json_delta`, `citations_delta` and unknown
  deltas → (0, 0).
- `message_delta`: `delta.stop_reason` → finish_reason; its cumulative `usage`
  (`output_tokens`, and the input fields when present) read as in `message_start`.
- `message_stop` → done.
- `error` → `StreamError`: `overloaded_error` → overloaded, `rate_limit_error` → rate
  limited, anything else → http_error.
- `ping`, `content_block_stop` and unknown events → (0, 0).

Anthropic's `output_tokens` already includes thinking tokens and the API does not report
them separately, so `usage.reasoning` stays None.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from speed_kings.clock import Clock
from speed_kings.result import Outcome
from speed_kings.wire.base import (
    Decoder,
    ErrorInfo,
    Framing,
    HttpRequest,
    StreamError,
    Target,
    clip,
    load_object,
    merge_body,
    outcome_for_status,
    stream_headers,
)

ANTHROPIC_VERSION = "2023-06-01"
SPEND_LIMIT_CODE = "enforced_spend_limit_reached"

_STREAM_ERROR_OUTCOMES = {
    "overloaded_error": Outcome.OVERLOADED,
    "rate_limit_error": Outcome.RATE_LIMITED,
}
_SHAPE_ERRORS = (KeyError, TypeError, AttributeError, IndexError)


class AnthropicWire:
    name: str = "anthropic"
    framing: Framing = "sse"

    def build_request(self, target: Target, prompt: str, max_tokens: int) -> HttpRequest:
        auth = {"anthropic-version": ANTHROPIC_VERSION}
        if target.api_key:
            auth["x-api-key"] = target.api_key
        headers = stream_headers(target, "text/event-stream", auth)
        body: dict[str, Any] = {
            "model": target.provider_model,
            "max_tokens": max_tokens,
            "stream": True,
            "messages": [{"role": "user", "content": prompt}],
        }
        return HttpRequest(
            "POST",
            f"{target.base_url.rstrip('/')}/messages",
            headers,
            merge_body(body, target.extra_body),
        )

    def decoder(self) -> AnthropicDecoder:
        return AnthropicDecoder()

    def classify_error(self, status: int, body: str) -> ErrorInfo:
        """`{"type":"error","error":{"type","message","details"?}}` → detail
        "rate_limit_error: message"; a spend-cap 429 (`details.error_code =
        enforced_spend_limit_reached`) says so up front, since waiting a minute will not help.
        The outcome follows the status (429 rate limited, 503/529 overloaded). Retry-After
        lives in the headers, which the runner reads."""
        outcome = outcome_for_status(status)
        err = _error_object(body)
        if err is None:
            text = body.strip()
            return ErrorInfo(outcome, clip(text) if text else f"HTTP {status}")
        kind = _text(err.get("type")) or "error"
        details = err.get("details")
        code = details.get("error_code") if isinstance(details, dict) else None
        if code is None and SPEND_LIMIT_CODE in body:
            code = SPEND_LIMIT_CODE
        head = f"{kind} ({_text(code)})" if code else kind
        message = _text(err.get("message"))
        return ErrorInfo(outcome, clip(f"{head}: {message}" if message else head))

    async def prepare(
        self, session: aiohttp.ClientSession, target: Target, clock: Clock, timeout: float
    ) -> float | None:
        """Nothing to load for a hosted API."""
        return None


class AnthropicDecoder(Decoder):
    """See the module docstring for the event → field mapping."""

    __slots__ = ("_cache_read", "_cache_write", "_input")

    def __init__(self) -> None:
        super().__init__()
        self._input: int | None = None
        self._cache_write: int | None = None
        self._cache_read: int | None = None

    def feed(self, event: str, data: str) -> tuple[int, int]:
        try:
            obj = load_object(data)
        except ValueError:
            if event == "error":  # a proxy's plain-text error event still means "error"
                raise StreamError(ErrorInfo(Outcome.HTTP_ERROR, clip(data) or "error")) from None
            raise
        kind = event or obj.get("type")
        try:
            if kind == "content_block_delta":  # the hot path: one per generated chunk
                delta = obj["delta"]
                dtype = delta["type"]
                if dtype == "text_delta":
                    text = delta["text"]
                    if type(text) is str:
                        return 0, len(text)
                    raise ValueError("text_delta without a text string")
                if dtype == "thinking_delta":
                    thinking = delta["thinking"]
                    if type(thinking) is str:
                        return len(thinking), 0
                    raise ValueError("thinking_delta without a thinking string")
                return 0, 0  # signature_delta, input_json_delta, citations_delta...
            if kind == "ping" or kind == "content_block_stop":
                return 0, 0
            if kind == "content_block_start":
                block = obj["content_block"]
                btype = block.get("type")
                if btype == "text":
                    return 0, _length(block.get("text"))
                if btype == "thinking":
                    return _length(block.get("thinking")), 0
                return 0, 0
            if kind == "message_delta":
                delta = obj.get("delta")
                if delta:
                    reason = delta.get("stop_reason")
                    if reason is not None:
                        self.finish_reason = _text(reason)
                usage = obj.get("usage")
                if usage:
                    self._read_usage(usage)
                return 0, 0
            if kind == "message_start":
                usage = obj["message"].get("usage")
                if usage:
                    self._read_usage(usage)
                return 0, 0
            if kind == "message_stop":
                self.done = True
                return 0, 0
            if kind == "error":
                raise StreamError(_stream_error(obj.get("error")))
        except _SHAPE_ERRORS as exc:
            raise ValueError(f"malformed {kind} event: {exc!r}") from exc
        return 0, 0  # unknown event types: forward compatible

    def _read_usage(self, usage: Any) -> None:
        """Counts are cumulative; a field absent (or null) keeps its last value."""
        u = self.usage
        got_input = False
        value = usage.get("input_tokens")
        if type(value) is int:
            self._input, got_input = value, True
        value = usage.get("cache_creation_input_tokens")
        if type(value) is int:
            self._cache_write, got_input = value, True
        value = usage.get("cache_read_input_tokens")
        if type(value) is int:
            self._cache_read = u.cached_input = value
            got_input = True
        if got_input:
            u.input = (self._input or 0) + (self._cache_write or 0) + (self._cache_read or 0)
            u.source = "reported"
        value = usage.get("output_tokens")
        if type(value) is int:
            u.output = value
            u.source = "reported"


def _stream_error(err: Any) -> ErrorInfo:
    if isinstance(err, dict):
        kind = _text(err.get("type")) or "error"
        message = _text(err.get("message"))
        outcome = _STREAM_ERROR_OUTCOMES.get(kind, Outcome.HTTP_ERROR)
        return ErrorInfo(outcome, clip(f"{kind}: {message}" if message else kind))
    return ErrorInfo(Outcome.HTTP_ERROR, clip(f"error: {_text(err)}"))


def _error_object(body: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    err = doc.get("error") if isinstance(doc, dict) else None
    return err if isinstance(err, dict) else None


def _length(text: Any) -> int:
    if text is None:
        return 0
    if type(text) is str:
        return len(text)
    raise ValueError(f"expected a string, got {type(text).__name__}")


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


# Shared with the Gemini and Ollama wires; it belongs in wire/base.py once that grows it.
