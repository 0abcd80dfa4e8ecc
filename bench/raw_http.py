"""A minimal keep-alive HTTP/1.1 client for the runtime benchmarks.

httpx costs more CPU per request than the servers it would measure, and the client
shares the machine's cores with them: this one costs ~40 µs per request.
"""

from __future__ import annotations

import asyncio


class RawConnection:
    """One connection, one request at a time; the answer needs a Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self._reader = reader
        self._writer = writer
        self._host = host

    @classmethod
    async def open(cls, address: str, port: int) -> RawConnection:
        return cls(*await asyncio.open_connection(address, port), address)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        head = f"POST {path} HTTP/1.1\r\nHost: {self._host}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        self._writer.write(head.encode() + body)
        status_line, *header_lines = (await self._reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        length = next(int(line.split(":", 1)[1]) for line in header_lines if line.lower().startswith("content-length:"))
        return int(status_line.split()[1]), await self._reader.readexactly(length)

    def close(self) -> None:
        self._writer.close()
