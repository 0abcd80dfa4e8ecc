"""The proxy as a whole: membership, selector, discovery, pod pools, metrics and listeners."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import affinity_proxy
from affinity_proxy import answers
from affinity_proxy.accounting import Accounting
from affinity_proxy.client import ClientConnection, LocalAnswer, OpenExchange
from affinity_proxy.config import ProxyConfig
from affinity_proxy.discovery import Discovery
from affinity_proxy.membership import Member, Membership, State
from affinity_proxy.metrics import ProxyMetrics
from affinity_proxy.outbox import Outbox
from affinity_proxy.pipeline import ClientSide, Exchange, Forwarded, RequestHead, Services, request_filter
from affinity_proxy.routing import Selector
from affinity_proxy.upstream import PodPool
from serving.open_files import open_file_limit
from telemetry.logs import log_event

logger = logging.getLogger("affinity_proxy")

PROMETHEUS_TEXT = b"text/plain; version=0.0.4; charset=utf-8"


class Proxy(Services):
    def __init__(self, config: ProxyConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.membership = Membership(config.probe_failures, clock=clock)
        self.selector = Selector(self.membership)
        self.pools: dict[str, PodPool] = {}
        self.outbox = Outbox()
        self.metrics = ProxyMetrics(self.membership, self.pools)
        self.accounting = Accounting(self.metrics, logging.getLogger("affinity_proxy.route"))
        self.discovery = Discovery(config, self.membership, self.metrics, on_round=self._after_round)

    def pool_for(self, member: Member) -> PodPool:
        pool = self.pools.get(member.instance_id)
        if pool is None:
            config = self.config
            pool = self.pools[member.instance_id] = PodPool(
                member.address, config.upstream.port, config.connect_timeout_seconds, config.pool_idle_seconds, config.pool_max_idle, self.clock, self.outbox
            )
        return pool

    def open_exchange(self, head: RequestHead, client: ClientSide) -> Forwarded | str:
        """The request filter (pipeline phase 1), then an exchange that runs the other phases."""
        problem = request_filter(head, self.membership)
        return problem if problem is not None else Exchange(self, client, head)

    def in_flight(self) -> int:
        return sum(member.in_flight for member in self.membership.members.values())

    # -- local answers ------------------------------------------------------------------
    def proxy_answer(self, method: bytes, target: bytes) -> bytes | None:
        """The proxy port forwards everything except its own health and membership view."""
        if method == b"GET" and target == b"/health":
            return self._health()
        if method == b"GET" and target == b"/proxy/membership":
            return self._membership_view()
        return None

    def metrics_answer(self, method: bytes, target: bytes) -> bytes | None:
        if method != b"GET":
            return answers.json_response(405, {"error": "only GET is served on the metrics listener"})
        if target == b"/metrics":
            body = self.metrics.render()
            return b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s" % (PROMETHEUS_TEXT, len(body), body)
        if target == b"/membership":
            return self._membership_view()
        if target == b"/health":
            return self._health()
        return None

    def _health(self) -> bytes:
        counts = {state.value: 0 for state in State}
        for member in self.membership.members.values():
            counts[member.state.value] += 1
        return answers.json_response(200, {"status": "healthy", "service": "affinity-proxy", "members": counts})

    def _membership_view(self) -> bytes:
        return answers.json_response(200, {"upstream": str(self.config.upstream), "members": self.membership.view()})

    def _after_round(self) -> None:
        for instance_id, pool in list(self.pools.items()):
            member = self.membership.find(instance_id)
            if member is None or member.state is State.GONE:
                pool.close()
                if member is None or member.in_flight == 0:
                    del self.pools[instance_id]
            else:
                pool.prune()

    # -- serving ------------------------------------------------------------------------
    async def serve(self, stop: asyncio.Event, drain_seconds: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        listeners = [await self._listen(loop, self.config.listen.host, self.config.listen.port, self.proxy_answer, self.open_exchange)]
        if self.config.metrics_listen is not None:
            metrics = self.config.metrics_listen
            listeners.append(await self._listen(loop, metrics.host, metrics.port, self.metrics_answer, None))
        discovery = loop.create_task(self.discovery.run())
        log_event(
            logger,
            "proxy_listening",
            address=str(self.config.listen),
            upstream=str(self.config.upstream),
            metrics=str(self.config.metrics_listen) if self.config.metrics_listen else None,
            dns_server=str(self.config.dns_server) if self.config.dns_server else None,
            open_files=open_file_limit(),
            compiled=affinity_proxy.COMPILED,  # False: the per-request modules run as Python, at about twice the CPU
        )
        await stop.wait()
        for listener in listeners:
            listener.close()
        deadline = self.clock() + drain_seconds
        while self.in_flight() and self.clock() < deadline:
            await asyncio.sleep(0.05)
        discovery.cancel()
        for pool in self.pools.values():
            pool.close()
        log_event(logger, "proxy_stopped", in_flight=self.in_flight())

    async def _listen(self, loop: asyncio.AbstractEventLoop, host: str, port: int, local: LocalAnswer, forward: OpenExchange | None) -> asyncio.Server:
        def protocol() -> Any:  # an asyncio.Protocol by its methods (ClientConnection's docstring)
            return ClientConnection(self.config, self.outbox, local, forward)

        return await loop.create_server(protocol, host, port, reuse_address=True, backlog=1024)
