"""Ollama's native chat API: `POST {base_url}/api/chat`, NDJSON (one JSON object a line).

Field mapping of `OllamaDecoder.feed`:

- `message.thinking` → reasoning chars; `message.content` → answer chars.
- `done: true` → done; `done_reason` → finish_reason; `prompt_eval_count` → input;
  `eval_count` → output (thinking included; not reported separately, so reasoning stays
  None).
- Durations on the `done` line (nanoseconds) → `server_timings` in seconds:
  `total_duration` → "total", `load_duration` → "load", `prompt_eval_duration` →
  "prompt_eval", `eval_duration` → "eval".
- `{"error": "..."}` → `StreamError`: http_error, or overloaded for "server busy" /
  "overloaded".

`OllamaWire.prepare` loads the model before the timed request, so a cold model's load time
is reported as `model_load_seconds` and never lands in TTFT.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
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
# Ollama's nanosecond durations → `server_timings` keys (seconds).
_TIMINGS = (
    ("total_duration", "total"),
    ("load_duration", "load"),
    ("prompt_eval_duration", "prompt_eval"),
    ("eval_duration", "eval"),
)
_BUSY_WORDS = ("server busy", "overloaded")


class OllamaWire:
    name: str = "ollama"
    framing: Framing = "ndjson"

    def build_request(self, target: Target, prompt: str, max_tokens: int) -> HttpRequest:
        body: dict[str, Any] = {
            "model": target.provider_model,
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
            "options": {"num_predict": max_tokens},
        }
        return HttpRequest(
            "POST",
            f"{target.base_url.rstrip('/')}/api/chat",
            self._headers(target, "application/x-ndjson"),
            merge_body(body, target.extra_body),
        )

    def decoder(self) -> OllamaDecoder:
        return OllamaDecoder()

    def classify_error(self, status: int, body: str) -> ErrorInfo:
        """`{"error": "..."}` or plain text; a missing model's 404 says how to pull it."""
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            doc = None
        err = doc.get("error") if isinstance(doc, dict) else None
        message = (err if isinstance(err, str) else json.dumps(err)) if err else body.strip()
        if not message:
            message = f"HTTP {status}"
        if status == 404:
            low = message.lower()
            if _model_not_found(low):
                pull = f"ollama pull {_quoted_model(message) or 'MODEL'}"
                message = f"{clip(message, 200)} (run `{pull}` on the Ollama host)"
            elif "page not found" in low:
                message = (
                    f"{clip(message, 100)} (base_url must be the Ollama root, e.g. "
                    "http://localhost:11434, without /v1 or /api)"
                )
        return ErrorInfo(outcome_for_status(status), clip(message))

    async def prepare(
        self, session: aiohttp.ClientSession, target: Target, clock: Clock, timeout: float
    ) -> float | None:
        """Load the model before the timed request; seconds the load took, or None when
        `GET /api/ps` already lists it (nothing spent).

        A model that is not loaded is loaded with an empty-prompt `POST /api/generate`,
        timed with `clock.monotonic()`. It carries the target's `options` (e.g. `num_ctx`)
        so the timed chat request does not reload the runner with different settings; a
        model listed with a `context_length` other than the configured `num_ctx` counts as
        not loaded. A `/api/ps` answering 404 (an old server, or a proxy that hides it)
        falls back to loading, which is quick when the model is already resident; if
        `/api/generate` is missing too (404/405 that is not "model not found": a proxy that
        only passes `/api/chat`), preloading is impossible and None is returned, leaving
        any load to the chat request's own `load_duration`.

        Both requests send `Connection: close`, so the timed request never reuses their
        connection. Raises, for the runner to map:
        - `StreamError` (ErrorInfo via `classify_error`) for an error status from
          `/api/ps` or `/api/generate` (404 model not found carries the `ollama pull` hint);
        - `TimeoutError` when both together take longer than `timeout` seconds;
        - `aiohttp.ClientError` subclasses for connection failures.
        """
        base = target.base_url.rstrip("/")
        # A connection of its own, closed after: the timed request must not reuse it.
        headers = {**self._headers(target, "application/json"), "connection": "close"}
        options = target.extra_body.get("options")
        num_ctx = options.get("num_ctx") if isinstance(options, Mapping) else None
        async with asyncio.timeout(timeout):
            async with session.get(f"{base}/api/ps", headers=headers) as resp:
                status, body = resp.status, await resp.text(errors="replace")
            ps_missing = status == 404
            if status == 200:
                if _is_loaded(body, target.provider_model, num_ctx):
                    return None
            elif not ps_missing:
                raise self._prepare_error("GET /api/ps", status, body)
            payload: dict[str, Any] = {
                "model": target.provider_model,
                "prompt": "",
                "stream": False,
            }
            if isinstance(options, Mapping):
                payload["options"] = merge_body({}, options)
            started = clock.monotonic()
            async with session.post(f"{base}/api/generate", json=payload, headers=headers) as resp:
                status, body = resp.status, await resp.text(errors="replace")
            elapsed = clock.monotonic() - started
        if not 200 <= status < 300:
            if ps_missing and status in (404, 405) and not _model_not_found(body.lower()):
                return None  # neither endpoint is exposed: nothing we can preload
            raise self._prepare_error("loading the model (POST /api/generate)", status, body)
        return elapsed

    def _prepare_error(self, what: str, status: int, body: str) -> StreamError:
        info = self.classify_error(status, body)
        return StreamError(
            ErrorInfo(info.outcome, clip(f"{what}: HTTP {status}: {info.detail}"), None)
        )

    @staticmethod
    def _headers(target: Target, accept: str) -> dict[str, str]:
        # Plain Ollama has no auth; a proxy in front of it may.
        auth = {"authorization": f"Bearer {target.api_key}"} if target.api_key else {}
        return stream_headers(target, accept, auth)


