"""Pure cores: header rewriting, framing, health answers, proxy-made errors, settings."""

from __future__ import annotations

import json

import pytest

from affinity_proxy import answers
from affinity_proxy.config import ConfigError, load, parse_host_port
from affinity_proxy.health import health_outcome
from affinity_proxy.http1 import (
    Framing,
    connection_field,
    encode_chunk,
    encode_head,
    end_to_end,
    forwarded_request_head,
    relayed_response_head,
    response_framing,
    response_head_fields,
    says_http_1_1,
)
from affinity_proxy.membership import Failed, Healthy, NotReady
from affinity_proxy.pipeline import RequestHead


@pytest.mark.parametrize(
    ("headers", "kept"),
    [
        ([(b"content-type", b"application/json"), (b"connection", b"keep-alive")], [b"content-type"]),
        ([(b"connection", b"close, X-Secret"), (b"x-secret", b"1"), (b"x-ok", b"2")], [b"x-ok"]),
        ([(b"keep-alive", b"5"), (b"te", b"trailers"), (b"trailer", b"x"), (b"transfer-encoding", b"chunked"), (b"upgrade", b"h2c")], []),
        ([(b"proxy-authorization", b"x"), (b"proxy-connection", b"x"), (b"traceparent", b"00-ab"), (b"tracestate", b"v=1")], [b"traceparent", b"tracestate"]),
        ([(b"stepflow-instance-id", b"pod-1"), (b"content-length", b"10")], [b"stepflow-instance-id", b"content-length"]),
    ],
)
def test_end_to_end_drops_hop_by_hop_fields(headers: list[tuple[bytes, bytes]], kept: list[bytes]) -> None:
    assert [name for name, _ in end_to_end(headers)] == kept


@pytest.mark.parametrize(
    ("framing", "tail"),
    [
        (Framing.LENGTH, b"via: 1.1 affinity-proxy\r\n\r\n"),
        (Framing.CHUNKED, b"transfer-encoding: chunked\r\n\r\n"),
        (Framing.CLOSE, b"connection: close\r\n\r\n"),
    ],
)
def test_each_hop_gets_its_own_framing(framing: Framing, tail: bytes) -> None:
    head = encode_head(b"HTTP/1.1 200 OK", [(b"content-type", b"text/event-stream")], framing)
    assert head.startswith(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n") and head.endswith(tail)


@pytest.mark.parametrize(
    ("upstream", "http_1_0", "client"),
    [
        (Framing.LENGTH, False, Framing.LENGTH),
        (Framing.CHUNKED, False, Framing.CHUNKED),
        (Framing.CLOSE, False, Framing.CHUNKED),
        (Framing.CHUNKED, True, Framing.CLOSE),
        (Framing.NONE, True, Framing.NONE),
    ],
)
def test_response_framing(upstream: Framing, http_1_0: bool, client: Framing) -> None:
    assert response_framing(upstream, http_1_0) is client


@pytest.mark.parametrize(
    ("raw", "framing", "connection", "relayed"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", Framing.LENGTH, None, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nvia: 1.1 affinity-proxy\r\n\r\n"),
        (b"HTTP/1.1 204 No Content\r\n", Framing.NONE, None, b"HTTP/1.1 204 No Content\r\nvia: 1.1 affinity-proxy\r\n\r\n"),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n", Framing.LENGTH, None, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nvia: 1.1 affinity-proxy\r\n\r\n"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n",
            Framing.CHUNKED,
            None,
            b"HTTP/1.1 200 OK\r\nx-a: 1\r\nvia: 1.1 affinity-proxy\r\ntransfer-encoding: chunked\r\n\r\n",
        ),
        (
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-B\r\nX-B: 1\r\nKeep-Alive: 5\r\nContent-Length: 0\r\n",
            Framing.LENGTH,
            None,
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nvia: 1.1 affinity-proxy\r\n\r\n",
        ),
        (
            b"HTTP/1.1 200 OK\r\nProxy-Thing: x\r\nContent-Length: 0\r\n",
            Framing.LENGTH,
            b"close",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\nvia: 1.1 affinity-proxy\r\n\r\n",
        ),
        (
            b"HTTP/1.1 200 OK\r\nX-Te-Like: 1\r\nContent-Length: 0\r\n",
            Framing.LENGTH,
            None,
            b"HTTP/1.1 200 OK\r\nX-Te-Like: 1\r\nContent-Length: 0\r\nvia: 1.1 affinity-proxy\r\n\r\n",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
            Framing.LENGTH,
            b"keep-alive",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nconnection: keep-alive\r\nvia: 1.1 affinity-proxy\r\n\r\n",
        ),
        (b"HTTP/1.1 200 OK\r\n", Framing.CLOSE, b"close", b"HTTP/1.1 200 OK\r\nvia: 1.1 affinity-proxy\r\nconnection: close\r\n\r\n"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",
            Framing.LENGTH,
            b"close",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nconnection: close\r\nvia: 1.1 affinity-proxy\r\n\r\n",
        ),
    ],
)
def test_relayed_response_heads(raw: bytes, framing: Framing, connection: bytes | None, relayed: bytes) -> None:
    assert relayed_response_head(raw, framing, connection, hop_by_hop=response_head_fields(raw)[1]) == relayed


