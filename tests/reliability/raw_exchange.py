"""One HTTP exchange over a plain socket, so a test can send what no HTTP client would.

The request goes out byte for byte; a large body is sent in pieces and sending stops as
soon as the server has answered (a server that refuses a body unread may close the
connection, and a reset would otherwise lose its answer). The answer is parsed by
``http.client``, chunked or not.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
from dataclasses import dataclass
from typing import Any

PIECE = 256 * 1024


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def error_message(self) -> str:
        """The message of a JSON error: the runtime's ``{"message"}`` or a JSON-RPC ``{"error": {"message"}}``."""
        body = self.json()
        return str(body["message"] if "message" in body else body["error"]["message"])


def encode_request(method: str, path: str, headers: tuple[tuple[str, str], ...], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: reliability.test", "Connection: close", *(f"{name}: {value}" for name, value in headers)]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _answered(sock: socket.socket, wait: float) -> bool:
    return bool(select.select([sock], [], [], wait)[0])


def _send(sock: socket.socket, data: bytes) -> None:
    head, separator, body = data.partition(b"\r\n\r\n")
    try:
        sock.sendall(head + separator)
        first_wait = 0.2 if len(body) > PIECE else 0.0  # give a server that refuses by the head the chance to say so
        for offset in range(0, len(body), PIECE):
            if _answered(sock, first_wait if offset == 0 else 0.0):
                return
            sock.sendall(body[offset : offset + PIECE])
    except (BrokenPipeError, ConnectionResetError):
        return  # the server answered and closed before taking everything


def exchange(host: str, port: int, data: bytes, timeout: float = 30.0) -> Answer:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        _send(sock, data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return Answer(response.status, {name.lower(): value for name, value in response.getheaders()}, response.read())
