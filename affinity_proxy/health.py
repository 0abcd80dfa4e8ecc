"""What a pod's ``GET /health`` answer says about it (pure; the probe itself is in discovery)."""

from __future__ import annotations

import httptools
import msgspec

from affinity_proxy.membership import Failed, Healthy, NotReady, ProbeOutcome

PROBE_PATH = b"/health"
MAX_ANSWER_BYTES = 64 * 1024


class _Answer:
    def __init__(self) -> None:
        self.body = b""
        self.complete = False

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


def probe_request(host: str, port: int) -> bytes:
    return b"GET %s HTTP/1.1\r\nhost: %s:%d\r\naccept: application/json\r\nconnection: close\r\n\r\n" % (PROBE_PATH, host.encode(), port)


def health_outcome(raw: bytes) -> ProbeOutcome:
    """Healthy: 200 with status "healthy" and a string instanceId; NotReady: an instanceId otherwise."""
    answer = _Answer()
    parser = httptools.HttpResponseParser(answer)
    try:
        parser.feed_data(raw)
    except httptools.HttpParserError as exc:
        return Failed(f"unparseable health answer: {exc}")
    try:
        body = msgspec.json.decode(answer.body)
    except msgspec.DecodeError:
        return Failed(f"health answer {parser.get_status_code()} is not JSON")
    instance_id = body.get("instanceId") if isinstance(body, dict) else None
    if not isinstance(instance_id, str) or not instance_id:
        return Failed("health answer has no instanceId")
    if parser.get_status_code() == 200 and body.get("status") == "healthy":
        return Healthy(instance_id)
    return NotReady(instance_id)
