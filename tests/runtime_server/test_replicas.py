"""Replicas on one database (real PostgreSQL, and SQLite where one machine shares a file): leases,
epochs, claims, fencing, cancels across replicas, the coordinator on an injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from runtime_server.config import RecoverySettings
from runtime_server.replicas.coordinator import Coordinator
from runtime_server.runs.durable_store import DurableRunStore
from runtime_server.runs.record import RunRecord
from runtime_server.runs.rows import RunsLost
from tests.runtime_server.test_durable_store import backend_for, new_record

TTL = 0.3


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'replicas.db'}?mode=rwc"
    return request.getfixturevalue("postgres").create_database()


async def replica(database_url: str, owner: str) -> DurableRunStore:
    store = DurableRunStore(backend_for(database_url), owner, max_runs=1000, max_age_seconds=3600, lease_ttl_seconds=TTL)
    await store.open()
    return store


@pytest.fixture
async def pair(database_url: str) -> AsyncIterator[tuple[DurableRunStore, DurableRunStore]]:
    a, b = await replica(database_url, "replica-a"), await replica(database_url, "replica-b")
    yield a, b
    await a.close()
    await b.close()


async def started_run(store: DurableRunStore) -> RunRecord:
    record = new_record()
    store.created(record)
    record.record_event("run_started")
    record.record_event("step_started", item_index=0, step_id="a", attempt=1)
    await store.written(record)
    return record


@pytest.mark.anyio
async def test_epochs_only_grow(database_url: str) -> None:
    store = await replica(database_url, "replica-a")
    try:
        first = store.epoch
        await store.acquire_lease()
        assert store.epoch > first
    finally:
        await store.close()


@pytest.mark.anyio
async def test_a_live_peers_runs_are_not_claimed(pair: tuple[DurableRunStore, DurableRunStore]) -> None:
    a, b = pair
    await started_run(a)
    assert await b.expired_owners() == []
    assert await b.claim("replica-a", 10) == []


@pytest.mark.anyio
async def test_an_expired_peers_runs_are_claimed_and_its_writes_fenced(pair: tuple[DurableRunStore, DurableRunStore]) -> None:
    a, b = pair
    record = await started_run(a)
    lost: list[set[str]] = []
    a.writer.on_lost = lost.append
    await asyncio.sleep(TTL + 0.1)
    assert await b.expired_owners() == ["replica-a"]
    [(claimed, cancel_requested)] = await b.claim("replica-a", 10)
    assert isinstance(claimed, RunRecord) and claimed.run_id == record.run_id and not cancel_requested
    assert [entry[1] for entry in claimed.journal] == ["run_started", "step_started"]
    record.record_event("step_succeeded", item_index=0, step_id="a", attempt=1, outcome=1)  # the frozen replica's late result
    with pytest.raises(RunsLost):
        await a.written(record)
    assert lost == [{record.run_id}]
    again = await b.get(record.run_id)
    assert again is not None and [entry[1] for entry in again.journal] == ["run_started", "step_started"], "nothing of the old owner's was written"
    assert again.owner == "replica-b"


@pytest.mark.anyio
async def test_a_renewed_lease_keeps_its_runs(pair: tuple[DurableRunStore, DurableRunStore]) -> None:
    a, b = pair
    await started_run(a)
    for _ in range(4):
        await asyncio.sleep(TTL / 3)
        assert await a.renew_lease()
    assert await b.claim("replica-a", 10) == []


@pytest.mark.anyio
async def test_a_released_lease_is_claimable_at_once(pair: tuple[DurableRunStore, DurableRunStore]) -> None:
    a, b = pair
    record = await started_run(a)
    await a.release_lease()
    assert [claimed.run_id for claimed, _ in await b.claim("replica-a", 10)] == [record.run_id]  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_claims_are_bounded_per_check(pair: tuple[DurableRunStore, DurableRunStore]) -> None:
    a, b = pair
    for _ in range(5):
        await started_run(a)
    await a.release_lease()
    assert len(await b.claim("replica-a", 2)) == 2
    assert len(await b.claim("replica-a", 10)) == 3


@pytest.mark.anyio
async def test_a_cancel_asked_of_another_replica_reaches_it(pair: tuple[DurableRunStore, DurableRunStore], database_url: str) -> None:
    a, b = pair
    record = await started_run(a)
    heard: list[str] = []
    listening = await a.backend.listen(lambda run_id: None, heard.append)
    try:
        assert await b.request_cancel(record.run_id)
        if listening is not None:  # PostgreSQL: the owner hears it
            for _ in range(50):
                if heard:
                    break
                await asyncio.sleep(0.02)
            assert heard == [record.run_id]
        await a.release_lease()
        [(_, cancel_requested)] = await b.claim("replica-a", 10)
        assert cancel_requested, "a peer that takes the run over sees the cancel too"
    finally:
        if listening is not None:
            await listening.close()


class Owner:
    """What the coordinator asks of a runtime, recorded."""

    def __init__(self) -> None:
        self.resumed: list[tuple[list[Any], str]] = []
        self.dropped: list[str] = []

    async def resume_claimed(self, claimed: list[tuple[Any, bool]], taken_from: str) -> None:
        self.resumed.append(([item.run_id for item, _ in claimed], taken_from))

    def drop_all_runs(self, reason: str) -> None:
        self.dropped.append(reason)


@pytest.mark.anyio
async def test_the_coordinator_takes_over_an_expired_peer(pair: tuple[DurableRunStore, DurableRunStore]) -> None:
    a, b = pair
    record = await started_run(a)
    owner = Owner()
    coordinator = asyncio.create_task(Coordinator(b, owner, RecoverySettings(lease_ttl_seconds=TTL, check_interval_seconds=0.1)).run())
    try:
        for _ in range(100):
            if owner.resumed:
                break
            await asyncio.sleep(0.02)
        assert owner.resumed == [([record.run_id], "replica-a")]
        assert owner.dropped == []
    finally:
        coordinator.cancel()


@pytest.mark.anyio
async def test_the_coordinator_drops_its_runs_when_its_lease_is_taken(pair: tuple[DurableRunStore, DurableRunStore]) -> None:
    a, _ = pair
    owner = Owner()
    await a.backend.acquire_lease("replica-a", 60_000)  # another holder took a newer epoch: ours is fenced off
    coordinator = asyncio.create_task(Coordinator(a, owner, RecoverySettings(lease_ttl_seconds=TTL, check_interval_seconds=0.1)).run())
    try:
        for _ in range(100):
            if owner.dropped:
                break
            await asyncio.sleep(0.02)
        assert owner.dropped and "no longer holds" in owner.dropped[0]
    finally:
        coordinator.cancel()
