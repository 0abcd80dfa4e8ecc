"""The proxy's writes of one event-loop iteration, sent once every read of the iteration is handled.

A request or answer written the moment it is read wakes its receiver (a pod, the client) once
per message, and the receiver's answer then comes back alone. Written together after the
iteration's reads, as HAProxy's event loop does, the receivers find several ready sockets per
wake-up and the proxy several answers per poll: less CPU per request on every side of it
(docs/decisions.md, "the proxy's outbox"; docs/benchmarks.md). The delay is one loop turn.
One queue for every transport keeps each transport's order; writes in a row to one transport are
joined, so they leave in one syscall, until ``JOIN_LIMIT`` (a stream's reads of one iteration, up
to 32 of 64 KiB in uvloop, are not copied over and over).
"""

from __future__ import annotations

import asyncio
from typing import Final

JOIN_LIMIT: Final = 65536


class Outbox:
    """One per proxy (and so per event loop)."""

    def __init__(self) -> None:
        self._transports: list[asyncio.Transport] = []
        self._data: list[bytes] = []

    def write(self, transport: asyncio.Transport, data: bytes) -> None:
        transports = self._transports
        if not transports:
            asyncio.get_running_loop().call_soon(self.flush)
        elif transports[-1] is transport and len(self._data[-1]) < JOIN_LIMIT:
            self._data[-1] += data
            return
        transports.append(transport)
        self._data.append(data)

    def flush(self) -> None:
        """Send everything collected, now: at the end of the iteration, and before a transport is closed
        (what was written before a close leaves before it)."""
        transports, data = self._transports, self._data
        if not transports:
            return
        self._transports, self._data = [], []
        for index, transport in enumerate(transports):
            if not transport.is_closing():
                transport.write(data[index])
