"""OpenAI chat-completions streaming, with the per-provider quirks a profile switches on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from speed_kings.simulator.render_base import (
    MIDSTREAM_MESSAGE,
    BadRequest,
    Context,
    ErrorKind,
    Parsed,
    Renderer,
    Template,
    compact,
    count_words,
    json_body,
    json_object,
    positive_int,
    text_hole,
)
from speed_kings.simulator.truth import RequestTruth

_ERRORS: Mapping[ErrorKind, tuple[str, str | None]] = {
    "auth": ("invalid_request_error", "invalid_api_key"),
    "bad_request": ("invalid_request_error", None),
    "not_found": ("invalid_request_error", "not_found"),
    "rate_limit": ("rate_limit_exceeded", "rate_limit_exceeded"),
    "overloaded": ("server_error", "server_is_overloaded"),
    "overloaded_529": ("server_error", "server_is_overloaded"),
    "server_error": ("server_error", "internal_error"),
}


def parse(body: bytes) -> Parsed:
    data = json_object(body)
    if data.get("stream") is not True:
        raise BadRequest("the simulator only serves streamed completions: set stream=true")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model is required")
    limit = positive_int(data.get("max_completion_tokens"), "max_completion_tokens")
    if limit is None:
        limit = positive_int(data.get("max_tokens"), "max_tokens")
    options = data.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return Parsed(
        model=model,
        max_tokens=limit,
        prompt_words=count_words(data.get("messages", [])),
        include_usage=include_usage,
        options={"perf_metrics_in_response": data.get("perf_metrics_in_response") is True},
    )


def auth_ok(headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
    value = headers.get("Authorization", "")
    return value.startswith("Bearer ") and bool(value[7:].strip())


class OpenAIRenderer(Renderer):
    wire = "openai"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        p = ctx.profile
        self._usage_null = p.usage_placement == "separate" and ctx.include_usage
        self._role_pending = p.role_only_first_chunk == "none"
        self._templates: dict[tuple[bool, bool], Template] = {}

    def _base(self) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{self.ctx.request_id}",
            "object": "chat.completion.chunk",
            "created": int(self.ctx.created),
            "model": self.ctx.model,
        }

    def _chunk_obj(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        obj = self._base()
        if self.profile.repeat_role:
            delta = {"role": "assistant", **delta}
        obj["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if self._usage_null:
            obj["usage"] = None
        return obj

    def stream_headers(self) -> dict[str, str]:
        headers = super().stream_headers()
        if self.profile.server_timings == "fireworks":
            # Seconds, as far as public clients read it (not verified against the live API).
            headers["fireworks-server-time-to-first-token"] = f"{self.ctx.ttft_seconds:.4f}"
            headers["fireworks-prompt-tokens"] = str(self.ctx.input_tokens)
        return headers

    def prelude(self) -> bytes:
        style = self.profile.role_only_first_chunk
        if style == "none":
            return b""
        delta: dict[str, Any] = {"role": "assistant"}
        if style == "openai":
            delta.update(content="", refusal=None)
        else:  # DeepSeek announces the reasoning field with an empty string
            delta["content"] = None
            if self.ctx.reasoning_planned:
                delta[self.profile.reasoning_field] = ""
        obj = self._chunk_obj(delta)
        if self.profile.usage_placement == "x_groq":
            obj["x_groq"] = {"id": f"req_{self.ctx.request_id}"}
        return self.sse(compact(obj))

    def _template(self, reasoning: bool, with_role: bool) -> Template:
        template = self._templates.get((reasoning, with_role))
        if template is None:
            field = self.profile.reasoning_field if reasoning else "content"
            delta: dict[str, Any] = {field: text_hole("text")}
            if with_role and not self.profile.repeat_role:
                delta = {"role": "assistant", **delta}
            template = self.template(self._chunk_obj(delta))
            self._templates[(reasoning, with_role)] = template
        return template

    def chunk(self, reasoning: bool, text: str, tokens: int) -> bytes:
        with_role, self._role_pending = self._role_pending, False
        return self._template(reasoning, with_role).fill(text)

    def chunks(self, reasoning: bool, texts: list[str], sizes: list[int]) -> list[bytes]:
        if not texts:
            return []
        first = self.chunk(reasoning, texts[0], sizes[0])
        return [first, *map(self._template(reasoning, False).fill, texts[1:])]

    # --- the end of the stream -----------------------------------------------------------
    def _usage(self, truth: RequestTruth) -> dict[str, Any]:
        prompt, out = truth.input_tokens, truth.output_tokens
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": out,
            "total_tokens": prompt + out,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": truth.reasoning_tokens},
        }
        if self.profile.cache_fields == "deepseek":
            usage.update(prompt_cache_hit_tokens=0, prompt_cache_miss_tokens=prompt)
        return usage

    def tail(self, truth: RequestTruth, now: float) -> bytes:
        p = self.profile
        times = _server_times(truth, self.ctx.tokens_per_second)
        usage = self._usage(truth)
        finish = self._chunk_obj({}, "stop")
        out = []
        if p.usage_placement == "finish":
            finish["usage"] = usage
        elif p.usage_placement == "choice":
            finish["choices"][0]["usage"] = usage
        elif p.usage_placement == "x_groq":
            groq: dict[str, Any] = dict(usage)
            if p.server_timings == "groq":
                groq.update(times)
            finish["x_groq"] = {"id": f"req_{self.ctx.request_id}", "usage": groq}
        if p.server_timings == "cerebras":
            finish["time_info"] = {**times, "created": self.ctx.created}
        if p.server_timings == "fireworks" and self.ctx.options.get("perf_metrics_in_response"):
            finish["perf_metrics"] = {
                "prompt-tokens": truth.input_tokens,
                "server-time-to-first-token": round(truth.ttft_seconds or 0.0, 6),
            }
        out.append(self.sse(compact(finish)))
        if p.usage_placement == "separate" and self.ctx.include_usage:
            if p.server_timings == "sambanova":
                usage.update(_sambanova_times(truth, self.ctx.created))
            out.append(self.sse(compact({**self._base(), "choices": [], "usage": usage})))
        elif p.usage_placement == "last":
            cost = (
                truth.input_tokens * p.price_input_per_million
                + truth.output_tokens * p.price_output_per_million
            ) / 1e6
            truth.reported_cost = cost
            usage.update(cost=cost, is_byok=False)
            last = self._chunk_obj({"content": ""})
            last["usage"] = usage
            out.append(self.sse(compact(last)))
        if p.send_done:
            out.append(self.sse("[DONE]"))
        return b"".join(out)

    def midstream_error(self) -> bytes:
        err = {"message": MIDSTREAM_MESSAGE, "type": "server_error", "code": "internal_error"}
        return self.sse(compact({"error": err}))

    def garbage(self) -> bytes:
        return self.sse('{"choices": [')

    def huge_opening(self) -> bytes:
        before, _ = self.sse_frame()
        head = compact(self._chunk_obj({"content": text_hole("x")})).split("\\u0000")[0]
        return (before + head).encode()

    def error_body(self, kind: ErrorKind, message: str) -> bytes:
        err_type, code = _ERRORS[kind]
        return json_body(
            {"error": {"message": message, "type": err_type, "param": None, "code": code}}
        )


def _server_times(truth: RequestTruth, tokens_per_second: float) -> dict[str, float]:
    """Groq/Cerebras-style self-reported times, consistent with what was actually sent."""
    ttft = truth.ttft_seconds or 0.0
    first, last = truth.first_token_sent_at, truth.last_token_sent_at
    completion = (last - first if first is not None and last is not None else 0.0) + (
        1 / tokens_per_second
    )
    prompt_time = min(ttft, truth.input_tokens / 50_000)
    return {
        "queue_time": round(max(ttft - prompt_time, 0.0), 6),
        "prompt_time": round(prompt_time, 6),
        "completion_time": round(completion, 6),
        "total_time": round(ttft + completion, 6),
    }


def _sambanova_times(truth: RequestTruth, created: float) -> dict[str, Any]:
    ttft = truth.ttft_seconds or 0.0
    first, last = truth.first_token_sent_at, truth.last_token_sent_at
    gen = last - first if first is not None and last is not None else 0.0
    total = ttft + gen
    after_first = (truth.output_tokens - 1) / gen if gen > 0 else 0.0
    return {
        "time_to_first_token": round(ttft, 6),
        "total_latency": round(total, 6),
        "completion_tokens_after_first_per_sec": round(after_first, 3),
        "completion_tokens_per_sec": round(truth.output_tokens / total, 3) if total else 0.0,
        "is_last_response": True,
        "start_time": round(created, 6),
        "end_time": round(created + total, 6),
    }
