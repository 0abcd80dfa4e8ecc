"""The SDK's pure parts: registration and schemas, dispatch, admission, execution, callbacks."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from component_server import CallbackError, CallbackTimeout, ComponentServer, Context
from component_server.admission import Admission
from component_server.callbacks import CallbackHub
from component_server.dispatch import ExecuteJob, Reply, dispatch
from component_server.execution import execute
from component_server.registry import describe
from wire_protocol import jsonrpc
from wire_protocol.messages import ExecuteParams


class Point(msgspec.Struct):
    x: float
    y: float = 0.0


class Total(msgspec.Struct):
    total: float


def make_server() -> ComponentServer:
    server = ComponentServer()

    @server.component
    def total(input: Point) -> Total:
        """Add the coordinates."""
        return Total(input.x + input.y)

    @server.component(name="untyped", description="Echo whatever comes in.")
    async def echo(input, context):
        return input

    @server.component
    def broken(input: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("the disk is full")

    @server.component
    def not_json(input: dict[str, Any]) -> Any:
        return {"when": object()}

    return server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_registration_derives_names_schemas_and_context() -> None:
    server = make_server()
    total, echo = server.get("/total"), server.get("/untyped")
    assert total is not None and echo is not None
    assert (total.takes_context, total.is_async, echo.takes_context, echo.is_async) == (False, False, True, True)
    assert total.info.description == "Add the coordinates."
    assert total.info.input_schema == {
        "$ref": "#/$defs/Point",
        "$defs": {
            "Point": {"title": "Point", "type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number", "default": 0.0}}, "required": ["x"]}
        },
    }
    assert total.info.output_schema is not None and total.info.output_schema["$defs"]["Total"]["required"] == ["total"]
    assert (echo.info.description, echo.info.input_schema, echo.info.output_schema) == ("Echo whatever comes in.", {}, {})
    assert [info.component for info in server.infos()] == ["/total", "/untyped", "/broken", "/not_json"]


def test_decorator_returns_the_function_unchanged() -> None:
    server = ComponentServer()

    def plain(input: dict[str, Any]) -> dict[str, Any]:
        return input

    assert server.component(plain) is plain


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (lambda: None, r"must take \(input\) or \(input, context\), it takes 0"),
        (lambda a, b, c: None, "it takes 3 parameters"),
    ],
)
def test_unusable_signatures_fail_at_registration(function: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        describe(function)


def test_a_type_without_json_schema_fails_at_registration() -> None:
    def uses_object(input: object) -> dict[str, Any]:
        return {}

    with pytest.raises(TypeError, match="input type"):
        describe(uses_object)


def test_names_are_unique() -> None:
    server = make_server()
    with pytest.raises(ValueError, match="registered twice"):
        server.component(lambda input: input, name="total")


def envelope(method: str, params: Any = None, request_id: Any = "r1") -> jsonrpc.Envelope:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params if params is not None else {}}
    if request_id is not None:
        message["id"] = request_id
    return jsonrpc.decode_envelope(msgspec.json.encode(message))


def reply_json(reply: Reply | ExecuteJob) -> tuple[int, Any]:
    assert isinstance(reply, Reply)
    return reply.status, msgspec.json.decode(reply.body)


@pytest.mark.parametrize(
    ("message", "status", "check"),
    [
        (envelope("initialize", {"runtime_protocol_version": 1}), 200, lambda body: body["result"] == {"server_protocol_version": 1}),
        (envelope("initialized", request_id=None), 202, lambda body: body == ""),
        (envelope("components/list"), 200, lambda body: len(body["result"]["components"]) == 4),
        (envelope("components/info", {"component": "/total"}), 200, lambda body: body["result"]["info"]["component"] == "/total"),
        (envelope("components/infer_schema", {"component": "/total", "input_schema": {}}), 200, lambda body: "$defs" in body["result"]["output_schema"]),
        (
            envelope("components/info", {"component": "/nope"}),
            200,
            lambda body: (
                body["error"]["code"] == -32001
                and body["error"]["message"].startswith("Component '/nope' not found")
                and body["error"]["data"] == {"component": "/nope"}
            ),
        ),
        (
            envelope("components/execute", {"component": "/nope", "input": {}, "attempt": 1, "observability": {}}),
            200,
            lambda body: body["error"]["code"] == -32001,
        ),
        (envelope("components/execute", {"component": 5}), 400, lambda body: body["error"]["code"] == -32602 and body["id"] == "r1"),
        (envelope("blobs/put", {"data": 1, "blob_type": "data"}), 400, lambda body: body["error"]["code"] == -32601),
        (
            envelope("nonsense"),
            400,
            lambda body: body["error"]["code"] == -32600 and "Unknown method 'nonsense'" in body["error"]["message"] and "id" not in body,
        ),
        (envelope("components/list", request_id=None), 400, lambda body: "only notification" in body["error"]["message"]),
        (
            jsonrpc.decode_envelope(b'{"jsonrpc":"2.0","id":"ghost","result":{}}'),
            404,
            lambda body: body["id"] == "ghost" and "no pending request" in body["error"]["message"],
        ),
    ],
    ids=[
        "initialize",
        "initialized",
        "list",
        "info",
        "infer_schema",
        "info-unknown",
        "execute-unknown",
        "execute-bad-params",
        "callback-method",
        "unknown-method",
        "unknown-notification",
        "unknown-answer",
    ],
)
def test_dispatch_table(message: jsonrpc.Envelope, status: int, check: Any) -> None:
    got_status, body = reply_json(dispatch(message, make_server(), lambda _: False))
    assert got_status == status
    assert check(body), body


def test_dispatch_hands_executions_and_known_answers_to_the_shell() -> None:
    answered: list[jsonrpc.Envelope] = []

    def take(found: jsonrpc.Envelope) -> bool:
        answered.append(found)
        return True

    server = make_server()
    job = dispatch(envelope("components/execute", {"component": "/total", "input": {"x": 1}, "attempt": 2, "observability": {"step_id": "s"}}), server, take)
    assert isinstance(job, ExecuteJob) and (job.request_id, job.component.name, job.params.attempt) == ("r1", "/total", 2)
    answer = jsonrpc.decode_envelope(b'{"jsonrpc":"2.0","id":"cb","result":{}}')
    assert dispatch(answer, server, take) == Reply(202, b'""')
    assert answered == [answer]


def test_admission_limits_and_drains() -> None:
    admission = Admission(limit=2)
    assert [admission.admit(), admission.admit(), admission.admit()] == [None, None, "full"]
    admission.leave()
    assert admission.admit() is None
    admission.start_draining()
    assert admission.admit() == "draining"
    admission.leave()
    admission.leave()
    assert admission.idle
    with pytest.raises(RuntimeError):
        admission.leave()


async def run(name: str, value: Any, context: Context | None = None) -> tuple[str, Any]:
    component = make_server().get(name)
    assert component is not None
    answer = await execute(component, "e1", ExecuteParams(component=name, input=value), context)
    return answer.outcome, msgspec.json.decode(answer.body)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "value", "outcome", "check"),
    [
        ("/total", {"x": 2, "y": 3}, "success", lambda body: body["result"] == {"output": {"total": 5.0}}),
        ("/total", {"y": 3}, "error", lambda body: "missing required field `x`" in body["error"]["message"]),
        ("/total", {"x": "two"}, "error", lambda body: "$.x" in body["error"]["message"]),
        ("/broken", {}, "error", lambda body: body["error"] == {"code": -32003, "message": "Component execution failed: the disk is full", "data": {}}),
        ("/not_json", {}, "error", lambda body: "not JSON" in body["error"]["message"]),
    ],
    ids=["ok", "missing-field", "wrong-type", "raises", "not-json"],
)
async def test_execution_outcomes(name: str, value: Any, outcome: str, check: Any) -> None:
    got_outcome, body = await run(name, value)
    assert got_outcome == outcome
    assert check(body), body


def hub(timeout: float = 5.0) -> tuple[CallbackHub, list[tuple[str, float]]]:
    observed: list[tuple[str, float]] = []
    return CallbackHub("pod-a", timeout, lambda method, seconds: observed.append((method, seconds))), observed


@pytest.mark.anyio
async def test_callback_round_trip_through_the_context() -> None:
    callbacks, observed = hub()
    sent: list[dict[str, Any]] = []

    async def emit(message: bytes) -> None:
        request = msgspec.json.decode(message)
        sent.append(request)
        result = {"blob_id": "b1"} if request["method"] == "blobs/put" else {"data": {"k": 1}, "blob_type": "data"}
        asyncio.get_running_loop().call_soon(callbacks.answer, jsonrpc.decode_envelope(jsonrpc.success(request["id"], result)))

    context = Context(callbacks, emit, ExecuteParams(component="/x").observability, attempt=1)
    assert await context.put_blob({"k": 1}) == "b1"
    assert await context.get_blob("b1") == {"k": 1}
    assert [request["method"] for request in sent] == ["blobs/put", "blobs/get"]
    assert sent[0]["params"] == {"data": {"k": 1}, "blob_type": "data", "observability": {}}
    assert sent[0]["id"].startswith("pod-a/") and sent[0]["id"] != sent[1]["id"]
    assert [method for method, _ in observed] == ["blobs/put", "blobs/get"]
    assert len(callbacks) == 0


@pytest.mark.anyio
async def test_an_error_answer_raises_callback_error() -> None:
    callbacks, _ = hub()

    async def emit(message: bytes) -> None:
        request_id = msgspec.json.decode(message)["id"]
        asyncio.get_running_loop().call_soon(callbacks.answer, jsonrpc.decode_envelope(jsonrpc.failure(request_id, -32000, "Failed to get blob")))

    with pytest.raises(CallbackError, match="blobs/get failed: runtime error -32000: Failed to get blob"):
        await Context(callbacks, emit, ExecuteParams(component="/x").observability, 1).get_blob("missing")


@pytest.mark.anyio
async def test_an_unanswered_callback_times_out_and_a_late_answer_is_refused() -> None:
    callbacks, observed = hub(timeout=0.05)
    sent: list[str] = []

    async def emit(message: bytes) -> None:
        sent.append(msgspec.json.decode(message)["id"])

    with pytest.raises(CallbackTimeout, match=r"blobs/put got no answer from the runtime within 0.05s"):
        await Context(callbacks, emit, ExecuteParams(component="/x").observability, 1).put_blob({})
    assert callbacks.answer(jsonrpc.decode_envelope(jsonrpc.success(sent[0], {"blob_id": "late"}))) is False
    assert len(observed) == 1 and observed[0][1] >= 0.05
