"""Log lines leave in batches: one write per 50 ms instead of one per routing decision.

The proxy logs a line per request; at thousands of requests a second a write syscall
per line costs more than the forwarding itself. Lines are still one JSON object each,
in order, at most ``FLUSH_SECONDS`` late; they are flushed on shutdown too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TextIO

FLUSH_SECONDS = 0.05


class BatchedStream:
    def __init__(self, target: TextIO, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop
        self._parts: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def write(self, text: str) -> None:
        self._parts.append(text)
        if self._timer is None:
            self._timer = self._loop.call_later(FLUSH_SECONDS, self.flush_now)

    def flush(self) -> None:
        """Called by the handler after every line: the batch goes out on its timer instead."""

    def flush_now(self) -> None:
        self._timer = None
        if self._parts:
            parts, self._parts = self._parts, []
            self._target.write("".join(parts))
            self._target.flush()


def batch_log_writes(loop: asyncio.AbstractEventLoop) -> BatchedStream | None:
    """Point the JSON-lines handler configure_logging installed at a batched stream.

    Also drops the record fields no JSON line uses (caller frame, thread, process), as the
    logging documentation's "Optimization" section suggests for hot paths.
    """
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            stream = BatchedStream(handler.stream, loop)
            handler.setStream(stream)  # type: ignore[arg-type]
            return stream
    return None
