"""A deliberately odd pod for proxy tests: full, echoing, slow to stream, or dying mid-stream.

Run: ``python tests/affinity_proxy/odd_pod.py --host 127.0.0.47 --port 8080 --mode full``.
``GET /health`` answers like a real pod (instance id ``<mode>-<host>``), so discovery
treats it as one; ``POST /`` misbehaves according to ``--mode``:

* ``full``: 503 with a JSON-RPC error, as a pod at its concurrency limit does;
* ``echo``: 200 JSON of the method, target, headers and body it received (plus a
  hop-by-hop header of its own that must not reach the client);
* ``slow-sse``: an SSE event, a pause of ``--pause`` seconds, a second event;
* ``die``: an SSE event, then the connection is dropped without ending the stream.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def build_app(mode: str, instance_id: str, pause: float) -> Starlette:
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "healthy", "instanceId": instance_id})

    async def post(request: Request) -> Response:
        body = await request.body()
        if mode == "full":
            error = {"jsonrpc": "2.0", "id": None, "error": {"code": -32000, "message": "pod is full", "data": {"retryable": True}}}
            return JSONResponse(error, status_code=503)
        if mode == "echo":
            echoed = {"method": request.method, "target": request.url.path, "headers": [[k, v] for k, v in request.headers.items()], "body": body.decode()}
            return JSONResponse(echoed, headers={"x-pod-private": "1", "connection": "x-pod-private", "stepflow-instance-id": instance_id})
        return StreamingResponse(_events(mode, pause), media_type="text/event-stream", headers={"stepflow-instance-id": instance_id})

    return Starlette(routes=[Route("/health", health), Route("/", post, methods=["POST"])])


async def _events(mode: str, pause: float) -> AsyncIterator[bytes]:
    yield b'data: {"event":1}\n\n'
    if mode == "die":
        raise ConnectionAbortedError("odd pod drops the stream on purpose")
    await asyncio.sleep(pause)
    yield b'data: {"event":2}\n\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--mode", choices=["full", "echo", "slow-sse", "die"], required=True)
    parser.add_argument("--pause", type=float, default=1.0)
    args = parser.parse_args()
    app = build_app(args.mode, f"{args.mode}-{args.host}", args.pause)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
