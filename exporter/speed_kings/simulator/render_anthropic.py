"""Anthropic Messages streaming: named events, thinking block before the text block."""

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

_ERRORS: Mapping[ErrorKind, str] = {
    "auth": "authentication_error",
    "bad_request": "invalid_request_error",
    "not_found": "not_found_error",
    "rate_limit": "rate_limit_error",
    "overloaded": "overloaded_error",
    "overloaded_529": "overloaded_error",
    "server_error": "api_error",
}


def parse(body: bytes) -> Parsed:
    data = json_object(body)
    if data.get("stream") is not True:
        raise BadRequest("the simulator only serves streamed messages: set stream=true")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: Field required")
    limit = positive_int(data.get("max_tokens"), "max_tokens")
    if limit is None:
        raise BadRequest("max_tokens: Field required")
    words = count_words(data.get("messages", [])) + count_words(data.get("system", ""))
    return Parsed(model=model, max_tokens=limit, prompt_words=words)


def auth_ok(headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
    return bool(headers.get("x-api-key")) and bool(headers.get("anthropic-version"))


class AnthropicRenderer(Renderer):
    wire = "anthropic"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._thinking = ctx.reasoning_planned > 0
        self._index = 0  # the content block being streamed
        self._in_answer = not self._thinking
        self._delta: dict[bool, Template] = {}

    def _event(self, event: str, obj: dict[str, Any]) -> bytes:
        return self.sse(compact(obj), event)

    def _block_start(self, index: int, thinking: bool) -> bytes:
        block = (
            {"type": "thinking", "thinking": "", "signature": ""}
            if thinking
            else {"type": "text", "text": ""}
        )
        obj = {"type": "content_block_start", "index": index, "content_block": block}
        return self._event("content_block_start", obj)

    def _block_stop(self) -> bytes:
        return self._event(
            "content_block_stop", {"type": "content_block_stop", "index": self._index}
        )

    def prelude(self) -> bytes:
        message: dict[str, Any] = {
            "id": f"msg_{self.ctx.request_id}",
            "type": "message",
            "role": "assistant",
            "model": self.ctx.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": self.ctx.input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 1,  # what the API really says before anything is generated
            },
        }
        return (
            self._event("message_start", {"type": "message_start", "message": message})
            + self._block_start(0, self._thinking)
            + self._event("ping", {"type": "ping"})
        )

    def chunk(self, reasoning: bool, text: str, tokens: int) -> bytes:
        switch = b""
        if not reasoning and not self._in_answer:
            # The thinking block closes (with its signature) in the same write as the first
            # answer text, so the chunk count per text stays one write.
            signature = {"type": "signature_delta", "signature": "c2ltdWxhdGVk"}
            switch = self._event(
                "content_block_delta",
                {"type": "content_block_delta", "index": self._index, "delta": signature},
            )
            switch += self._block_stop()
            self._index += 1
            self._in_answer = True
            switch += self._block_start(self._index, False)
        return switch + self._template(reasoning).fill(text)

    def _template(self, reasoning: bool) -> Template:
        template = self._delta.get(reasoning)
        if template is None:
            delta = (
                {"type": "thinking_delta", "thinking": text_hole("text")}
                if reasoning
                else {"type": "text_delta", "text": text_hole("text")}
            )
            obj = {"type": "content_block_delta", "index": self._index, "delta": delta}
            template = self._delta[reasoning] = self.template(obj, "content_block_delta")
        return template

    def chunks(self, reasoning: bool, texts: list[str], sizes: list[int]) -> list[bytes]:
        if not texts:
            return []
        first = self.chunk(reasoning, texts[0], sizes[0])  # may open the text block
        return [first, *map(self._template(reasoning).fill, texts[1:])]

    def tail(self, truth: RequestTruth, now: float) -> bytes:
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": truth.output_tokens},
        }
        return (
            self._block_stop()
            + self._event("message_delta", delta)
            + self._event("message_stop", {"type": "message_stop"})
        )

    def midstream_error(self) -> bytes:
        # api_error, like the other wires' 500-class error (overloaded is a separate fault).
        err = {"type": "api_error", "message": MIDSTREAM_MESSAGE}
        return self._event("error", {"type": "error", "error": err})

    def garbage(self) -> bytes:
        return self.sse('{"type": "content_block_delta", "delta": {', "content_block_delta")

    def huge_opening(self) -> bytes:
        before, _ = self.sse_frame("content_block_delta")
        obj = {
            "type": "content_block_delta",
            "index": self._index,
            "delta": {"type": "text_delta", "text": text_hole("x")},
        }
        return (before + compact(obj).split("\\u0000")[0]).encode()

    def error_body(self, kind: ErrorKind, message: str) -> bytes:
        return json_body(
            {
                "type": "error",
                "error": {"type": _ERRORS[kind], "message": message},
                "request_id": self.ctx.request_id,
            }
        )
