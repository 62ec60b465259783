"""Gemini `streamGenerateContent?alt=sse`: every event a full response with cumulative usage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from speed_kings.simulator.render_base import (
    MIDSTREAM_MESSAGE,
    STATUS,
    BadRequest,
    Context,
    ErrorKind,
    Parsed,
    Renderer,
    Template,
    compact,
    count_words,
    int_hole,
    json_body,
    json_object,
    positive_int,
    text_hole,
)
from speed_kings.simulator.truth import RequestTruth

_STATUS: Mapping[ErrorKind, str] = {
    "auth": "UNAUTHENTICATED",
    "bad_request": "INVALID_ARGUMENT",
    "not_found": "NOT_FOUND",
    "rate_limit": "RESOURCE_EXHAUSTED",
    "overloaded": "UNAVAILABLE",
    "overloaded_529": "UNAVAILABLE",
    "server_error": "INTERNAL",
}


def parse(body: bytes, model: str, query: Mapping[str, str]) -> Parsed:
    if query.get("alt") != "sse":
        raise BadRequest("the simulator only serves alt=sse streams")
    data = json_object(body)
    config = data.get("generationConfig") or {}
    if not isinstance(config, dict):
        raise BadRequest("generationConfig must be an object")
    words = count_words(data.get("contents", [])) + count_words(data.get("systemInstruction", {}))
    limit = positive_int(config.get("maxOutputTokens"), "generationConfig.maxOutputTokens")
    return Parsed(model=model, max_tokens=limit, prompt_words=words)


def auth_ok(headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
    return bool(headers.get("x-goog-api-key") or query.get("key"))


class GeminiRenderer(Renderer):
    wire = "gemini"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._answer = 0
        self._thoughts = 0
        self._templates: dict[bool, Template] = {}

    def _usage(self, answer: Any, thoughts: Any, total: Any) -> dict[str, Any]:
        usage = {
            "promptTokenCount": self.ctx.input_tokens,
            "candidatesTokenCount": answer,
            "totalTokenCount": total,
        }
        if self.ctx.reasoning_planned:
            usage["thoughtsTokenCount"] = thoughts
        return usage

    def _response(
        self, part: dict[str, Any], usage: dict[str, Any], finish: str | None = None
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": [part], "role": "model"}}
        if finish:
            candidate["finishReason"] = finish
        candidate["index"] = 0
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": self.ctx.model,
            "responseId": self.ctx.request_id,
        }

    def chunk(self, reasoning: bool, text: str, tokens: int) -> bytes:
        if reasoning:
            self._thoughts += tokens
        else:
            self._answer += tokens
        template = self._templates.get(reasoning)
        if template is None:
            part: dict[str, Any] = {"text": text_hole("text")}
            if reasoning:
                part["thought"] = True
            usage = self._usage(int_hole("answer"), int_hole("thoughts"), int_hole("total"))
            template = self._templates[reasoning] = self.template(self._response(part, usage))
        return template.render(
            text=text,
            answer=self._answer,
            thoughts=self._thoughts,
            total=self.ctx.input_tokens + self._answer + self._thoughts,
        )

    def tail(self, truth: RequestTruth, now: float) -> bytes:
        answer = truth.output_tokens - truth.reasoning_tokens
        usage = self._usage(
            answer, truth.reasoning_tokens, truth.input_tokens + truth.output_tokens
        )
        return self.sse(compact(self._response({"text": ""}, usage, "STOP")))

    def midstream_error(self) -> bytes:
        err = {"code": 500, "message": MIDSTREAM_MESSAGE, "status": "INTERNAL"}
        return self.sse(compact({"error": err}))

    def garbage(self) -> bytes:
        return self.sse('{"candidates": [{"content": {"parts": [')

    def huge_opening(self) -> bytes:
        before, _ = self.sse_frame()
        return (before + '{"candidates":[{"content":{"parts":[{"text":"').encode()

    def error_body(self, kind: ErrorKind, message: str) -> bytes:
        error: dict[str, Any] = {"code": STATUS[kind], "message": message, "status": _STATUS[kind]}
        if kind == "rate_limit":
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": "34.4s",
                }
            ]
        return json_body({"error": error})

    def error_headers(self, kind: ErrorKind) -> dict[str, str]:
        return {}  # Gemini says when to retry in the body only
