"""Ollama native `/api/chat`: NDJSON lines, the last one `done: true` with durations in ns."""

from __future__ import annotations

import json
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
    rfc3339,
    text_hole,
)
from speed_kings.simulator.truth import RequestTruth


def parse(body: bytes) -> Parsed:
    data = json_object(body)
    if data.get("stream", True) is not True:
        raise BadRequest("the simulator only serves streamed chats: leave stream unset or true")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model is required")
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise BadRequest("options must be an object")
    limit = options.get("num_predict")
    # Ollama reads -1 (and -2) as "no limit"; the profile's default stands in for that.
    limit = None if isinstance(limit, int) and limit < 0 else positive_int(limit, "num_predict")
    return Parsed(model=model, max_tokens=limit, prompt_words=count_words(data.get("messages", [])))


def auth_ok(headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
    return True  # Ollama has no authentication


def ns(seconds: float) -> int:
    return max(0, round(seconds * 1e9))


class OllamaRenderer(Renderer):
    content_type = "application/x-ndjson"
    wire = "ollama"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._created_at = rfc3339(ctx.created)
        self._templates: dict[bool, Template] = {}

    def _line(self, obj: dict[str, Any]) -> bytes:
        return (compact(obj) + "\n").encode()

    def _message(self, message: dict[str, Any], done: bool) -> dict[str, Any]:
        message = {"role": "assistant", **message}
        return {
            "model": self.ctx.model,
            "created_at": self._created_at,
            "message": message,
            "done": done,
        }

    def keepalive(self) -> bytes | None:
        return None  # NDJSON has no comment lines

    def _template(self, reasoning: bool) -> Template:
        template = self._templates.get(reasoning)
        if template is None:
            message = (
                {"content": "", "thinking": text_hole("text")}
                if reasoning
                else {"content": text_hole("text")}
            )
            template = Template(self._message(message, False), after="\n")
            self._templates[reasoning] = template
        return template

    def chunk(self, reasoning: bool, text: str, tokens: int) -> bytes:
        return self._template(reasoning).fill(text)

    def chunks(self, reasoning: bool, texts: list[str], sizes: list[int]) -> list[bytes]:
        return list(map(self._template(reasoning).fill, texts))

    def tail(self, truth: RequestTruth, now: float) -> bytes:
        load = truth.model_load_seconds or 0.0
        token_time = 1 / self.ctx.tokens_per_second
        first, last = truth.first_token_sent_at, truth.last_token_sent_at
        if first is not None and last is not None:
            # Prompt evaluation ends when the first token is generated; eval covers them all.
            prompt_eval = max(first - truth.received_at - load - token_time, 0.0)
            eval_duration = last - first + token_time
        else:
            prompt_eval, eval_duration = max(now - truth.received_at - load, 0.0), 0.0
        final = self._message({"content": ""}, True)
        final.update(
            done_reason="stop",
            total_duration=ns(now - truth.received_at),
            load_duration=ns(load),
            prompt_eval_count=truth.input_tokens,
            prompt_eval_duration=ns(prompt_eval),
            eval_count=truth.output_tokens,
            eval_duration=ns(eval_duration),
        )
        return self._line(final)

    def midstream_error(self) -> bytes:
        return self._line({"error": MIDSTREAM_MESSAGE})

    def garbage(self) -> bytes:
        return ('{"model": ' + json.dumps(self.ctx.model) + ', "message": {\n').encode()

    def huge_opening(self) -> bytes:
        return (
            compact(self._message({"content": text_hole("x")}, False)).split("\\u0000")[0].encode()
        )

    def error_body(self, kind: ErrorKind, message: str) -> bytes:
        return json_body({"error": message})
