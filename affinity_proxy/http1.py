"""HTTP/1.1 message heads and body framing as a proxy rewrites them (RFC 9110 §7.6.1, RFC 9112).

Pure. Header names arrive lower-cased from the parsers. Hop-by-hop fields (and those
the Connection field names) are dropped; each hop then gets its own framing: a
Content-Length body is passed as is, anything else is re-chunked (or, for an HTTP/1.0
client, delimited by closing the connection).
"""

from __future__ import annotations

import enum

Headers = list[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
VIA = (b"via", b"1.1 affinity-proxy")
CRLF = b"\r\n"
LAST_CHUNK = b"0\r\n\r\n"


class Framing(enum.Enum):
    NONE = "none"
    """No body at all."""
    LENGTH = "length"
    """Content-Length, passed through unchanged."""
    CHUNKED = "chunked"
    CLOSE = "close"
    """Body runs until the connection closes (HTTP/1.0 clients, or an upstream without length)."""


def end_to_end(headers: Headers) -> Headers:
    """Drop hop-by-hop fields, Proxy-* fields and every field the Connection header names."""
    named: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            named.update(token.strip().lower() for token in value.split(b","))
    return [
        (name, value)
        for name, value in headers
        if name not in HOP_BY_HOP and name not in named and not name.startswith(b"proxy-")
    ]


def header_value(headers: Headers, wanted: bytes) -> bytes | None:
    for name, value in headers:
        if name == wanted:
            return value
    return None


def encode_head(start_line: bytes, headers: Headers, framing: Framing) -> bytes:
    """A message head: start line, end-to-end headers, Via, and this hop's framing field."""
    lines = [start_line]
    lines.extend(name + b": " + value for name, value in headers)
    lines.append(VIA[0] + b": " + VIA[1])
    if framing is Framing.CHUNKED:
        lines.append(b"transfer-encoding: chunked")
    elif framing is Framing.CLOSE:
        lines.append(b"connection: close")
    lines.append(CRLF)
    return CRLF.join(lines)


def request_line(method: bytes, target: bytes) -> bytes:
    return method + b" " + target + b" HTTP/1.1"


def status_line(status: int, reason: bytes) -> bytes:
    return b"HTTP/1.1 %d %s" % (status, reason)


def encode_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def response_framing(upstream: Framing, client_http_1_0: bool) -> Framing:
    """How the client hop carries an upstream body: length as is; otherwise chunks or close."""
    if upstream in (Framing.LENGTH, Framing.NONE):
        return upstream
    return Framing.CLOSE if client_http_1_0 else Framing.CHUNKED


def status_has_no_body(status: int) -> bool:
    return status < 200 or status in (204, 304)
