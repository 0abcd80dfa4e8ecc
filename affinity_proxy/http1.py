"""HTTP/1.1 message heads and body framing as a proxy rewrites them (RFC 9110 §7.6.1, RFC 9112).

Pure. Header names arrive lower-cased from the parsers. Hop-by-hop fields (and those
the Connection field names) are dropped; each hop then gets its own framing: a
Content-Length body is passed as is, anything else is re-chunked (or, for an HTTP/1.0
client, delimited by closing the connection).
"""

from __future__ import annotations

import enum
import re
from typing import Final

Headers = list[tuple[bytes, bytes]]

HOP_BY_HOP: Final = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"})
VIA: Final = (b"via", b"1.1 affinity-proxy")
CRLF: Final = b"\r\n"
LAST_CHUNK: Final = b"0\r\n\r\n"


class Framing(enum.Enum):
    __hash__ = object.__hash__  # members are singletons compared by identity; Enum's own hash runs in Python
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


_HEAD_ENDS: Final = {
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


def encode_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def response_framing(upstream: Framing, client_http_1_0: bool) -> Framing:
    """How the client hop carries an upstream body: length as is; otherwise chunks or close."""
    if upstream in (Framing.LENGTH, Framing.NONE):
        return upstream
    return Framing.CLOSE if client_http_1_0 else Framing.CHUNKED


_RESPONSE_FIELD: Final = re.compile(rb"\r\n(c(?:ontent-length|onnection)|keep-alive|proxy-[^:\r]*|t(?:e|railer|ransfer-encoding)|upgrade)[ \t]*:")
"""The fields of a lower-cased response head that decide its framing or are hop-by-hop (most heads have one: Content-Length)."""


def response_head_fields(raw_head: bytes) -> tuple[Framing, bool]:
    """How a message with a body delimits it (chunked wins over a length; neither means until close),
    and whether its head has a hop-by-hop field: one scan of the head lower-cased (substring searches
    for the usual head's fields were measured dearer: ~2k instructions each; the scan with
    ``re.IGNORECASE`` costs twice the lowering and a case-sensitive scan)."""
    framing, hop_by_hop = Framing.CLOSE, False
    for name in _RESPONSE_FIELD.findall(raw_head.lower()):
        if name == b"content-length":
            if framing is Framing.CLOSE:
                framing = Framing.LENGTH
        else:
            hop_by_hop = True
            if name == b"transfer-encoding":
                framing = Framing.CHUNKED
    return framing, hop_by_hop


def head_fields(raw_head: bytes) -> tuple[bytes, Headers]:
    """The start line and the fields (names lower-cased) of a head the parser has already accepted."""
    start, *lines = raw_head.split(CRLF)
    fields = []
    for line in lines:
        if line:
            name, _, value = line.partition(b":")
            fields.append((name.lower(), value.strip(b" \t")))
    return start, fields


def says_http_1_1(raw_head: bytes, method: bytes, target: bytes) -> bool:
    """The head as it came (the parser has accepted it) begins ``method SP target SP HTTP/1.1 CRLF``,
    single-spaced as clients write it: read at that offset, not searched for (``get_http_version()``
    formats a string, ``find`` is a Python method call: ~1.5k instructions a request). Any other spacing
    says no, so the head is rebuilt: the target holds no space, so a version found there is the line's."""
    start = len(method) + 1 + len(target)
    return raw_head[start : start + 11] == b" HTTP/1.1\r\n"


def forwarded_request_head(raw_head: bytes | None, method: bytes, target: bytes, headers: Headers, framing: Framing) -> bytes:
    """The head a pod gets: the client's head as it came, plus ``Via``, when ``raw_head`` is given (the
    caller found it says HTTP/1.1 and has no hop-by-hop or ``Expect`` field: the usual request);
    otherwise rebuilt from the parsed fields."""
    if raw_head is not None:
        return raw_head + _HEAD_ENDS[framing]
    return encode_head(request_line(method, target), end_to_end(headers), framing)


def connection_field(keep_alive: bool, http_1_0: bool) -> bytes | None:
    """The Connection field of an answer on the client hop: ``close`` when the proxy closes after it;
    ``keep-alive`` when it keeps an HTTP/1.0 client's connection, which without it the client takes as
    closing after the answer (RFC 9112 §9.3 and appendix C.2.2: ``ab -k`` waits for the close); else none."""
    if not keep_alive:
        return b"close"
    return b"keep-alive" if http_1_0 else None


def relayed_response_head(raw_head: bytes, framing: Framing, connection: bytes | None, hop_by_hop: bool) -> bytes:
    """The head the client gets for a pod's head (``raw_head``: its lines, each ending in CRLF, without
    the blank line; ``connection``: this hop's Connection field, from ``connection_field``;
    ``hop_by_hop``: it has such a field, from ``response_head_fields``).

    A head without hop-by-hop fields (HTTP/1.1: the usual head) is passed as it came, plus this
    hop's Connection field, ``Via`` and its framing field. Anything else is rebuilt.
    """
    if not hop_by_hop and raw_head.startswith(b"HTTP/1.1 "):
        if connection is None or framing is Framing.CLOSE:  # a close-delimited head's end says close
            return raw_head + _HEAD_ENDS[framing]
        return raw_head + b"connection: " + connection + CRLF + _HEAD_ENDS[framing]
    start, fields = head_fields(raw_head)
    kept = end_to_end(fields)
    if connection is not None and framing is not Framing.CLOSE:
        kept.append((b"connection", connection))
    return encode_head(b"HTTP/1.1 " + start.partition(b" ")[2], kept, framing)


def status_has_no_body(status: int) -> bool:
    return status < 200 or status in (204, 304)
