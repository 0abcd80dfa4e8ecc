"""Server-Sent Events framing: the exact bytes a pod writes, and a decoder for any framing.

Pods write exactly ``data: <compact json>\\n\\n`` because the upstream runtime accepts
nothing else (protocol.md §7). Our decoder accepts everything the SSE standard
allows (CRLF / CR / LF line ends, ``data:`` with or without the space, multi-line data,
comments) and buffers bytes, so a multi-byte UTF-8 character split across reads is
never lost. Line and field parsing are httpx-sse's; this module adds byte handling.
"""

from __future__ import annotations

import codecs

from httpx_sse._decoders import SSEDecoder, SSELineDecoder

EVENT_PREFIX = b"data: "
EVENT_END = b"\n\n"


def encode_event(payload: bytes) -> bytes:
    """Frame one compact JSON message (it must not contain a raw newline) as an SSE event."""
    return EVENT_PREFIX + payload + EVENT_END


class EventStreamDecoder:
    """Incremental decoder: feed raw bytes as they arrive, get the data of complete events."""

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._lines = SSELineDecoder()
        self._events = SSEDecoder()

    def feed(self, chunk: bytes) -> list[str]:
        """Return the ``data`` of every event completed by this chunk (events without data are skipped)."""
        text = self._text.decode(chunk)
        if not text:
            return []
        return self._dispatch(self._lines.decode(text))

    def close(self) -> list[str]:
        """End of stream: events the held-back last line completes (a trailing CR) still count;
        an unterminated last event is discarded, as the SSE standard says."""
        self._text.decode(b"", final=True)
        return self._dispatch(self._lines.flush())

    def _dispatch(self, lines: list[str]) -> list[str]:
        found: list[str] = []
        for line in lines:
            event = self._events.decode(line)
            if event is not None and event.data:
                found.append(event.data)
        return found
