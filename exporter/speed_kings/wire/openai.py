"""OpenAI chat-completions streaming (SSE), as spoken by OpenAI and every compatible server.

Usage and server timings arrive in many places (see shared/reference/providers.md): a
separate `choices: []` chunk (OpenAI, SambaNova), the finish chunk (DeepSeek, Together,
Z.ai), `choices[0].usage` (Moonshot), `x_groq.usage` (Groq), Cerebras `time_info`,
OpenRouter's last message with `usage.cost`. The decoder reads all of them.
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

# Server-side timings reported in seconds, copied as they are.
_TIMING_KEYS = ("queue_time", "prompt_time", "completion_time", "total_time")
_SAMBANOVA_KEYS = ("time_to_first_token", "total_latency", "completion_tokens_after_first_per_sec")


class OpenAIWire:
    name = "openai"
    framing: Framing = "sse"

    def build_request(self, target: Target, prompt: str, max_tokens: int) -> HttpRequest:
        auth = {"authorization": f"Bearer {target.api_key}"} if target.api_key else {}
        headers = stream_headers(target, "text/event-stream", auth)
        body: dict[str, Any] = {
            "model": target.provider_model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        return HttpRequest(
            "POST",
            f"{target.base_url}/chat/completions",
            headers,
            merge_body(body, target.extra_body),
        )

    def decoder(self) -> OpenAIDecoder:
        return OpenAIDecoder()

    def classify_error(self, status: int, body: str) -> ErrorInfo:
        outcome = outcome_for_status(status)
        try:
            doc = json.loads(body)
        except ValueError:
            return ErrorInfo(outcome, clip(f"HTTP {status}: {body}" if body else f"HTTP {status}"))
        err = doc.get("error") if isinstance(doc, dict) else None
        return ErrorInfo(
            outcome, clip(f"HTTP {status}: {_describe(err if err is not None else doc)}")
        )

    async def prepare(
        self, session: aiohttp.ClientSession, target: Target, clock: Clock, timeout: float
    ) -> float | None:
        return None


def _describe(err: Any) -> str:
    if isinstance(err, dict):
        kind = err.get("code") or err.get("type") or err.get("status")
        message = err.get("message") or err.get("msg") or json.dumps(err)[:200]
        return f"{kind}: {message}" if kind else str(message)
    return str(err)


def _stream_error(err: Any) -> StreamError:
    """An error inside a 200 stream: classify by its code/type/message text."""
    text = _describe(err)
    low = text.lower()
    code = err.get("code") if isinstance(err, dict) else None
    if code == 429 or "rate_limit" in low or "rate limit" in low or "too many requests" in low:
        outcome = Outcome.RATE_LIMITED
    elif code in (503, 529) or "overload" in low or "capacity" in low:
        outcome = Outcome.OVERLOADED
    else:
        outcome = Outcome.HTTP_ERROR
    return StreamError(ErrorInfo(outcome, clip(f"stream error: {text}")))


class OpenAIDecoder(Decoder):
    __slots__ = ()

    def feed(self, event: str, data: str) -> tuple[int, int]:
        if data[:6] == "[DONE]":
            self.done = True
            return 0, 0
        chunk = load_object(data, "chunk")
        if event == "error" or chunk.get("error"):
            raise _stream_error(chunk.get("error", chunk))
        reasoning = answer = 0
        choices = chunk.get("choices")
        if choices:
            choice = choices[0]
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                if content:
                    answer = len(content)
                thought = delta.get("reasoning_content") or delta.get("reasoning")
                if thought and type(thought) is str:
                    reasoning = len(thought)
            elif choice.get("text"):  # completions-style choices (Together)
                answer = len(choice["text"])
            finish = choice.get("finish_reason")
            if finish:
                self.finish_reason = finish
                self.done = True  # [DONE] may still follow; a stream ending here is complete
            if choice.get("usage"):  # Moonshot
                self._read_usage(choice["usage"])
        usage = chunk.get("usage")
        if usage:
            self._read_usage(usage)
        groq = chunk.get("x_groq")
        if groq:
            if groq.get("error"):
                raise _stream_error(groq["error"])
            if groq.get("usage"):
                self._read_usage(groq["usage"])
        time_info = chunk.get("time_info")  # Cerebras
        if time_info:
            self._read_timings(time_info, _TIMING_KEYS)
        return reasoning, answer

    def _read_usage(self, usage: dict[str, Any]) -> None:
        u = self.usage
        if usage.get("completion_tokens") is not None:
            u.output = int(usage["completion_tokens"])
            u.source = "reported"
        if usage.get("prompt_tokens") is not None:
            u.input = int(usage["prompt_tokens"])
        details = usage.get("completion_tokens_details") or {}
        if details.get("reasoning_tokens") is not None:
            u.reasoning = int(details["reasoning_tokens"])
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        if cached is None:
            cached = usage.get("prompt_cache_hit_tokens")  # DeepSeek
        if cached is not None:
            u.cached_input = int(cached)
        if usage.get("cost") is not None:  # OpenRouter
            self.reported_cost = float(usage["cost"])
        self._read_timings(usage, _TIMING_KEYS + _SAMBANOVA_KEYS)

    def _read_timings(self, source: dict[str, Any], keys: tuple[str, ...]) -> None:
        for key in keys:
            value = source.get(key)
            if isinstance(value, int | float):
                self.server_timings[key] = float(value)
