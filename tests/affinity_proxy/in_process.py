"""The proxy's protocol objects in one process: real parsers and pipeline, fake transports.

A ``Rig`` is a ``Proxy`` whose membership is set by hand and whose pod pools hold
connections on ``FakeTransport``s; a test feeds a client connection bytes (whole, one at a
time, or in odd splits), reads what each pod received, feeds the pods' answers back and
reads what the client received, write by write (what the proxy's outbox holds is sent first, as
the loop turn that follows would). Closing a fake transport reports ``connection_lost`` on the
next loop turn, as asyncio's do.
"""

from __future__ import annotations

import asyncio
import typing
from collections.abc import Iterable, Iterator

from affinity_proxy.client import ClientConnection
from affinity_proxy.config import HostPort, ProxyConfig
from affinity_proxy.membership import Healthy, Member, NotReady, ProbeOutcome
from affinity_proxy.outbox import Outbox
from affinity_proxy.proxy import Proxy
from affinity_proxy.upstream import UpstreamConnection

CONFIG = ProxyConfig(listen=HostPort("127.0.0.1", 1), upstream=HostPort("pods.invalid", 8080), dns_server=HostPort("127.0.0.1", 9), probe_timeout_seconds=0.05)


class Protocol(typing.Protocol):
    """The proxy's connections: asyncio protocols by their methods (client.py, upstream.py)."""

    def data_received(self, data: bytes) -> None: ...
    def connection_lost(self, exc: Exception | None) -> None: ...


class FakeTransport(asyncio.Transport):
    def __init__(self, protocol: Protocol, outbox: Outbox) -> None:
        super().__init__()
        self.protocol = protocol
        self._outbox = outbox
        self._writes: list[bytes] = []
        self.closed = False
        self.reading = True

    @property
    def writes(self) -> list[bytes]:
        self._outbox.flush()
        return self._writes

    @property
    def received(self) -> bytes:
        return b"".join(self.writes)

    def take(self) -> bytes:
        """What was written since the last take."""
        data, self._writes = b"".join(self.writes), []
        return data

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "write after close"
        self._writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def splits(data: bytes, how: str) -> Iterator[bytes]:
    """``whole``, ``bytes`` (one at a time) or ``odd`` (pieces of 1, 2, 3, 5, 7 bytes, repeating)."""
    if how == "whole":
        yield data
        return
    sizes = [1] if how == "bytes" else [1, 2, 3, 5, 7]
    at = index = 0
    while at < len(data):
        yield data[at : at + sizes[index % len(sizes)]]
        at += sizes[index % len(sizes)]
        index += 1


def feed(protocol: Protocol, data: bytes, how: str = "whole") -> None:
    for piece in splits(data, how):
        protocol.data_received(piece)


class Rig:
    def __init__(self, pods: Iterable[str] = ("pod-a",), config: ProxyConfig = CONFIG, draining: Iterable[str] = ()) -> None:
        self.proxy = Proxy(config)
        pods, draining = list(pods), list(draining)
        addresses = {pod: f"10.0.0.{index + 1}" for index, pod in enumerate(pods + draining)}
        probes: dict[str, ProbeOutcome] = {addresses[pod]: Healthy(pod) for pod in pods}
        probes.update({addresses[pod]: NotReady(pod) for pod in draining})
        self.proxy.membership.refresh(list(probes), probes)

    def member(self, instance_id: str) -> Member:
        member = self.proxy.membership.find(instance_id)
        assert member is not None
        return member

    def pod_connection(self, instance_id: str) -> UpstreamConnection:
        """A new idle pooled connection to the pod (the one the next request to it takes)."""
        pool = self.proxy.pool_for(self.member(instance_id))
        connection = UpstreamConnection(pool)
        connection.connection_made(FakeTransport(connection, self.proxy.outbox))
        pool.open += 1
        pool.give_back(connection)
        return connection

    def client(self) -> ClientConnection:
        client = ClientConnection(self.proxy.config, self.proxy.outbox, self.proxy.proxy_answer, self.proxy.open_exchange)
        client.connection_made(FakeTransport(client, self.proxy.outbox))
        return client


def transport(protocol: Protocol) -> FakeTransport:
    found = protocol.transport if isinstance(protocol, UpstreamConnection) else protocol._transport  # type: ignore[attr-defined]
    assert isinstance(found, FakeTransport)
    return found


async def turn() -> None:
    """Let callbacks scheduled for the next loop turns run (connection_lost, tasks)."""
    for _ in range(3):
        await asyncio.sleep(0)