class OllamaDecoder(Decoder):
    """See the module docstring for the field mapping."""

    __slots__ = ()

    def feed(self, event: str, data: str) -> tuple[int, int]:
        obj = load_object(data, "line")
        reasoning = answer = 0
        try:
            message = obj.get("message")
            if message:
                content = message.get("content")
                if content:
                    if type(content) is not str:
                        raise ValueError("message.content is not a string")
                    answer = len(content)
                thinking = message.get("thinking")
                if thinking:
                    if type(thinking) is not str:
                        raise ValueError("message.thinking is not a string")
                    reasoning = len(thinking)
            else:
                err = obj.get("error")
                if err is not None:
                    raise StreamError(_stream_error(err))
            if obj.get("done") is True:
                self._finish(obj)
        except _SHAPE_ERRORS as exc:
            raise ValueError(f"malformed chat line: {exc!r}") from exc
        return reasoning, answer

    def _finish(self, obj: dict[str, Any]) -> None:
        self.done = True
        reason = obj.get("done_reason")
        if isinstance(reason, str):
            self.finish_reason = reason
        u = self.usage
        prompt = obj.get("prompt_eval_count")
        if type(prompt) is int:
            u.input = prompt
            u.source = "reported"
        generated = obj.get("eval_count")
        if type(generated) is int:
            u.output = generated
            u.source = "reported"
        timings = self.server_timings
        for field, key in _TIMINGS:
            nanos = obj.get(field)
            if type(nanos) is int or type(nanos) is float:
                timings[key] = nanos / 1e9


def _stream_error(err: Any) -> ErrorInfo:
    text = err if isinstance(err, str) else json.dumps(err)
    low = text.lower()
    busy = any(word in low for word in _BUSY_WORDS)
    return ErrorInfo(Outcome.OVERLOADED if busy else Outcome.HTTP_ERROR, clip(text) or "error")


def _is_loaded(ps_body: str, model: str, num_ctx: Any) -> bool:
    """Whether `GET /api/ps` lists `model` (an untagged name means `:latest`), loaded with
    the configured context length when one is configured and reported."""
    try:
        doc = json.loads(ps_body)
    except (ValueError, RecursionError):
        return False
    models = doc.get("models") if isinstance(doc, dict) else None
    if not isinstance(models, list):
        return False
    wanted = _with_tag(model)
    for entry in models:
        if not isinstance(entry, dict):
            continue
        names = (entry.get("name"), entry.get("model"))
        if not any(isinstance(n, str) and _with_tag(n) == wanted for n in names):
            continue
        loaded_ctx = entry.get("context_length")
        if type(num_ctx) is int and type(loaded_ctx) is int and loaded_ctx != num_ctx:
            continue  # the chat request would reload the runner with the configured num_ctx
        return True
    return False


def _with_tag(name: str) -> str:
    """`llama3.2` → `llama3.2:latest`; a tag after the last `/` is kept (a registry host's
    `:port` is not a tag). Case-insensitive, as Ollama's names are."""
    name = name.lower()
    return name if ":" in name.rpartition("/")[2] else f"{name}:latest"


def _model_not_found(low: str) -> bool:
    return "model" in low and "not found" in low


def _quoted_model(message: str) -> str | None:
    """The model name in `model "x" not found` / `model 'x' not found`."""
    for quote in ('"', "'"):
        start = message.find(f"model {quote}")
        if start >= 0:
            start += 7
            end = message.find(quote, start)
            if end > start:
                return message[start:end]
    return None
