"""The loop that keeps a replica's lease and takes over dead peers' runs.

Every ``tick``: renew the lease when due (``lease_rules.py``); if the database says it is gone,
or no renewal was confirmed for most of the TTL, drop every run (a peer may be taking them),
take a new lease (a new epoch) and resume the runs still ours. Every check interval: take the
runs of peers whose lease expired, and our own runs left from an earlier epoch, at most
``maxClaimsPerCheck`` at a time, and resume them. The runtime is reached through ``RunOwner``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from runtime_server import metrics
from runtime_server.config import RecoverySettings
from runtime_server.replicas.lease_rules import LeaseRules
from runtime_server.retry import Backoff
from runtime_server.runs.durable_store import DurableRunStore, StoreUnavailable
from telemetry.logs import log_event

logger = logging.getLogger(__name__)
REACQUIRE_BACKOFF = Backoff(first=0.2, factor=2.0, longest=2.0)


class RunOwner(Protocol):
    async def resume_claimed(self, claimed: list[tuple[Any, bool]], taken_from: str) -> None:
        """Resume runs just taken (a record, or CorruptRun; whether a cancel was asked)."""

    def drop_all_runs(self, reason: str) -> None:
        """Stop working on every live run without recording anything: another replica may own them."""


class Coordinator:
    def __init__(
        self,
        store: DurableRunStore,
        owner: RunOwner,
        settings: RecoverySettings,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._owner = owner
        self._settings = settings
        self._rules = LeaseRules(settings.lease_ttl_seconds, settings.check_interval_seconds)
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._last_sent = self._last_confirmed = now
        self._last_check = now - settings.check_interval_seconds

    async def run(self) -> None:
        while True:
            await self._sleep(self._rules.tick)
            now = self._clock()
            if self._rules.renew_due(now, self._last_sent) and not await self._renew(now):
                await self._lease_lost("the database no longer holds this replica's lease (expired, or taken at a newer epoch)")
                continue
            if self._rules.lost(self._clock(), self._last_confirmed):
                await self._lease_lost(f"no lease renewal was confirmed for {self._settings.lease_ttl_seconds * 0.9:.1f}s")
                continue
            if self._rules.check_due(now, self._last_check):
                self._last_check = now
                await self._claim_expired()

    async def _renew(self, sent: float) -> bool:
        """False only when the database answered that the lease is gone; unanswered counts as not yet."""
        self._last_sent = sent
        try:
            renewed = await asyncio.wait_for(self._store.renew_lease(), self._rules.renew_every)
        except (StoreUnavailable, TimeoutError) as error:
            log_event(logger, "lease_renewal_failed", logging.WARNING, orchestrator_id=self._store.owner, error=str(error) or type(error).__name__)
            return True
        if renewed:
            self._last_confirmed = sent
            metrics.LEASE_RENEWALS.inc()
        return renewed

    async def _lease_lost(self, reason: str) -> None:
        metrics.LEASE_LOSSES.inc()
        log_event(logger, "lease_lost", logging.ERROR, orchestrator_id=self._store.owner, epoch=self._store.epoch, reason=reason)
        self._owner.drop_all_runs(reason)
        attempt = 0
        while True:
            try:
                await self._store.acquire_lease()
                break
            except StoreUnavailable as error:
                attempt += 1
                log_event(logger, "lease_acquire_failed", logging.WARNING, orchestrator_id=self._store.owner, error=str(error), retry=attempt)
                await self._sleep(REACQUIRE_BACKOFF.delay(attempt))
        now = self._clock()
        self._last_sent = self._last_confirmed = now
        log_event(logger, "lease_acquired", orchestrator_id=self._store.owner, epoch=self._store.epoch)
        await self._take(self._store.owner, self._settings.max_startup_recovery)

    async def _claim_expired(self) -> None:
        try:
            peers = await self._store.expired_owners()
        except StoreUnavailable as error:
            log_event(logger, "claim_check_failed", logging.WARNING, orchestrator_id=self._store.owner, error=str(error))
            return
        for previous in [self._store.owner, *peers]:
            await self._take(previous, self._settings.max_claims_per_check)

    async def _take(self, previous: str, limit: int) -> None:
        try:
            claimed = await self._store.claim(previous, limit)
        except StoreUnavailable as error:
            log_event(logger, "claim_failed", logging.WARNING, orchestrator_id=self._store.owner, taken_from=previous, error=str(error))
            return
        if not claimed:
            return
        if previous != self._store.owner:
            metrics.RUNS_CLAIMED.inc(len(claimed))
            log_event(logger, "runs_claimed", orchestrator_id=self._store.owner, taken_from=previous, runs=len(claimed), epoch=self._store.epoch)
        await self._owner.resume_claimed(claimed, previous)
