"""The bad-input corpus: malformed requests to the runtime API, the pods and the proxy, as data.

Each row says where it goes (``runtime``: the REST API; ``pod``: a component server
directly; ``proxy``: the affinity proxy in front of the pods), what is sent, the status
the service must answer and a fragment its JSON error message must contain (the message
has to name the problem). ``raw`` rows are sent byte for byte (request lines and framing
no HTTP client would produce). tests/reliability/test_bad_input.py runs them against real
processes and then checks every process still answers and no run was lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

JSON = (("content-type", "application/json"),)
RPC = (("content-type", "application/json"), ("accept", "application/json, text/event-stream"))
SOME_RUN_ID = "0190c2a6-1c2d-7e3f-8a9b-0c1d2e3f4a5b"
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_NESTING_DEPTH = 64


@dataclass(frozen=True)
class BadRequest:
    name: str
    target: str
    """``runtime``, ``pod`` or ``proxy``."""
    method: str
    path: str
    status: int
    fragment: str
    """Must appear in the JSON error message."""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    raw: bytes | None = None
    """The whole request, sent as is (method, path, headers and body are then ignored)."""
    why: str | None = None
    """Why a 5xx is the right answer (the only exception to 'every bad request is a 4xx')."""


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _run(**fields: Any) -> bytes:
    """A POST /runs body: an inline one-step flow and one input unless the fields say otherwise."""
    body = {
        "flow": {
            "steps": [{"id": "a", "component": "/eval", "input": {"flow": {"$literal": {"steps": [], "output": {"$input": "$"}}}, "input": {"$input": "$"}}}],
            "output": {"$step": "a"},
        },
        "input": [{"x": 1}],
    }
    body.update(fields)
    return _json({key: value for key, value in body.items() if value is not None})


def _steps(*steps: dict[str, Any], output: Any = None) -> dict[str, Any]:
    return {"steps": list(steps), "output": output if output is not None else {"$step": steps[-1]["id"]} if steps else None}


def nested(depth: int) -> Any:
    """``depth`` lists inside each other around 1: ``nested(2) == [[1]]``."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _yaml_bomb(levels: int = 9, width: int = 9) -> str:
    """Billion laughs: each anchor is a list of ``width`` aliases of the previous one (9^9 values)."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join([*lines, "steps: []", "output: {$input: $}"]) + "\n"


def _rpc(method: str | None = None, params: Any = None, request_id: Any = "r1", **extra: Any) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", **extra}
    if request_id is not None:
        message["id"] = request_id
    if method is not None:
        message["method"] = method
    if params is not None:
        message["params"] = params
    return _json(message)


INITIALIZE = _rpc("initialize", {"runtime_protocol_version": 1})
STEP = {"id": "a", "component": "/eval", "input": {"flow": {"$literal": {"steps": []}}}}


RUNTIME: list[BadRequest] = [
    BadRequest("truncated JSON", "runtime", "POST", "/api/v1/runs", 400, "not valid JSON", JSON, b'{"input": [1], "flow":'),
    BadRequest("JSON array instead of object", "runtime", "POST", "/api/v1/runs", 422, "Expected `object`, got `array`", JSON, b"[1, 2]"),
    BadRequest("empty body", "runtime", "POST", "/api/v1/runs", 400, "not valid JSON", JSON, b""),
    BadRequest("input is an object", "runtime", "POST", "/api/v1/runs", 422, "input must be a list", JSON, _run(input={"x": 1})),
    BadRequest("input missing", "runtime", "POST", "/api/v1/runs", 422, "input is required", JSON, _json({"flow": {"steps": []}})),
    BadRequest("empty input list", "runtime", "POST", "/api/v1/runs", 400, "empty list", JSON, _run(input=[])),
    BadRequest("wait is a string", "runtime", "POST", "/api/v1/runs", 422, "$.wait", JSON, _run(wait="yes")),
    BadRequest("maxConcurrency is a string", "runtime", "POST", "/api/v1/runs", 422, "$.maxConcurrency", JSON, _run(maxConcurrency="4")),
    BadRequest("negative maxConcurrency", "runtime", "POST", "/api/v1/runs", 400, "maxConcurrency must be 0 or more", JSON, _run(maxConcurrency=-1)),
    BadRequest("variables is a list", "runtime", "POST", "/api/v1/runs", 422, "$.variables", JSON, _run(variables=[1])),
    BadRequest("flowId is a number", "runtime", "POST", "/api/v1/runs", 422, "$.flowId", JSON, _run(flow=None, flowId=7)),
    BadRequest("unknown field", "runtime", "POST", "/api/v1/runs", 422, "unknown field `bogus`", JSON, _run(bogus=True)),
    BadRequest("both flow and flowId", "runtime", "POST", "/api/v1/runs", 400, "exactly one of flowId", JSON, _run(flowId="a" * 64)),
    BadRequest("unknown flowId", "runtime", "POST", "/api/v1/runs", 404, f"Workflow '{'b' * 64}' not found", JSON, _run(flow=None, flowId="b" * 64)),
    BadRequest("text/plain content type", "runtime", "POST", "/api/v1/runs", 415, "Content-Type: application/json", (("content-type", "text/plain"),), _run()),
    BadRequest("no content type", "runtime", "POST", "/api/v1/runs", 415, "Content-Type: application/json", (), _run()),
    BadRequest("YAML that does not parse", "runtime", "POST", "/api/v1/runs", 422, "not valid YAML", JSON, _run(flow="steps: [\n  - id: a\n  bad")),
    BadRequest("YAML bomb (billion laughs)", "runtime", "POST", "/api/v1/runs", 413, "maxFlowValues", JSON, _run(flow=_yaml_bomb())),
    BadRequest("YAML flow text of 1 MB", "runtime", "POST", "/api/v1/runs", 413, "maxFlowTextBytes", JSON, _run(flow="steps: []\n" + "# padding\n" * 100_000)),
    BadRequest(
        "YAML nested 5000 deep", "runtime", "POST", "/api/v1/runs", 400, "maxNestingDepth", JSON, _run(flow="steps: []\noutput: " + "[" * 5000 + "]" * 5000)
    ),
    BadRequest("JSON nested 5000 deep", "runtime", "POST", "/api/v1/runs", 400, "maxNestingDepth", JSON, b'{"input": [' + b"[" * 5000 + b"]" * 5000 + b"]}"),
    BadRequest(
        "input nested past the limit", "runtime", "POST", "/api/v1/runs", 400, "maxNestingDepth", JSON, _run(input=[nested(DEFAULT_MAX_NESTING_DEPTH + 1)])
    ),
    BadRequest("huge body", "runtime", "POST", "/api/v1/runs", 413, "maxRequestBytes", JSON, _run(input=["x" * DEFAULT_MAX_REQUEST_BYTES])),
    BadRequest(
        "huge chunked body",
        "runtime",
        "POST",
        "/api/v1/runs",
        413,
        "maxRequestBytes",
        raw=b"POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + (b"100000\r\n" + b"x" * 0x100000 + b"\r\n") * 17
        + b"0\r\n\r\n",
    ),
    BadRequest(
        "declared Content-Length of 1 GB",
        "runtime",
        "POST",
        "/api/v1/runs",
        413,
        "maxRequestBytes",
        raw=b"POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n",
    ),
    BadRequest("flow is a number", "runtime", "POST", "/api/v1/runs", 422, "a flow must be an object", JSON, _run(flow=42)),
    BadRequest("steps as a mapping (pre-v1)", "runtime", "POST", "/api/v1/runs", 422, "pre-v1 layout", JSON, _run(flow={"steps": {"a": STEP}})),
    BadRequest("step without component", "runtime", "POST", "/api/v1/runs", 422, "'component' is required", JSON, _run(flow=_steps({"id": "a"}))),
    BadRequest(
        "cycle between two steps",
        "runtime",
        "POST",
        "/api/v1/runs",
        400,
        "references undefined step 'b'",
        JSON,
        _run(flow=_steps({"id": "a", "component": "/eval", "input": {"$step": "b"}}, {"id": "b", "component": "/eval", "input": {"$step": "a"}})),
    ),
    BadRequest(
        "step references itself",
        "runtime",
        "POST",
        "/api/v1/runs",
        400,
        "references itself",
        JSON,
        _run(flow=_steps({"id": "a", "component": "/eval", "input": {"$step": "a"}})),
    ),
    BadRequest(
        "reference to an unknown step",
        "runtime",
        "POST",
        "/api/v1/runs",
        400,
        "undefined step 'ghost'",
        JSON,
        _run(flow=_steps(STEP, output={"$step": "ghost"})),
    ),
    BadRequest("duplicate step ids", "runtime", "POST", "/api/v1/runs", 400, "Duplicate step ID 'a'", JSON, _run(flow=_steps(STEP, STEP))),
    BadRequest("bad path in an expression", "runtime", "POST", "/api/v1/runs", 422, "invalid path", JSON, _run(flow=_steps(STEP, output={"$input": "$$$[[["}))),
    BadRequest(
        "unknown onError action",
        "runtime",
        "POST",
        "/api/v1/runs",
        422,
        "unknown onError action 'explode'",
        JSON,
        _run(flow=_steps({**STEP, "onError": {"action": "explode"}})),
    ),
    BadRequest(
        "unknown builtin component",
        "runtime",
        "POST",
        "/api/v1/runs",
        400,
        "'/no_such_builtin'",
        JSON,
        _run(flow=_steps({"id": "a", "component": "/no_such_builtin", "input": {}})),
    ),
    BadRequest(
        "component no route serves",
        "runtime",
        "POST",
        "/api/v1/runs",
        400,
        "no route matches component 'relative/name'",
        JSON,
        _run(flow=_steps({"id": "a", "component": "relative/name", "input": {}})),
    ),
    BadRequest(
        "override of an unknown step",
        "runtime",
        "POST",
        "/api/v1/runs",
        400,
        "override names step 'zz'",
        JSON,
        _run(overrides={"zz": {"value": {"input": {}}}}),
    ),
    BadRequest(
        "override without value", "runtime", "POST", "/api/v1/runs", 400, "override for step 'a' must be an object", JSON, _run(overrides={"a": {"input": {}}})
    ),
    BadRequest(
        "override of an unknown type",
        "runtime",
        "POST",
        "/api/v1/runs",
        400,
        "override type 'json_patch'",
        JSON,
        _run(overrides={"a": {"$type": "json_patch", "value": {}}}),
    ),
    BadRequest("overrides is a list", "runtime", "POST", "/api/v1/runs", 422, "$.overrides", JSON, _run(overrides=[1])),
    BadRequest("store: truncated JSON", "runtime", "POST", "/api/v1/flows", 400, "not valid JSON", JSON, b'{"flow": {'),
    BadRequest("store: unknown field", "runtime", "POST", "/api/v1/flows", 422, "unknown field `flowId`", JSON, _json({"flow": {"steps": []}, "flowId": "x"})),
    BadRequest(
        "store: too many steps",
        "runtime",
        "POST",
        "/api/v1/flows",
        413,
        "maxFlowSteps",
        JSON,
        _json({"flow": {"steps": [{**STEP, "id": f"s{i}"} for i in range(1001)]}}),
    ),
    BadRequest("store: steps is a string", "runtime", "POST", "/api/v1/flows", 422, "steps must be a list", JSON, _json({"flow": {"steps": "a"}})),
    BadRequest("store: dryRun is a string", "runtime", "POST", "/api/v1/flows", 422, "$.dryRun", JSON, _json({"flow": {"steps": []}, "dryRun": "no"})),
    BadRequest("list: limit is not a number", "runtime", "GET", "/api/v1/runs?limit=ten", 400, "query parameter limit must be an integer"),
    BadRequest("list: limit out of range", "runtime", "GET", "/api/v1/runs?limit=10001", 400, "limit must be between 0 and"),
    BadRequest("list: unknown status", "runtime", "GET", "/api/v1/runs?status=exploded", 400, "unknown status 'exploded'"),
    BadRequest("run id that is not a UUID", "runtime", "GET", "/api/v1/runs/not-a-uuid", 400, "expected a UUID"),
    BadRequest("unknown run", "runtime", "GET", f"/api/v1/runs/{SOME_RUN_ID}", 404, f"Execution '{SOME_RUN_ID}' not found"),
    BadRequest("cancel an unknown run", "runtime", "POST", f"/api/v1/runs/{SOME_RUN_ID}/cancel", 404, "not found"),
    BadRequest("unknown flow", "runtime", "GET", "/api/v1/flows/nope", 404, "Flow not found"),
    BadRequest("method not allowed", "runtime", "PUT", "/api/v1/runs", 405, "Method PUT is not allowed"),
    BadRequest("unknown endpoint", "runtime", "GET", "/api/v1/nope", 404, "No such endpoint"),
]

POD: list[BadRequest] = [
    BadRequest("JSON-RPC: not JSON", "pod", "POST", "/", 400, "Failed to decode message", RPC, b'{"jsonrpc": "2.0", "id": 1,'),
    BadRequest("JSON-RPC: not an object", "pod", "POST", "/", 400, "Expected `object`, got `array`", RPC, b"[1, 2, 3]"),
    BadRequest("JSON-RPC: a string", "pod", "POST", "/", 400, "Expected `object`, got `str`", RPC, b'"initialize"'),
    BadRequest("JSON-RPC: no method, no result", "pod", "POST", "/", 400, "exactly one of result or error", RPC, _rpc()),
    BadRequest("JSON-RPC: version 1.0", "pod", "POST", "/", 400, '"jsonrpc" must be "2.0"', RPC, _rpc("initialize", {}, jsonrpc="1.0")),
    BadRequest("JSON-RPC: unknown method", "pod", "POST", "/", 400, "Unknown method 'components/explode'", RPC, _rpc("components/explode", {})),
    BadRequest(
        "JSON-RPC: callback method sent to a pod",
        "pod",
        "POST",
        "/",
        400,
        "blobs/put is sent by a component server",
        RPC,
        _rpc("blobs/put", {"data": 1, "blob_type": "data"}),
    ),
    BadRequest(
        "JSON-RPC: params of the wrong type", "pod", "POST", "/", 400, "Invalid parameters for request r1", RPC, _rpc("components/execute", {"component": 5})
    ),
    BadRequest("JSON-RPC: params not an object", "pod", "POST", "/", 400, "Invalid parameters for request r1", RPC, _rpc("components/info", [1])),
    BadRequest("JSON-RPC: id is a list", "pod", "POST", "/", 400, "$.id", RPC, _rpc("initialize", {}, request_id=[1])),
    BadRequest("JSON-RPC: unknown notification", "pod", "POST", "/", 400, "Unsupported notification 'shutdown'", RPC, _rpc("shutdown", {}, request_id=None)),
    BadRequest(
        "JSON-RPC: answer to an unknown callback id", "pod", "POST", "/", 404, "no pending request", RPC, _rpc(request_id="ghost-7", result={"blob_id": "x"})
    ),
    BadRequest(
        "JSON-RPC: both result and error",
        "pod",
        "POST",
        "/",
        400,
        "exactly one of result or error",
        RPC,
        _rpc(request_id="x", result=1, error={"code": 1, "message": "m"}),
    ),
    BadRequest("wrong content type", "pod", "POST", "/", 415, "Content-Type must be application/json", (("content-type", "text/plain"), RPC[1]), INITIALIZE),
    BadRequest("Accept without event-stream", "pod", "POST", "/", 406, "Accept header must include", (RPC[0], ("accept", "application/json")), INITIALIZE),
    BadRequest(
        "oversized body",
        "pod",
        "POST",
        "/",
        413,
        "larger than the pod's limit",
        raw=b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 1000000000\r\n\r\n",
    ),
    BadRequest("GET on the JSON-RPC path", "pod", "GET", "/", 405, "GET / is not allowed"),
    BadRequest("unknown path", "pod", "GET", "/admin", 404, "No such path /admin"),
]


def _pinned(name: str, instance_id: str, status: int, fragment: str, why: str | None = None) -> BadRequest:
    headers = (*RPC, ("stepflow-instance-id", instance_id))
    return BadRequest(name, "proxy", "POST", "/", status, fragment, headers, _rpc(request_id="answer-1", result={}), why=why)


PROXY: list[BadRequest] = [
    _pinned("instance id with a path in it", "../../etc/passwd", 400, "is malformed"),
    _pinned("instance id with spaces", "pod one", 400, "is malformed"),
    _pinned("instance id of 5000 characters", "a" * 5000, 400, "(5000 characters)' is malformed"),
    _pinned("instance id that is an address", "127.0.0.141:8080", 400, "is an address"),
    _pinned("instance id that is an IP", "10.0.0.7", 400, "is an address"),
    _pinned("instance id that is an IPv6 address", "[::1]:8080", 400, "is an address"),
    _pinned(
        "forged instance id (well formed, unknown)",
        "component-server-deadbeef",
        503,
        "instance 'component-server-deadbeef' is not available",
        why="docs/affinity-proxy.md: a pinned instance unknown after one rediscovery is 503 instance_gone, retryable false; "
        "the proxy cannot tell a forged id from a pod that died before it saw it (e.g. after a proxy restart)",
    ),
    BadRequest(
        "two different instance ids",
        "proxy",
        "POST",
        "/",
        400,
        "2 different Stepflow-Instance-Id headers",
        (*RPC, ("stepflow-instance-id", "pod-a"), ("stepflow-instance-id", "pod-b")),
        _rpc(request_id="answer-1", result={}),
    ),
    BadRequest("oversized header", "proxy", "POST", "/", 431, "request head larger than", (*RPC, ("x-padding", "p" * 70_000)), INITIALIZE),
    BadRequest("header count flood", "proxy", "POST", "/", 431, "request head larger than", (*RPC, *((f"x-h{i}", "v" * 40) for i in range(2000))), INITIALIZE),
    BadRequest(
        "declared Content-Length of 1 GB",
        "proxy",
        "POST",
        "/",
        413,
        "larger than the limit",
        raw=b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n",
    ),
    BadRequest("garbage request line", "proxy", "GET", "/", 400, "malformed HTTP request", raw=b"GARBAGE\r\n\r\n"),
    BadRequest("garbage request line", "runtime", "GET", "/", 400, "malformed HTTP request", raw=b"GARBAGE\r\n\r\n"),
    BadRequest("garbage request line", "pod", "GET", "/", 400, "malformed HTTP request", raw=b"GARBAGE\r\n\r\n"),
    BadRequest(
        "header without a colon", "runtime", "GET", "/", 400, "malformed HTTP request", raw=b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"
    ),
    BadRequest("header without a colon", "pod", "GET", "/", 400, "malformed HTTP request", raw=b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"),
    BadRequest("unknown HTTP version", "proxy", "GET", "/", 400, "malformed HTTP request", raw=b"POST / HTTP/9.9\r\nHost: x\r\n\r\n"),
    BadRequest("control characters in the path", "proxy", "GET", "/", 400, "malformed HTTP request", raw=b"GET /\x01\x02 HTTP/1.1\r\nHost: x\r\n\r\n"),
    BadRequest("header without a colon", "proxy", "GET", "/", 400, "malformed HTTP request", raw=b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"),
    BadRequest("Content-Length is not a number", "proxy", "POST", "/", 400, "Content-Length", raw=b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
    BadRequest(
        "Content-Length twice",
        "proxy",
        "POST",
        "/",
        400,
        "Duplicate Content-Length",
        raw=b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    ),
    BadRequest(
        "Content-Length and chunked (smuggling)",
        "proxy",
        "POST",
        "/",
        400,
        "Transfer-Encoding can't be present with Content-Length",
        raw=b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    BadRequest("bad JSON-RPC through the proxy", "proxy", "POST", "/", 400, "Unknown method 'runs/explode'", RPC, _rpc("runs/explode", {})),
]

CORPUS: list[BadRequest] = [*RUNTIME, *POD, *PROXY]