@pytest.mark.parametrize(
    ("keep_alive", "http_1_0", "field"),
    [(True, False, None), (False, False, b"close"), (True, True, b"keep-alive"), (False, True, b"close")],
)
def test_connection_field_of_the_client_hop(keep_alive: bool, http_1_0: bool, field: bytes | None) -> None:
    assert connection_field(keep_alive, http_1_0) == field


@pytest.mark.parametrize(
    ("raw", "target", "http_1_1"),
    [
        (b"POST /a HTTP/1.1\r\nHost: p\r\n", b"/a", True),
        (b"POST * HTTP/1.1\r\n", b"*", True),
        (b"POST /a HTTP/1.0\r\nHost: p\r\n", b"/a", False),
        (b"POST /HTTP/1.1 HTTP/1.0\r\nX-A: HTTP/1.1\r\n", b"/HTTP/1.1", False),
        (b"POST  /a HTTP/1.1\r\n", b"/a", False),  # spaced otherwise: rebuilt, never misread
        (b"POST /a  HTTP/1.1\r\n", b"/a", False),
        (b"POST /a HTTP/1.10\r\n", b"/a", False),
        (b"POST /a HTTP/1.1", b"/a", False),
    ],
)
def test_says_http_1_1_reads_the_request_line_at_its_offset(raw: bytes, target: bytes, http_1_1: bool) -> None:
    assert says_http_1_1(raw, b"POST", target) is http_1_1


@pytest.mark.parametrize(
    ("raw", "forwarded"),
    [
        (b"POST /a HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\n", b"POST /a HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\nvia: 1.1 affinity-proxy\r\n\r\n"),
        (None, b"POST /a HTTP/1.1\r\nhost: p\r\ncontent-length: 2\r\nvia: 1.1 affinity-proxy\r\n\r\n"),
    ],
)
def test_forwarded_request_heads(raw: bytes | None, forwarded: bytes) -> None:
    headers = [(b"host", b"p"), (b"content-length", b"2")]
    assert forwarded_request_head(raw, b"POST", b"/a", headers, Framing.LENGTH) == forwarded


