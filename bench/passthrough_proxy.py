"""The floor for a proxy on asyncio + uvloop: bytes passed through, nothing parsed.

    python bench/passthrough_proxy.py HOST:PORT POD:PORT [POD:PORT ...]

Each client connection gets its own connection to the next pod in turn and every byte is
copied both ways: no HTTP parsing, routing, pinning, logs or metrics. ``bench_proxy.py
--floor`` runs it beside our proxy and HAProxy, to show what any asyncio proxy spends
before doing the work of one.
"""

from __future__ import annotations

import asyncio
import itertools
import sys

import uvloop


class _PodSide(asyncio.Protocol):
    def __init__(self, client: asyncio.Transport) -> None:
        self._client = client

    def data_received(self, data: bytes) -> None:
        self._client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._client.close()


class _ClientSide(asyncio.Protocol):
    def __init__(self, pods: itertools.cycle[tuple[str, int]]) -> None:
        self._pods = pods
        self._pod: asyncio.Transport | None = None
        self._client: asyncio.Transport | None = None
        self._early: list[bytes] = []
        """What the client sent before the pod connection was up."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._client = transport  # type: ignore[assignment]  # a stream connection is always handed an asyncio.Transport
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        assert self._client is not None
        host, port = next(self._pods)
        try:
            self._pod, _ = await asyncio.get_running_loop().create_connection(lambda: _PodSide(self._client), host, port)  # type: ignore[arg-type]  # asserted not None above; mypy does not carry that into the lambda
        except OSError:
            self._client.close()
            return
        self._pod.write(b"".join(self._early))

    def data_received(self, data: bytes) -> None:
        if self._pod is None:
            self._early.append(data)
        else:
            self._pod.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._pod is not None:
            self._pod.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def _serve(listen: tuple[str, int], pods: list[tuple[str, int]]) -> None:
    rotation = itertools.cycle(pods)
    server = await asyncio.get_running_loop().create_server(lambda: _ClientSide(rotation), *listen)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(_serve(_address(sys.argv[1]), [_address(pod) for pod in sys.argv[2:]]))
