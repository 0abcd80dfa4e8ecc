"""SSE framing, byte by byte: what pods write, and what our decoder accepts."""

from __future__ import annotations

import pytest

from wire_protocol.sse import EventStreamDecoder, encode_event


def feed_in_pieces(stream: bytes, size: int) -> list[str]:
    decoder = EventStreamDecoder()
    found: list[str] = []
    for start in range(0, len(stream), size):
        found += decoder.feed(stream[start : start + size])
    return found + decoder.close()


def test_encode_event_is_exactly_what_the_upstream_runtime_parses() -> None:
    assert encode_event(b'{"id":1}') == b'data: {"id":1}\n\n'


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 1000])
def test_events_split_across_reads_at_any_boundary(size: int) -> None:
    stream = encode_event(b'{"a":1}') + encode_event(b'{"b":2}') + encode_event(b'{"c":3}')
    assert feed_in_pieces(stream, size) == ['{"a":1}', '{"b":2}', '{"c":3}']


@pytest.mark.parametrize("text", ["é", "€", "𝄞", "日本"])
def test_multibyte_utf8_character_split_across_reads(text: str) -> None:
    payload = f'{{"text":"{text}"}}'
    stream = encode_event(payload.encode())
    assert feed_in_pieces(stream, 1) == [payload]
    for cut in range(len(stream)):
        decoder = EventStreamDecoder()
        assert decoder.feed(stream[:cut]) + decoder.feed(stream[cut:]) == [payload]


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"data: x\n\n", ["x"]),
        (b"data: x\r\n\r\n", ["x"]),
        (b"data: x\r\rdata: y\r\n\n", ["x", "y"]),
        (b"data: x\r\n\ndata: y\n\r\n", ["x", "y"]),
        (b"data:x\n\n", ["x"]),
        (b"data:  x\n\n", [" x"]),
        (b"data: one\ndata: two\n\n", ["one\ntwo"]),
        (b": keepalive\n\ndata: x\n\n", ["x"]),
        (b"event: message\nid: 7\nretry: 100\ndata: x\n\n", ["x"]),
        (b"event: ping\n\n", []),
        (b"data: x", []),
        (b"data: x\n", []),
        (b"data: x\n\ndata: unterminated", ["x"]),
    ],
    ids=[
        "lf",
        "crlf",
        "cr",
        "mixed",
        "no-space",
        "two-spaces",
        "multi-line",
        "comment",
        "other-fields",
        "no-data",
        "unterminated",
        "one-newline",
        "last-unterminated",
    ],
)
def test_framing_variants(stream: bytes, expected: list[str]) -> None:
    assert feed_in_pieces(stream, 1) == expected
    assert feed_in_pieces(stream, len(stream)) == expected


def test_crlf_split_between_cr_and_lf() -> None:
    decoder = EventStreamDecoder()
    found = decoder.feed(b"data: x\r") + decoder.feed(b"\n\r") + decoder.feed(b"\ndata: y\r\n\r\n")
    assert found == ["x", "y"]


def test_invalid_utf8_is_an_error_not_silent_loss() -> None:
    with pytest.raises(UnicodeDecodeError):
        EventStreamDecoder().feed(b"data: \xff\n\n")


def test_stream_ending_in_cr_cr_keeps_its_last_event() -> None:
    decoder = EventStreamDecoder()
    assert decoder.feed(b"data: x\r\r") + decoder.close() == ["x"]