@pytest.mark.parametrize(
    ("raw", "framing", "hop_by_hop"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", Framing.LENGTH, False),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n", Framing.CHUNKED, True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n", Framing.CHUNKED, True),
        (b"HTTP/1.1 200 OK\r\nx-content-length: 2\r\n", Framing.CLOSE, False),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n", Framing.CLOSE, True),
        (b"HTTP/1.1 200 OK\r\nProxy-Thing: x\r\nCONTENT-LENGTH : 0\r\n", Framing.LENGTH, True),
        (b"HTTP/1.1 200 OK\r\nX-Te-Like: 1\r\nContent-Length: 0\r\n", Framing.LENGTH, False),
        # not the usual head: read by the regex, to the same answers
        (b"HTTP/1.1 200 OK\r\nTest: 1\r\nContent-Length: 0\r\n", Framing.LENGTH, False),
        (b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n", Framing.LENGTH, False),
        (b"HTTP/1.1 200 OK\r\nContent-Length-X: 1\r\nContent-Length: 0\r\n", Framing.LENGTH, False),
        (b"HTTP/1.1 200 OK\r\nContent-Length-X: 1\r\n", Framing.CLOSE, False),
        (b"HTTP/1.1 200 OK\r\nTE: trailers\r\nContent-Length: 0\r\n", Framing.LENGTH, True),
        (b"HTTP/1.1 200 OK\r\nTrailer: x\r\nContent-Length: 0\r\n", Framing.LENGTH, True),
        (b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\n", Framing.CLOSE, True),
        (b"HTTP/1.1 101 Switching\r\nUPGRADE: h2c\r\nConnection: upgrade\r\n", Framing.CLOSE, True),
        (b"HTTP/1.1 200 OK\r\nContent-Lengths: 1\r\nTEA: 1\r\nUpgraded: 1\r\n", Framing.CLOSE, False),
    ],
)
def test_response_head_fields_of_a_raw_head(raw: bytes, framing: Framing, hop_by_hop: bool) -> None:
    assert response_head_fields(raw) == (framing, hop_by_hop)


@pytest.mark.parametrize(
    ("raw", "as_it_came"),
    [
        (b"POST /a HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\n", True),
        (b"POST /a HTTP/1.1\r\nHost: p\r\nConnection: keep-alive\r\nContent-Length: 2\r\n", False),
        (b"POST /a HTTP/1.1\r\nHost: p\r\nProxy-Authorization: x\r\nContent-Length: 2\r\n", False),
        (b"POST /a HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n", False),
        (b"POST /a HTTP/1.1\r\nHost: p\r\nExpect: 100-continue\r\nContent-Length: 2\r\n", False),
        (b"POST /a HTTP/1.1\r\nHost: p\r\nTE: trailers\r\nContent-Length: 2\r\n", False),
        (b"POST /a HTTP/1.1\r\nHost: p\r\nTraceparent: 00-ab\r\nX-Proxied: 1\r\n", True),
    ],
)
def test_a_request_head_is_forwarded_as_it_came_only_without_hop_by_hop_fields(raw: bytes, as_it_came: bool) -> None:
    headers = [(name.lower(), value.strip()) for name, _, value in (line.partition(b":") for line in raw.split(b"\r\n")[1:-1])]
    head = RequestHead(b"POST", b"/a", headers, keep_alive=True, http_1_0=False, raw=raw)
    assert (head.raw is not None) is as_it_came
    assert RequestHead(b"POST", b"/a", headers, keep_alive=True, http_1_0=True, raw=raw).raw is None


def test_chunk_encoding() -> None:
    assert encode_chunk(b'data: {"a":1}\n\n') == b'f\r\ndata: {"a":1}\n\n\r\n'


@pytest.mark.parametrize(
    ("raw", "outcome"),
    [
        (b'HTTP/1.1 200 OK\r\n\r\n{"status":"healthy","instanceId":"pod-1-ab"}', Healthy("pod-1-ab")),
        (b'HTTP/1.1 503 Service Unavailable\r\n\r\n{"status":"draining","instanceId":"pod-1-ab"}', NotReady("pod-1-ab")),
        (b'HTTP/1.1 200 OK\r\n\r\n{"status":"healthy"}', Failed("health answer has no instanceId")),
        (b"HTTP/1.1 200 OK\r\n\r\nnot json", Failed("health answer 200 is not JSON")),
    ],
)
def test_health_outcome(raw: bytes, outcome: object) -> None:
    assert health_outcome(raw) == outcome


def test_error_answers_are_json_rpc_with_retry_after() -> None:
    raw = answers.error_response(503, "instance 'x' gone", decision="instance_gone", retryable=False, instance_id="x", request_id="r1", retry_after_seconds=2)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable") and b"retry-after: 2" in head and b"content-type: application/json" in head
    assert json.loads(body) == {
        "id": "r1",
        "error": {"code": -32000, "message": "instance 'x' gone", "data": {"decision": "instance_gone", "retryable": False, "instance_id": "x"}},
        "jsonrpc": "2.0",
    }
    assert f"content-length: {len(body)}".encode() in head


def test_request_id_of_a_body() -> None:
    assert answers.request_id_of(b'{"jsonrpc":"2.0","id":7,"method":"components/execute","params":{}}') == 7
    assert answers.request_id_of(b'{"jsonrpc":"2.0","id":7,"result":{}}') is None
    assert answers.request_id_of(b"garbage") is None


def test_settings_from_flags_and_environment() -> None:
    config = load(["--upstream", "svc.local:8080", "--refresh-seconds", "0.5"], {"DNS_SERVER": "10.0.0.10", "LISTEN": "127.0.0.1:9000", "MAX_ATTEMPTS": "5"})
    assert (config.upstream.host, config.upstream.port) == ("svc.local", 8080)
    assert (config.dns_server.host, config.dns_server.port) == ("10.0.0.10", 53)  # type: ignore[union-attr]  # DNS_SERVER is set just above
    assert str(config.listen) == "127.0.0.1:9000" and config.refresh_seconds == 0.5 and config.max_attempts == 5
    assert load(["--upstream", "s:1", "--metrics-listen", "off"], {}).metrics_listen is None


@pytest.mark.parametrize("text", ["no-port", "host:notaport", ":80", "host:70000"])
def test_bad_host_port_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_host_port(text)


def test_missing_upstream_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        load([], {})
    assert "--upstream" in capsys.readouterr().err
