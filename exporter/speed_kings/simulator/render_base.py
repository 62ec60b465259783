"""What every wire's request parser and stream renderer share.

A renderer turns one request into bytes: the prelude written with the headers, one chunk
per group of tokens, keep-alives, the tail (finish, usage, terminator) and the bytes of each
fault. Token chunks go through `Template`s, JSON rendered once with holes, so pre-rendering
20,000 chunks costs milliseconds, not the first token's deadline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from speed_kings.simulator.profiles import Profile
from speed_kings.simulator.truth import RequestTruth

ErrorKind = Literal[
    "auth",
    "bad_request",
    "not_found",
    "rate_limit",
    "overloaded",
    "overloaded_529",
    "server_error",
]

STATUS: Mapping[ErrorKind, int] = {
    "auth": 401,
    "bad_request": 400,
    "not_found": 404,
    "rate_limit": 429,
    "overloaded": 503,
    "overloaded_529": 529,
    "server_error": 500,
}

MIDSTREAM_MESSAGE = "simulated failure in the middle of the stream"
FILLER = b"x" * 65536  # what the `huge` fault streams, block by block


class BadRequest(Exception):
    """The request is malformed for its wire; answered with 400 in that wire's error shape."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """What the simulator needs from a request body."""

    model: str
    max_tokens: int | None
    prompt_words: int
    include_usage: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Context:
    """One request as the renderer sees it."""

    request_id: str
    profile: Profile
    model: str = ""
    input_tokens: int = 0
    include_usage: bool = False
    reasoning_planned: int = 0  # reasoning tokens the stream carries if all goes well
    tokens_per_second: float = 1.0
    ttft_seconds: float = 0.0  # planned, jitter and diurnal load included
    created: float = 0.0  # wall clock at arrival
    options: Mapping[str, Any] = field(default_factory=dict)


def text_hole(name: str) -> str:
    """A placeholder for a JSON string's content (the text must already be JSON-safe)."""
    return f"\x00{name}\x00"


def int_hole(name: str) -> str:
    """A placeholder for an integer value."""
    return f"\x01{name}\x01"


_TEXT_HOLE = re.compile(r"\\u0000(\w+)\\u0000")
_INT_HOLE = re.compile(r'"\\u0001(\w+)\\u0001"')


def compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


class Template:
    """A JSON document framed for the wire, with holes filled by %-formatting, or for the
    common single `text` hole by concatenation (about 0.2 us a chunk)."""

    __slots__ = ("_fmt", "_head", "_tail")

    def __init__(self, obj: Any, before: str = "", after: str = "") -> None:
        body = compact(obj)
        head, _, tail = body.partition("\\u0000text\\u0000")
        self._head, self._tail = (before + head).encode(), (tail + after).encode()
        body = _TEXT_HOLE.sub(r"%(\1)s", body.replace("%", "%%"))
        body = _INT_HOLE.sub(r"%(\1)d", body)
        self._fmt = before.replace("%", "%%") + body + after.replace("%", "%%")

    def render(self, **values: str | int) -> bytes:
        return (self._fmt % values).encode()

    def fill(self, text: str) -> bytes:
        """Only for templates whose single hole is `text_hole("text")`."""
        return self._head + text.encode() + self._tail


def rfc3339(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat().replace("+00:00", "Z")


def json_body(obj: Any) -> bytes:
    return compact(obj).encode()


class Renderer:
    """Base renderer; subclasses implement the wire. One instance per request (stateful:
    it knows whether the role was sent and how many tokens earlier chunks carried)."""

    content_type = "text/event-stream"
    wire = ""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.profile = ctx.profile
        self._le = ctx.profile.line_ending

    # --- framing -------------------------------------------------------------------------
    def sse(self, data: str, event: str | None = None) -> bytes:
        before, after = self.sse_frame(event)
        return (before + data + after).encode()

    def sse_frame(self, event: str | None = None) -> tuple[str, str]:
        head = f"event: {event}{self._le}" if event else ""
        return head + self.profile.data_prefix, self._le + self._le

    def template(self, obj: Any, event: str | None = None) -> Template:
        before, after = self.sse_frame(event)
        return Template(obj, before, after)

    # --- the stream ----------------------------------------------------------------------
    def stream_headers(self) -> dict[str, str]:
        return {"Content-Type": self.content_type, "Cache-Control": "no-cache"}

    def prelude(self) -> bytes:
        return b""

    def keepalive(self) -> bytes | None:
        if self.profile.keepalive is None:
            return None
        return (self.profile.keepalive + self._le + self._le).encode()

    def chunk(self, reasoning: bool, text: str, tokens: int) -> bytes:
        raise NotImplementedError

    def chunks(self, reasoning: bool, texts: list[str], sizes: list[int]) -> list[bytes]:
        """A run of chunks of one kind, in order. Renderers override it with a fast path."""
        return [self.chunk(reasoning, t, n) for t, n in zip(texts, sizes, strict=True)]

    def tail(self, truth: RequestTruth, now: float) -> bytes:
        raise NotImplementedError

    def midstream_error(self) -> bytes:
        raise NotImplementedError

    def garbage(self) -> bytes:
        raise NotImplementedError

    def huge_opening(self) -> bytes:
        """The start of a line that never ends (the `huge` fault)."""
        raise NotImplementedError

    # --- errors --------------------------------------------------------------------------
    def error_body(self, kind: ErrorKind, message: str) -> bytes:
        raise NotImplementedError

    def error_headers(self, kind: ErrorKind) -> dict[str, str]:
        return {"Retry-After": "7"} if kind == "rate_limit" else {}


def count_words(value: Any) -> int:
    """Words in every string inside `value`: the simulator's deterministic 'tokenizer'."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, Mapping):
        return sum(count_words(v) for k, v in value.items() if k in _TEXT_KEYS)
    if isinstance(value, list):
        return sum(count_words(v) for v in value)
    return 0


_TEXT_KEYS = frozenset({"content", "text", "parts", "system", "messages", "contents"})


def positive_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"{name} must be a positive integer")
    return value


def json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data
