"""What the pod writes to a connection in one loop turn leaves in one write.

uvicorn writes a response's head and its body separately, so every JSON answer crossed
loopback as two TCP segments: two write syscalls in the pod, and at the reader (proxy or
runtime) often two reads and, at the proxy, two writes on (docs/benchmarks.md, "Runtime to
fleet"). Writes made in the same turn (head and body, events queued together) are joined
and sent when the turn ends, or at once when the server says the response is complete
(``flush``, serving/protocol.py); nothing waits for a later turn, so SSE events still leave
one by one as they are made.
"""

from __future__ import annotations

import asyncio
from typing import Any


class TurnWriteTransport:
    """A transport whose writes collect until the end of the loop turn; everything else is the real one."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(data)

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending:
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()  # what was written before close still goes out, as with the real transport
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
