"""Table tests of the remote plugin's pure parts: answer classification and backoff."""

from __future__ import annotations

from typing import Any

import pytest

from runtime_server.plugins.base import ComponentFailed, TransportFailed
from runtime_server.plugins.remote.answers import Callback, Outcome, outcome_of, read_event, read_json_answer
from runtime_server.retry import Backoff, next_delay
from wire_protocol import jsonrpc


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ('{"jsonrpc":"2.0","id":"x","result":{"output":{"a":1}}}', Outcome(output={"a": 1})),
        ('{"jsonrpc":"2.0","id":"other","result":{"output":1}}', None),
        ('{"jsonrpc":"2.0","method":"initialized","params":{}}', None),
        ('{"jsonrpc":"2.0","id":"x","error":{"code":-32003,"message":"no"}}', Outcome(error=jsonrpc.Error(-32003, "no"))),
    ],
)
def test_stream_events(data: str, expected: Any) -> None:
    assert read_event(data, "x") == expected


def test_callback_request_in_stream() -> None:
    event = read_event('{"jsonrpc":"2.0","id":7,"method":"blobs/get","params":{"blob_id":"a"}}', "x")
    assert isinstance(event, Callback) and (event.request_id, event.method) == (7, "blobs/get")


def test_malformed_event_is_a_protocol_error() -> None:
    with pytest.raises(jsonrpc.ProtocolError):
        read_event('{"id":"x","result":{}}', "x")


def test_result_without_output_is_a_transport_failure() -> None:
    with pytest.raises(TransportFailed, match=r"not {\"output\": ...}"):
        outcome_of(jsonrpc.decode_envelope(b'{"jsonrpc":"2.0","id":"x","result":{"out":1}}'))


def test_component_error_unwraps_to_component_failed() -> None:
    with pytest.raises(ComponentFailed, match="no") as failure:
        Outcome(error=jsonrpc.Error(-32003, "no", {"k": 1})).unwrap()
    assert (failure.value.code, failure.value.data) == (-32003, {"k": 1})


@pytest.mark.parametrize(
    ("status", "body", "retriable", "message"),
    [
        (400, b"<html>", False, "HTTP 400 with no JSON-RPC response"),
        (200, b'{"jsonrpc":"2.0","id":"other","result":{}}', False, "unexpected message"),
        (500, b'{"jsonrpc":"2.0","id":"x","result":{}}', True, "unexpected message"),
        (502, b'{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"pod failed before answering"}}', True, "HTTP 502: pod failed before answering"),
        (504, b'{"jsonrpc":"2.0","id":"x","error":{"code":-32000,"message":"pod too slow"}}', True, "HTTP 504: pod too slow"),
        (502, b"Bad Gateway", True, "HTTP 502: Bad Gateway"),
    ],
)
def test_unusable_json_answers(status: int, body: bytes, retriable: bool, message: str) -> None:
    with pytest.raises(TransportFailed, match=message) as failure:
        read_json_answer(status, body, "x", "pod")
    assert failure.value.retriable is retriable


def test_error_response_of_any_status_is_the_answer() -> None:
    envelope = read_json_answer(400, b'{"error":{"code":-32600,"message":"bad"},"id":"x","jsonrpc":"2.0"}', "x", "pod")
    assert envelope.error == jsonrpc.Error(-32600, "bad")


@pytest.mark.parametrize(
    ("done", "allowed", "now", "deadline", "expected"),
    [
        (0, 3, 0.0, 10.0, 0.05),
        (2, 3, 0.0, 10.0, 0.2),
        (3, 3, 0.0, 10.0, None),
        (0, 0, 0.0, 10.0, None),
        (1, 3, 9.95, 10.0, None),
        (10, 20, 0.0, 10.0, 1.0),
    ],
)
def test_backoff(done: int, allowed: int, now: float, deadline: float, expected: float | None) -> None:
    assert next_delay(Backoff(), done, allowed, now, deadline) == expected
