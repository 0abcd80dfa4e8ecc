"""Our demo pod on a real socket, and a test-side stand-in for the runtime's half of SSE."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.support.pods import POD_PORT, start_pod
from tests.support.processes import ManagedProcess
from tests.support.scrape import scrape, total
from wire_protocol import jsonrpc
from wire_protocol.headers import INSTANCE_ID, REQUEST_HEADERS
from wire_protocol.sse import EventStreamDecoder

METRICS_PORT = 9090


@dataclass
class Pod:
    process: ManagedProcess
    address: str

    @property
    def url(self) -> str:
        return f"http://{self.address}:{POD_PORT}"

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(self.url + "/", content=body, headers=REQUEST_HEADERS if headers is None else headers, timeout=10)

    def rpc(self, method: str, params: Any, request_id: str = "t1") -> httpx.Response:
        return self.post(jsonrpc.request(request_id, method, params))

    def execute(self, component: str, value: Any, request_id: str = "e1", headers: dict[str, str] | None = None) -> httpx.Response:
        return self.post(execute_body(component, value, request_id), {**REQUEST_HEADERS, **(headers or {})})

    def metric(self, name: str, **labels: str) -> float:
        return total(scrape(f"http://{self.address}:{METRICS_PORT}/metrics"), name, **labels)


def execute_body(component: str, value: Any, request_id: str = "e1") -> bytes:
    observability = {"run_id": "run-1", "flow_id": "flow-1", "step_id": "step-1"}
    return jsonrpc.request(request_id, jsonrpc.COMPONENTS_EXECUTE, {"component": component, "input": value, "attempt": 1, "observability": observability})


def blob_id_of(data: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(data)).hexdigest()


@dataclass
class SseExecution:
    """One execute answered over SSE, read event by event; answers callbacks like the runtime."""

    pod: Pod
    request_id: str
    response: httpx.Response
    blobs: dict[str, Any] = field(default_factory=dict)
    _decoder: EventStreamDecoder = field(default_factory=EventStreamDecoder)
    _ready: list[str] = field(default_factory=list)
    _chunks: Iterator[bytes] | None = None

    @classmethod
    def start(cls, pod: Pod, value: Any, request_id: str = "sse-1", component: str = "/store_and_retrieve_blob") -> SseExecution:
        client = httpx.Client(timeout=10)
        request = client.build_request("POST", pod.url + "/", content=execute_body(component, value, request_id), headers=REQUEST_HEADERS)
        return cls(pod, request_id, client.send(request, stream=True))

    @property
    def instance_id(self) -> str:
        return self.response.headers[INSTANCE_ID]

    def next_message(self) -> dict[str, Any]:
        if self._chunks is None:
            self._chunks = self.response.iter_raw()
        while not self._ready:
            self._ready += self._decoder.feed(next(self._chunks))
        return msgspec.json.decode(self._ready.pop(0))

    def answer(self, request: dict[str, Any]) -> httpx.Response:
        """What the runtime posts back for a blobs/* request."""
        params = request["params"]
        if request["method"] == jsonrpc.BLOBS_PUT:
            blob_id = blob_id_of(params["data"])
            self.blobs[blob_id] = params["data"]
            body = jsonrpc.success(request["id"], {"blob_id": blob_id})
        elif params["blob_id"] in self.blobs:
            body = jsonrpc.success(request["id"], {"data": self.blobs[params["blob_id"]], "blob_type": "data"})
        else:
            body = jsonrpc.failure(request["id"], jsonrpc.SERVER_ERROR, "Failed to get blob")
        return self.pod.post(body, {**REQUEST_HEADERS, INSTANCE_ID: self.instance_id})

    def run_to_end(self) -> dict[str, Any]:
        """Answer every callback until the final response arrives; return it."""
        while True:
            message = self.next_message()
            if "method" not in message:
                assert message["id"] == self.request_id
                return message
            assert self.answer(message).status_code == 202

    def close(self) -> None:
        self.response.close()


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pods")


def start_test_pod(address: str, log_dir: Path, env: dict[str, str] | None = None, args: list[str] | None = None) -> Pod:
    process = start_pod("ours", address, log_dir, extra_args=["--metrics-port", str(METRICS_PORT), *(args or [])], env=env)
    return Pod(process, address)


@pytest.fixture(scope="module")
def demo_pod(log_dir: Path) -> Iterator[Pod]:
    pod = start_test_pod("127.0.0.31", log_dir)
    yield pod
    pod.process.stop()
