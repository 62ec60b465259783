"""Google Gemini `streamGenerateContent?alt=sse`: every SSE `data:` is a whole
GenerateContentResponse, and the stream has no terminator; it just closes.

Field mapping of `GeminiDecoder.feed` (event names are ignored; Gemini sends none):

- `candidates[0].content.parts[*].text`: with `"thought": true` → reasoning chars, else
  answer chars; parts with only `thoughtSignature` (or `functionCall`...) carry no text.
- `candidates[0].finishReason` (STOP, MAX_TOKENS, SAFETY...) → finish_reason and done.
- `usageMetadata` (cumulative, on every chunk): `promptTokenCount` → input;
  `candidatesTokenCount` + `thoughtsTokenCount` → output (Gemini's candidate count excludes
  thoughts; ours counts every generated token); `thoughtsTokenCount` → reasoning;
  `cachedContentTokenCount` → cached_input.
- `error` → `StreamError`: RESOURCE_EXHAUSTED → rate limited, UNAVAILABLE → overloaded,
  otherwise by `code` (429, 503/529) or http_error; RetryInfo → retry_after_seconds.
- `promptFeedback.blockReason` without candidates → `StreamError` http_error
  "blocked: REASON".
"""

from __future__ import annotations

import json
import math
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

_SHAPE_ERRORS = (KeyError, TypeError, AttributeError, IndexError)
_STATUS_OUTCOMES = {
    "RESOURCE_EXHAUSTED": Outcome.RATE_LIMITED,
    "UNAVAILABLE": Outcome.OVERLOADED,
}
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


class GeminiWire:
    name: str = "gemini"
    framing: Framing = "sse"

    def build_request(self, target: Target, prompt: str, max_tokens: int) -> HttpRequest:
        """The key goes in `x-goog-api-key`, never in the URL (`?key=` would end up in
        proxy and access logs)."""
        auth = {"x-goog-api-key": target.api_key} if target.api_key else {}
        headers = stream_headers(target, "text/event-stream", auth)
        model = target.provider_model
        if not model.startswith(("models/", "tunedModels/")):
            model = f"models/{model}"
        body: dict[str, Any] = {
            "contents": [{"role": "user", "parts": [{"text": prompt}]}],
            "generationConfig": {"maxOutputTokens": max_tokens},
        }
        return HttpRequest(
            "POST",
            f"{target.base_url.rstrip('/')}/{model}:streamGenerateContent?alt=sse",
            headers,
            merge_body(body, target.extra_body),
        )

    def decoder(self) -> GeminiDecoder:
        return GeminiDecoder()

    def classify_error(self, status: int, body: str) -> ErrorInfo:
        """`{"error":{"code","status","message","details"}}` → detail "STATUS: message",
        outcome by HTTP status, `retry_after_seconds` from a RetryInfo detail."""
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            doc = None
        if isinstance(doc, list) and doc:  # the non-SSE endpoint wraps responses in an array
            doc = doc[0]
        err = doc.get("error") if isinstance(doc, dict) else None
        if not isinstance(err, dict):
            text = body.strip()
            return ErrorInfo(outcome_for_status(status), clip(text) if text else f"HTTP {status}")
        return _error_info(err, outcome_for_status(status))

    async def prepare(
        self, session: aiohttp.ClientSession, target: Target, clock: Clock, timeout: float
    ) -> float | None:
        """Nothing to load for a hosted API."""
        return None


class GeminiDecoder(Decoder):
    """See the module docstring for the field mapping."""

    __slots__ = ()

    def feed(self, event: str, data: str) -> tuple[int, int]:
        obj = load_object(data)
        reasoning = answer = 0
        try:
            meta = obj.get("usageMetadata")
            if meta:
                self._read_usage(meta)
            candidates = obj.get("candidates")
            if candidates:
                candidate = candidates[0]
                content = candidate.get("content")
                if content:
                    parts = content.get("parts")
                    if parts:
                        for part in parts:
                            text = part.get("text")
                            if text:
                                if type(text) is not str:
                                    raise ValueError("part text is not a string")
                                if part.get("thought"):
                                    reasoning += len(text)
                                else:
                                    answer += len(text)
                reason = candidate.get("finishReason")
                if reason:
                    self.finish_reason = reason if type(reason) is str else json.dumps(reason)
                    self.done = True
            else:
                err = obj.get("error")
                if err is not None:
                    raise StreamError(_error_info(err, None))
                feedback = obj.get("promptFeedback")
                if feedback:
                    blocked = feedback.get("blockReason")
                    if blocked:
                        raise StreamError(
                            ErrorInfo(Outcome.HTTP_ERROR, clip(f"blocked: {blocked}"))
                        )
        except _SHAPE_ERRORS as exc:
            raise ValueError(f"malformed GenerateContentResponse: {exc!r}") from exc
        return reasoning, answer

    def _read_usage(self, meta: Any) -> None:
        u = self.usage
        prompt = meta.get("promptTokenCount")
        candidates = meta.get("candidatesTokenCount")
        thoughts = meta.get("thoughtsTokenCount")
        cached = meta.get("cachedContentTokenCount")
        reported = False
        if type(prompt) is int:
            u.input = prompt
            reported = True
        if type(thoughts) is int:
            u.reasoning = thoughts
            u.output = thoughts + candidates if type(candidates) is int else thoughts
            reported = True
        elif type(candidates) is int:
            u.output = candidates
            reported = True
        if type(cached) is int:
            u.cached_input = cached
        if reported:
            u.source = "reported"


def _error_info(err: Any, outcome: Outcome | None) -> ErrorInfo:
    """An API error object. `outcome` None (inside a stream, HTTP 200): from its status."""
    if not isinstance(err, dict):
        return ErrorInfo(outcome or Outcome.HTTP_ERROR, clip(f"error: {err}"))
    status = err.get("status")
    code = err.get("code")
    if outcome is None:
        outcome = _STATUS_OUTCOMES.get(status) if isinstance(status, str) else None
        if outcome is None:
            outcome = outcome_for_status(code) if type(code) is int else Outcome.HTTP_ERROR
    head = status if isinstance(status, str) and status else f"HTTP {code}"
    message = err.get("message")
    detail = f"{head}: {message}" if message else head
    return ErrorInfo(outcome, clip(detail), retry_delay(err.get("details")))


def retry_delay(details: Any) -> float | None:
    """Seconds from a `google.rpc.RetryInfo` entry of an error's `details`, if any."""
    if not isinstance(details, list):
        return None
    for item in details:
        if isinstance(item, dict) and item.get("@type") == _RETRY_INFO:
            return parse_duration(item.get("retryDelay"))
    return None


def parse_duration(value: Any) -> float | None:
    """A protobuf JSON Duration ("34.4s", "2s", "0.5s"; also {"seconds", "nanos"}) in
    seconds; None when absent or unreadable."""
    seconds: float
    if isinstance(value, str):
        if not value.endswith("s"):
            return None
        try:
            seconds = float(value[:-1])
        except ValueError:
            return None
    elif isinstance(value, dict):
        whole, nanos = value.get("seconds", 0), value.get("nanos", 0)
        try:
            seconds = float(whole) + float(nanos) / 1e9
        except (TypeError, ValueError, OverflowError):
            return None
    else:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
