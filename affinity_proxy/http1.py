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
    kept = [field for field in headers if field[0] not in HOP_BY_HOP and not field[0].startswith(b"proxy-")]
    if len(kept) == len(headers):
        return kept  # no Connection field, so none it names (the usual case: one pass)
    named = {token.strip().lower() for name, value in headers if name == b"connection" for token in value.split(b",")}
    return [field for field in kept if field[0] not in named] if named else kept


_HEAD_ENDS = {
    Framing.NONE: b"%s: %s\r\n\r\n" % VIA,
    Framing.LENGTH: b"%s: %s\r\n\r\n" % VIA,
    Framing.CHUNKED: b"%s: %s\r\ntransfer-encoding: chunked\r\n\r\n" % VIA,
    Framing.CLOSE: b"%s: %s\r\nconnection: close\r\n\r\n" % VIA,
}
"""Via, this hop's framing field and the blank line, per framing."""


def encode_head(start_line: bytes, headers: Headers, framing: Framing) -> bytes:
    """A message head: start line, end-to-end headers, Via, and this hop's framing field."""
    return b"".join([start_line, CRLF, *[b"%s: %s\r\n" % field for field in headers], _HEAD_ENDS[framing]])


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


def body_framing(headers: Headers) -> Framing:
    """How a message with a body delimits it: chunked wins over a length; neither means until close."""
    framing = Framing.CLOSE
    for name, _ in headers:
        if name == b"transfer-encoding":
            return Framing.CHUNKED
        if name == b"content-length":
            framing = Framing.LENGTH
    return framing


def status_has_no_body(status: int) -> bool:
    return status < 200 or status in (204, 304)
