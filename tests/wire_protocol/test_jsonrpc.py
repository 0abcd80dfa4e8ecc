"""JSON-RPC envelopes: classification, the error code for each malformed shape, exact encodings."""

from __future__ import annotations

import msgspec
import pytest

from wire_protocol import jsonrpc
from wire_protocol.messages import ExecuteParams, PutBlobParams


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b'{"jsonrpc":"2.0","id":"1","method":"components/list","params":{}}', "request"),
        (b'{"jsonrpc":"2.0","id":7,"method":"initialize","params":{"runtime_protocol_version":1}}', "request"),
        (b'{"jsonrpc":"2.0","method":"initialized","params":{}}', "notification"),
        (b'{"jsonrpc":"2.0","id":"1","result":{"blob_id":"ab"}}', "response"),
        (b'{"jsonrpc":"2.0","id":"1","error":{"code":-32000,"message":"Failed to get blob","data":null}}', "response"),
        (b'{"jsonrpc":"2.0","id":"1","error":{"code":-32000,"message":"Failed to get blob"}}', "response"),
    ],
)
def test_classification(body: bytes, kind: str) -> None:
    envelope = jsonrpc.decode_envelope(body)
    assert (jsonrpc.is_request(envelope), jsonrpc.is_notification(envelope), jsonrpc.is_response(envelope)) == (
        kind == "request",
        kind == "notification",
        kind == "response",
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", jsonrpc.PARSE_ERROR),
        (b"", jsonrpc.PARSE_ERROR),
        (b'[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}]', jsonrpc.INVALID_REQUEST),
        (b'{"id":1,"method":"initialize","params":{}}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc":"1.0","id":1,"method":"initialize","params":{}}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc":"2.0"}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1.5,"method":"initialize","params":{}}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":{"a":1},"method":"initialize","params":{}}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"error":{"message":"no code"}}', jsonrpc.INVALID_REQUEST),
    ],
    ids=["malformed", "empty", "batch", "no-jsonrpc", "wrong-version", "nothing", "id-only", "result-and-error", "float-id", "object-id", "error-without-code"],
)
def test_malformed_envelopes_name_their_code(body: bytes, code: int) -> None:
    with pytest.raises(jsonrpc.ProtocolError) as caught:
        jsonrpc.decode_envelope(body)
    assert caught.value.code == code
    assert str(caught.value).startswith("Failed to decode message")


def test_params_decode_into_their_struct() -> None:
    envelope = jsonrpc.decode_envelope(
        b'{"jsonrpc":"2.0","id":"e1","method":"components/execute","params":{"component":"/double","input":{"value":3},"attempt":1,"observability":{"run_id":"r","step_id":"s"}}}'
    )
    params = jsonrpc.decode_params(envelope, ExecuteParams)
    assert (params.component, params.input, params.attempt, params.observability.step_id) == ("/double", {"value": 3}, 1, "s")


def test_params_that_do_not_fit_are_invalid_params() -> None:
    envelope = jsonrpc.decode_envelope(b'{"jsonrpc":"2.0","id":"p1","method":"blobs/put","params":{"data":1,"blob_type":"nope"}}')
    with pytest.raises(jsonrpc.ProtocolError) as caught:
        jsonrpc.decode_params(envelope, PutBlobParams)
    assert caught.value.code == jsonrpc.INVALID_PARAMS
    assert "Invalid parameters for request p1" in str(caught.value)


def test_missing_params_decode_as_empty_object() -> None:
    envelope = jsonrpc.decode_envelope(b'{"jsonrpc":"2.0","id":"1","method":"initialize"}')
    assert jsonrpc.decode_params(envelope, dict) == {}


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        (jsonrpc.success("1", {"output": 6.0}), b'{"id":"1","result":{"output":6.0},"jsonrpc":"2.0"}'),
        (jsonrpc.failure("1", -32003, "boom", {}), b'{"id":"1","error":{"code":-32003,"message":"boom","data":{}},"jsonrpc":"2.0"}'),
        (jsonrpc.failure(None, -32600, "bad"), b'{"id":null,"error":{"code":-32600,"message":"bad"},"jsonrpc":"2.0"}'),
        (jsonrpc.request(5, "blobs/get", {"blob_id": "ab"}), b'{"method":"blobs/get","id":5,"params":{"blob_id":"ab"},"jsonrpc":"2.0"}'),
    ],
)
def test_encodings_are_compact_single_line_json(encoded: bytes, expected: bytes) -> None:
    assert encoded == expected
    assert b"\n" not in encoded


def test_error_data_null_and_absent_both_decode() -> None:
    for body in (
        b'{"jsonrpc":"2.0","id":"1","error":{"code":-32000,"message":"m","data":null}}',
        b'{"jsonrpc":"2.0","id":"1","error":{"code":-32000,"message":"m"}}',
    ):
        error = jsonrpc.decode_envelope(body).error
        assert isinstance(error, jsonrpc.Error)
        assert (error.code, error.message, error.data) == (-32000, "m", None)


def test_result_stays_raw_until_asked() -> None:
    envelope = jsonrpc.decode_envelope(b'{"jsonrpc":"2.0","id":"1","result":{"blob_id":"ab"}}')
    assert isinstance(envelope.result, msgspec.Raw)
    assert jsonrpc.decode_result(envelope) == {"blob_id": "ab"}
