"""SSE and NDJSON framing over every documented shape, split at any byte."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speed_kings.wire.framing import LineTooLong, NDJSONParser, SSEParser

OPENAI_STREAM = (
    b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n'
    b": keep-alive\n\n"
    b'data: {"choices":[{"delta":{"content":"Hi \xc3\xa9t\xc3\xa9"}}]}\n\n'
    b"data: [DONE]\n\n"
)
EXPECTED = [
    ("", '{"choices":[{"delta":{"role":"assistant","content":""}}]}'),
    ("", '{"choices":[{"delta":{"content":"Hi été"}}]}'),
    ("", "[DONE]"),
]


def feed_all(parser: SSEParser | NDJSONParser, pieces: list[bytes]) -> list[tuple[str, str]]:
    events = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    events.extend(parser.close())
    return events


def test_whole_stream() -> None:
    parser = SSEParser()
    assert feed_all(parser, [OPENAI_STREAM]) == EXPECTED
    assert parser.comments == 1


@pytest.mark.parametrize("cut", range(1, len(OPENAI_STREAM)))
def test_split_at_every_byte(cut: int) -> None:
    assert feed_all(SSEParser(), [OPENAI_STREAM[:cut], OPENAI_STREAM[cut:]]) == EXPECTED


def test_one_byte_at_a_time() -> None:
    pieces = [OPENAI_STREAM[i : i + 1] for i in range(len(OPENAI_STREAM))]
    assert feed_all(SSEParser(), pieces) == EXPECTED


@pytest.mark.parametrize("newline", [b"\r\n", b"\r", b"\n"])
def test_line_endings_and_no_space_after_colon(newline: bytes) -> None:
    stream = newline.join([b'data:{"a":1}', b"", b": comment", b"", b"data:[DONE]", b"", b""])
    for cut in range(1, len(stream)):
        assert feed_all(SSEParser(), [stream[:cut], stream[cut:]]) == [
            ("", '{"a":1}'),
            ("", "[DONE]"),
        ]


def test_named_events_multiline_data_and_ignored_fields() -> None:
    stream = (
        b'event: message_start\ndata: {"a":\ndata: 1}\nid: 7\nretry: 10\n\n'
        b"event: ping\ndata: {}\n\n"
        b"event: orphan\n\n"  # no data: not dispatched, name does not leak
        b'data: {"b":2}\n\n'
    )
    assert feed_all(SSEParser(), [stream]) == [
        ("message_start", '{"a":\n1}'),
        ("ping", "{}"),
        ("", '{"b":2}'),
    ]


def test_stream_ending_without_blank_line_or_done() -> None:
    assert feed_all(SSEParser(), [b'data: {"x":1}\n\ndata: {"y":2}']) == [
        ("", '{"x":1}'),
        ("", '{"y":2}'),
    ]


def test_unterminated_line_is_bounded() -> None:
    parser = SSEParser(max_line_bytes=1024)
    parser.feed(b"data: " + b"x" * 1000)
    with pytest.raises(LineTooLong):
        parser.feed(b"x" * 100)


def test_ndjson_lines_blank_lines_and_crlf() -> None:
    stream = b'{"a":1}\r\n\n{"b":2}\n{"c":3}'
    for cut in range(1, len(stream)):
        assert feed_all(NDJSONParser(), [stream[:cut], stream[cut:]]) == [
            ("", '{"a":1}'),
            ("", '{"b":2}'),
            ("", '{"c":3}'),
        ]


@given(st.lists(st.integers(min_value=0, max_value=len(OPENAI_STREAM)), max_size=12))
def test_any_split_points_give_the_same_events(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(OPENAI_STREAM)]
    pieces = [OPENAI_STREAM[a:b] for a, b in itertools.pairwise(bounds)]
    assert feed_all(SSEParser(), pieces) == EXPECTED


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(blob: bytes) -> None:
    for parser in (SSEParser(max_line_bytes=512), NDJSONParser(max_line_bytes=512)):
        with contextlib.suppress(LineTooLong):
            feed_all(parser, [blob[: len(blob) // 2], blob[len(blob) // 2 :]])
