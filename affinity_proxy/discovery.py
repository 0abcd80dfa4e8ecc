"""Discovery: resolve the headless service, probe every address's ``/health``, update membership.

A round resolves NAME's A records (dnspython, from ``--dns-server`` or the system
resolver), probes every address concurrently with a short timeout, and hands both to
the pure membership table. A DNS failure keeps the previous addresses: a resolver
hiccup must not drain the fleet. Rounds run every ``refresh_seconds``, and on demand
(an unknown instance id) with concurrent demands sharing one round.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable

import dns.asyncresolver
import dns.exception
import dns.resolver

from affinity_proxy.config import ProxyConfig
from affinity_proxy.health import MAX_ANSWER_BYTES, health_outcome, probe_request
from affinity_proxy.membership import Failed, Membership, ProbeOutcome, Refused, State
from affinity_proxy.metrics import ProxyMetrics
from telemetry.logs import log_event

logger = logging.getLogger("affinity_proxy.discovery")


async def probe(host: str, port: int, timeout: float) -> ProbeOutcome:
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(probe_request(host, port))
                raw = b""
                while len(raw) < MAX_ANSWER_BYTES:  # the pod closes after answering (connection: close)
                    chunk = await reader.read(MAX_ANSWER_BYTES)
                    if not chunk:
                        break
                    raw += chunk
            finally:
                writer.close()
    except ConnectionRefusedError:
        return Refused()
    except TimeoutError:
        return Failed(f"no health answer within {timeout}s")
    except OSError as exc:
        return Failed(f"health probe failed: {exc}")
    return health_outcome(raw)


class Discovery:
    def __init__(self, config: ProxyConfig, membership: Membership, metrics: ProxyMetrics, on_round: Callable[[], None]) -> None:
        self._name = config.upstream.host
        self._port = config.upstream.port
        self._probe_timeout = config.probe_timeout_seconds
        self._refresh_seconds = config.refresh_seconds
        self._membership = membership
        self._metrics = metrics
        self._on_round = on_round
        self._resolver = dns.asyncresolver.Resolver(configure=config.dns_server is None)
        if config.dns_server is not None:
            self._resolver.nameservers = [config.dns_server.host]
            self._resolver.port = config.dns_server.port
        self._resolver.lifetime = max(config.probe_timeout_seconds, 1.0)
        self._addresses: list[str] = []
        self._round: asyncio.Future[None] | None = None
        self._round_started = float("-inf")

    async def run(self) -> None:
        while True:
            await self.refresh_after(time.monotonic())
            await asyncio.sleep(self._refresh_seconds)

    async def refresh_after(self, instant: float) -> None:
        """Return once a round that started at or after ``instant`` has finished."""
        while True:
            if self._round is None or self._round.done():
                if self._round_started >= instant:
                    return
                self._round_started = time.monotonic()
                self._round = asyncio.ensure_future(self._refresh())
            started = self._round_started
            await asyncio.shield(self._round)
            if started >= instant:
                return

    async def resolve(self) -> list[str] | None:
        """The service's addresses; [] if the name has none; None if DNS could not say."""
        try:
            return [str(ipaddress.ip_address(self._name))]
        except ValueError:
            pass
        try:
            answer = await self._resolver.resolve(self._name, "A")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            self._metrics.discovery_failure("dns")
            log_event(logger, "dns_failed", level=logging.WARNING, name=self._name, error=str(exc) or type(exc).__name__)
            return None
        return sorted({record.address for record in answer})

    async def _refresh(self) -> None:
        addresses = await self.resolve()
        if addresses is not None:
            self._addresses = addresses
        targets = self._membership.probe_targets(self._addresses)
        outcomes = await asyncio.gather(*(probe(address, self._port, self._probe_timeout) for address in targets))
        probes = dict(zip(targets, outcomes, strict=True))
        for outcome in probes.values():
            if isinstance(outcome, Failed | Refused):
                self._metrics.discovery_failure("probe")
        before = {m.instance_id: m.state for m in self._membership.members.values()}
        self._membership.refresh(self._addresses, probes)
        self._metrics.discovery_refreshed()
        self._log_changes(before, probes)
        self._on_round()

    def _log_changes(self, before: dict[str, State], probes: dict[str, ProbeOutcome]) -> None:
        for member in self._membership.members.values():
            if before.get(member.instance_id) is not member.state:
                outcome = probes.get(member.address)
                log_event(
                    logger,
                    "member_changed",
                    instance_id=member.instance_id,
                    pod=member.address,
                    state=member.state.value,
                    previous=getattr(before.get(member.instance_id), "value", None),
                    in_dns=member.in_dns,
                    in_flight=member.in_flight,
                    probe=type(outcome).__name__ if outcome is not None else None,
                )
