"""Incremental stream framing: bytes as they arrive in, complete events out.

Both parsers accept reads split at any byte (inside a line, inside a CRLF, inside a UTF-8
sequence) and refuse to buffer an unterminated line beyond `max_line_bytes`, so a hostile
stream cannot grow memory without bound.
"""

from __future__ import annotations

DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024

Event = tuple[str, str]  # (SSE event name or "", data)


class LineTooLong(ValueError):
    pass


class _LineSplitter:
    """Splits on LF, CRLF and lone CR (the SSE spec allows all three)."""

    __slots__ = ("_buf", "_max")

    def __init__(self, max_line_bytes: int) -> None:
        self._buf = b""
        self._max = max_line_bytes

    def split(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            # A trailing CR may be the first half of a CRLF: keep it for the next read.
            hold = buf.endswith(b"\r")
            if hold:
                buf = buf[:-1]
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if hold:
                buf += b"\r"
        lines = buf.split(b"\n")
        rest = lines.pop()
        if len(rest) > self._max:
            raise LineTooLong(f"a stream line exceeded {self._max} bytes without a line break")
        self._buf = rest
        return lines

    def flush(self) -> list[bytes]:
        rest, self._buf = self._buf.rstrip(b"\r"), b""
        return [rest] if rest else []


class SSEParser:
    """Server-sent events (WHATWG): `event:`/`data:` fields, `:` comments, blank-line dispatch.

    Comments (keep-alives such as `: keep-alive`) and field-less lines produce nothing. A
    stream that ends without its final blank line still dispatches its last event.
    """

    __slots__ = ("_data", "_event", "_lines", "comments")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._lines = _LineSplitter(max_line_bytes)
        self._data: list[bytes] = []
        self._event = b""
        self.comments = 0

    def feed(self, chunk: bytes) -> list[Event]:
        return self._process(self._lines.split(chunk))

    def close(self) -> list[Event]:
        events = self._process(self._lines.flush())
        if self._data:
            events.append(self._dispatch())
        return events

    def _dispatch(self) -> Event:
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        event = (self._event.decode("utf-8", "replace"), data.decode("utf-8", "replace"))
        self._data = []
        self._event = b""
        return event

    def _process(self, lines: list[bytes]) -> list[Event]:
        events: list[Event] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(self._dispatch())
                else:
                    self._event = b""
                continue
            if line[0] == 58:  # ":" comment / keep-alive
                self.comments += 1
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._event = value
            # `id` and `retry` do not matter for a single non-resumed request.
        return events


class NDJSONParser:
    """Newline-delimited JSON: one event per non-blank line."""

    __slots__ = ("_lines",)

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._lines = _LineSplitter(max_line_bytes)

    def feed(self, chunk: bytes) -> list[Event]:
        return [
            ("", line.decode("utf-8", "replace"))
            for line in self._lines.split(chunk)
            if line.strip()
        ]

    def close(self) -> list[Event]:
        return [
            ("", line.decode("utf-8", "replace")) for line in self._lines.flush() if line.strip()
        ]


def parser_for(
    framing: str, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> SSEParser | NDJSONParser:
    return SSEParser(max_line_bytes) if framing == "sse" else NDJSONParser(max_line_bytes)
