"""CPU per component call of the remote plugin, by the HTTP client under it, in one run.

    python bench/bench_plugin_transport.py [--calls 1500]

Starts one of our demo pods on 127.0.0.63:8080 and drives it through
``StepflowHttpPlugin.execute`` (the runtime's real call path) with each candidate: three
transports under an httpx client (httpx's default, httpcore on anyio; an adapter onto
aiohttp's client; our asyncio protocols + httptools) and what the plugin uses, the same
connections without httpx (``HttptoolsClient``). The pod runs in
its own process, so the client's ``process_time`` per call is the plugin's CPU cost.
Prints calls/s, CPU µs per call and the ratio to httpx's default, at concurrency 8 and 32,
for ``/double`` (plain JSON) and ``/store_and_retrieve_blob`` (SSE with two callbacks).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import msgspec
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime_server.plugins.base import ExecuteRequest
from runtime_server.plugins.remote.settings import RemoteSettings
from runtime_server.plugins.remote.transport import HttptoolsTransport
from runtime_server.plugins.stepflow_http import StepflowHttpPlugin
from tests.support.pods import start_pod
from wire_protocol.messages import Observability, PutBlobParams

POD = "127.0.0.63"


class AiohttpStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_any():
            yield chunk

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """What httpx-aiohttp does, reduced to what the plugin uses."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)
        timeouts = request.extensions.get("timeout", {})
        try:
            response = await self._session.request(
                request.method,
                str(request.url),
                data=await request.aread(),
                headers=[(k.decode(), v.decode()) for k, v in request.headers.raw if k.lower() not in (b"host", b"content-length")],
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(sock_connect=timeouts.get("connect"), sock_read=timeouts.get("read")),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            )
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc)) from None
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(str(exc)) from None
        return httpx.Response(response.status, headers=response.raw_headers, stream=AiohttpStream(response))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class BlobCallbacks:
    def __init__(self) -> None:
        self.blobs: dict[str, Any] = {}

    async def handle(self, method: str, params: Any) -> Any:
        if isinstance(params, PutBlobParams):
            blob_id = hashlib.sha256(msgspec.json.encode(params.data)).hexdigest()
            self.blobs[blob_id] = params.data
            return {"blob_id": blob_id}
        return {"data": self.blobs[params.blob_id], "blob_type": "data"}


TRANSPORTS: dict[str, Callable[[], httpx.AsyncBaseTransport | None]] = {
    "httpx default (httpcore)": lambda: httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=None)),
    "aiohttp adapter": AiohttpTransport,
    "asyncio + httptools under httpx": HttptoolsTransport,
    "asyncio + httptools, no httpx (ours)": lambda: None,
}
CASES = {"/double": {"value": 3}, "/store_and_retrieve_blob": {"data": {"k": 1}}}


async def measure(transport: httpx.AsyncBaseTransport | None, component: str, concurrency: int, calls: int) -> tuple[float, float]:
    plugin = StepflowHttpPlugin("bench", f"http://{POD}:8080", RemoteSettings(), transport)
    await plugin.start()
    callbacks = BlobCallbacks()
    observability = Observability(run_id="bench", flow_id="bench", step_id="s")
    request = ExecuteRequest(component=component, input=CASES[component], attempt=1, observability=observability, callbacks=callbacks)
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await plugin.execute(request)

    await asyncio.gather(*(worker() for _ in range(concurrency)))  # warm the pool
    remaining = calls
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 120)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await plugin.close()
    return calls / wall, cpu / calls * 1e6


async def run(calls: int) -> None:
    print(f"{'component':26} {'conc':>4}  {'transport':36} {'calls/s':>8} {'CPU µs/call':>12} {'CPU vs default':>15}")
    for component in CASES:
        for concurrency in (8, 32):
            baseline = None
            for name, factory in TRANSPORTS.items():
                rate, cpu = await measure(factory(), component, concurrency, calls)
                baseline = baseline or cpu
                print(f"{component:26} {concurrency:>4}  {name:36} {rate:8.0f} {cpu:12.0f} {cpu / baseline:14.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logs:
        pod = start_pod("ours", POD, Path(logs))
        try:
            uvloop.run(run(min(args.calls, 20_000)))
        finally:
            pod.stop()


if __name__ == "__main__":
    main()
