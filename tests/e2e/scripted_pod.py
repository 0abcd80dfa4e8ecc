"""A component server whose answers a test scripts: the faults real pods rarely show on cue.

It speaks the wire protocol on a real socket (uvicorn in a thread of the test process)
and records every POST, so tests can check what the runtime sent: attempt numbers,
observability ids, the instance header on callback answers. Components:

``/echo`` plain JSON, output = the params and traceparent it received; ``/fail`` a
component error; ``/busy`` 503 while ``busy_left`` > 0, then like ``/echo``; ``/ask``
SSE, sends the callbacks ``input.calls`` = ``[[method, params], ...]`` one by one and
returns their answers; ``/silent`` SSE that never says anything; ``/no_final`` SSE
that ends without the final response; ``/odd_framing`` SSE in CRLF framing, without the
space after ``data:``, a multi-byte character split across chunks; ``/bad_gateway`` a
plain-text 502 like a proxy's.

Behind a proxy: ``GET /health`` names the pod's ``instance_id``. A pod with ``vanish`` set
plays one that dies while it works: the moment an execute arrives its health probes fail
(so the proxy drops it); its stream waits for ``released``, then either carries on
(``"keep_stream"``: its callback answers now meet the proxy's 503 for a gone instance) or
is cut without a final chunk (``"reset_stream"``: the connection dies mid-step).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

INSTANCE_ID = "scripted-pod-0001"
RELEASE_WAIT_SECONDS = 30.0
COMPONENTS = ("echo", "fail", "busy", "bad_gateway", "ask", "silent", "no_final", "odd_framing")


class ScriptedPod:
    def __init__(self, host: str, port: int = 8080, instance_id: str = INSTANCE_ID) -> None:
        self.host = host
        self.port = port
        self.instance_id = instance_id
        self.vanish: str | None = None
        self.vanished = False
        self.released = threading.Event()
        self.received: list[tuple[dict[str, str], Any]] = []
        self.client_ports: set[int] = set()
        self.busy_left = 0
        self.refuse_answers = False
        self._pending: dict[Any, asyncio.Future[Any]] = {}
        app = Starlette(routes=[Route("/", self._post, methods=["POST"]), Route("/health", self._health, methods=["GET"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", timeout_graceful_shutdown=1))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ScriptedPod:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"scripted pod did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    def executes(self) -> list[tuple[dict[str, str], Any]]:
        return [(h, m) for h, m in self.received if m.get("method") == "components/execute"]

    def callback_answers(self) -> list[tuple[dict[str, str], Any]]:
        return [(h, m) for h, m in self.received if "method" not in m]

    async def _health(self, request: Request) -> Response:
        if self.vanished:
            return Response(b"gone", 500, media_type="text/plain")
        return _json({"status": "healthy", "instanceId": self.instance_id})

    async def _post(self, request: Request) -> Response:
        message = msgspec.json.decode(await request.body())
        self.received.append((dict(request.headers), message))
        self.client_ports.add(request.client.port if request.client else 0)
        if "method" not in message:
            return self._take_answer(message)
        method = message["method"]
        if method == "initialize":
            return _json({"jsonrpc": "2.0", "id": message["id"], "result": {"server_protocol_version": 1}})
        if method == "initialized":
            return Response(b'""', 202, media_type="application/json")
        if method == "components/list":
            return _json({"jsonrpc": "2.0", "id": message["id"], "result": {"components": [{"component": f"/{name}"} for name in COMPONENTS]}})
        params = message["params"]
        self.vanished = self.vanish is not None
        return await getattr(self, "_" + params["component"].strip("/"))(message["id"], params, request)

    def _take_answer(self, message: Any) -> Response:
        if self.refuse_answers:
            return Response(b'{"error":"no healthy backend with that instance id"}', 503, media_type="application/json")
        waiter = self._pending.pop(message.get("id"), None)
        if waiter is None:
            return Response(b'{"error":"no pending request"}', 400, media_type="application/json")
        waiter.set_result(message)
        return Response(b'""', 202, media_type="application/json")

    async def _echo(self, request_id: Any, params: Any, request: Request) -> Response:
        return _json({"jsonrpc": "2.0", "id": request_id, "result": {"output": {"params": params, "traceparent": request.headers.get("traceparent")}}})

    async def _fail(self, request_id: Any, params: Any, request: Request) -> Response:
        return _json({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32003, "message": "Component execution failed: boom", "data": {}}})

    async def _busy(self, request_id: Any, params: Any, request: Request) -> Response:
        if self.busy_left > 0:
            self.busy_left -= 1
            return Response(b'{"error":"draining"}', 503, media_type="application/json")
        return await self._echo(request_id, params, request)

    async def _bad_gateway(self, request_id: Any, params: Any, request: Request) -> Response:
        return Response(b"Bad Gateway", 502, media_type="text/plain")

    async def _ask(self, request_id: Any, params: Any, request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            await self._play_vanishing()
            answers = []
            for number, (method, call_params) in enumerate(params["input"]["calls"]):
                callback_id = f"cb-{request_id}-{number}"
                waiter = asyncio.get_running_loop().create_future()
                self._pending[callback_id] = waiter
                yield _event({"jsonrpc": "2.0", "id": callback_id, "method": method, "params": call_params})
                answers.append(await waiter)
            yield _event({"jsonrpc": "2.0", "id": request_id, "result": {"output": {"answers": answers}}})

        return _sse(events(), self.instance_id)

    async def _play_vanishing(self) -> None:
        if self.vanish is None:
            return
        deadline = time.monotonic() + RELEASE_WAIT_SECONDS
        while not self.released.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self.vanish == "reset_stream":
            raise ConnectionResetError(f"scripted pod {self.instance_id} died mid-step")

    async def _silent(self, request_id: Any, params: Any, request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            await asyncio.sleep(3600)
            yield b""

        return _sse(events())

    async def _no_final(self, request_id: Any, params: Any, request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            yield _event({"jsonrpc": "2.0", "id": "someone-else", "result": {"output": 1}})

        return _sse(events())

    async def _odd_framing(self, request_id: Any, params: Any, request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            payload = msgspec.json.encode({"jsonrpc": "2.0", "id": request_id, "result": {"output": {"word": "naïve"}}})
            frame = b": keep-alive\r\n\r\ndata:" + payload + b"\r\n\r\n"
            split = frame.index("ï".encode()) + 1
            yield frame[:split]
            await asyncio.sleep(0.01)
            yield frame[split:]

        return _sse(events())


def _json(body: Any) -> Response:
    return Response(msgspec.json.encode(body), media_type="application/json")


def _event(message: Any) -> bytes:
    return b"data: " + msgspec.json.encode(message) + b"\n\n"


def _sse(events: AsyncIterator[bytes], instance_id: str = INSTANCE_ID) -> Response:
    return StreamingResponse(events, media_type="text/event-stream", headers={"Stepflow-Instance-Id": instance_id})
