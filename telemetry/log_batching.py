"""Log lines leave in batches: one write per 50 ms instead of one per line.

The proxy logs a line per request and the runtime one per run; at thousands a second a
write syscall per line costs more than the work it reports. Lines are still one JSON
object each, in order, at most ``FLUSH_SECONDS`` late; ``detach`` flushes them on shutdown.

While batching, ``telemetry.logs.log_event`` lines also skip the ``logging`` machinery: a
LogRecord, the logger's and handler's filters and the handler's lock cost more than
formatting the line, ~6 µs a line (docs/decisions.md). The line is the same: the
handler's own formatter makes it from the event and fields, and the logger's level is
honoured. Lines with a traceback, and other libraries' lines, go through ``logging``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TextIO

from telemetry.logs import JsonLineFormatter, send_events_to, skip_unused_record_fields

FLUSH_SECONDS = 0.05


class BatchedStream:
    def __init__(self, handler: logging.StreamHandler[TextIO], formatter: JsonLineFormatter) -> None:
        self._handler = handler
        self._target = handler.stream
        self._formatter = formatter
        self._parts: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def write(self, text: str) -> None:
        self._parts.append(text)
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # before or after the event loop runs: nothing would flush later
                self.flush_now()
                return
            self._timer = loop.call_later(FLUSH_SECONDS, self.flush_now)

    def event(self, logger: logging.Logger, event: str, level: int, fields: dict[str, Any]) -> None:
        """What ``telemetry.logs.log_event`` calls while batching: the same line, straight into the batch."""
        self.write(self._formatter.event_line(time.time(), logging.getLevelName(level), event, fields) + "\n")

    def flush(self) -> None:
        """Called by the handler after every line: the batch goes out on its timer instead."""

    def flush_now(self) -> None:
        self._timer = None
        if self._parts:
            parts, self._parts = self._parts, []
            self._target.write("".join(parts))
            self._target.flush()

    def detach(self) -> None:
        """Flush, and give the handler its own stream back: lines logged after the loop stops are not lost."""
        send_events_to(None)
        if self._timer is not None:
            self._timer.cancel()
        self.flush_now()
        self._handler.setStream(self._target)


def batch_log_writes() -> BatchedStream | None:
    """Point the JSON-lines handler configure_logging installed at a batched stream.

    Also drops the record fields no JSON line uses (caller frame, thread, process).
    """
    skip_unused_record_fields()
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and isinstance(handler.formatter, JsonLineFormatter):
            stream = BatchedStream(handler, handler.formatter)
            handler.setStream(stream)
            send_events_to(stream.event)
            return stream
    return None
