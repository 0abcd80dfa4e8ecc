"""The durable store on a real SQLite file and a real PostgreSQL server: group commit, runs
read back from their journal, listing, deletion, retention, unreadable runs, migrations."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from runtime_server import metrics
from runtime_server.config import settings_from_data
from runtime_server.runs.durable_store import DurableRunStore, StoreUnavailable
from runtime_server.runs.ids import new_run_id
from runtime_server.runs.postgres_backend import PostgresBackend, statistics_due
from runtime_server.runs.record import RunRecord, StepState
from runtime_server.runs.rows import Batch, CorruptRun, JournalRow, RunEnd, RunRefused, RunRow
from runtime_server.runs.sqlite_backend import SqliteBackend
from runtime_server.runs.store import RunQuery
from runtime_server.runtime import Runtime

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'store.db'}?mode=rwc"
    server = request.getfixturevalue("postgres")
    return server.create_database()


def backend_for(url: str, auto_migrate: bool = True) -> Any:
    if url.startswith("sqlite:"):
        return SqliteBackend(url.removeprefix("sqlite:").split("?")[0], auto_migrate)
    return PostgresBackend(url, auto_migrate)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[DurableRunStore]:
    opened = DurableRunStore(backend_for(database_url), "runtime-a", max_runs=1000, max_age_seconds=3600)
    await opened.open()
    yield opened
    await opened.close()


async def after_a_restart(database_url: str) -> list[RunRecord | CorruptRun]:
    """What the same runtime, started again (a new lease epoch), takes back as unfinished."""
    again = DurableRunStore(backend_for(database_url), "runtime-a", max_runs=1000, max_age_seconds=3600)
    await again.open()
    try:
        return [item for item, _ in await again.claim("runtime-a", 1000)]
    finally:
        await again.close()


def new_record(steps: tuple[str, ...] = ("a",), inputs: list[Any] | None = None, submit_key: str | None = None) -> RunRecord:
    run_id = new_run_id()
    inputs = inputs if inputs is not None else [{"v": 1}]
    return RunRecord(run_id, "f" * 64, "demo", inputs, {step: StepState("/c") for step in steps}, run_id, submit_key=submit_key)


def finish(record: RunRecord, outcome: Any) -> None:
    for index in range(len(record.inputs)):
        record.item_outcomes[index] = outcome
        record.record_event("item_completed", item_index=index, status="completed", outcome=outcome)
    record.status = "completed"
    record.completed_ns = record.created_ns + 1
    record.record_event("run_completed", status="completed")


@pytest.mark.anyio
async def test_many_runs_share_few_commits_and_read_back_as_journaled(database_url: str, store: DurableRunStore) -> None:
    commits_before = metrics.JOURNAL_COMMITS.labels().value
    records = [new_record() for _ in range(50)]
    for record in records:
        store.created(record)
        record.record_event("run_started")
        record.record_event("step_started", item_index=0, step_id="a", attempt=1)
        record.record_event("step_succeeded", item_index=0, step_id="a", attempt=1, instance_id="pod-1", outcome={"x": 2})
    await asyncio.gather(*(store.written(record) for record in records))
    assert metrics.JOURNAL_COMMITS.labels().value - commits_before <= 5, "50 runs journaled together go out in a few group commits"
    again = await store.get(records[7].run_id)
    assert again is not None and again.status == "running"
    assert [entry[1] for entry in again.journal] == ["run_started", "step_started", "step_succeeded"]
    state = again.steps["a"]
    assert (state.status, state.outcome, state.attempt, state.instance_id) == ("completed", {"x": 2}, 1, "pod-1")
    assert {record.run_id for record in await after_a_restart(database_url)} == {record.run_id for record in records}  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_a_finished_run_lists_with_its_counts_and_is_not_unfinished(database_url: str, store: DurableRunStore) -> None:
    record = new_record(inputs=[{"v": 1}, {"v": 2}])
    store.created(record)
    record.record_event("run_started")
    finish(record, 3)
    await store.written(record)
    [listed] = await store.list(RunQuery(status="completed"))
    assert listed.run_id == record.run_id and listed.item_counts()["completed"] == 2
    again = await store.get(record.run_id)
    assert again is not None and again.item_outcomes == [3, 3] and again.finished
    assert await after_a_restart(database_url) == []
    assert await store.list(RunQuery(status="running")) == []
    assert await store.delete(record.run_id) and await store.get(record.run_id) is None


@pytest.mark.anyio
async def test_listing_is_newest_first_and_paged(store: DurableRunStore) -> None:
    records = [new_record() for _ in range(5)]
    for offset, record in enumerate(records):
        record.created_ns += offset
        store.created(record)
        record.record_event("run_started")
    await asyncio.gather(*(store.written(record) for record in records))
    page = await store.list(RunQuery(limit=2, offset=1))
    assert [record.run_id for record in page] == [records[3].run_id, records[2].run_id]


@pytest.mark.anyio
async def test_a_submitted_run_is_found_by_its_key(store: DurableRunStore) -> None:
    record = new_record(submit_key="parent/0/step/0")
    store.created(record)
    await store.written(record)
    found = await store.submitted_as("parent/0/step/0")
    assert found is not None and found.run_id == record.run_id
    assert await store.submitted_as("parent/0/step/1") is None


@pytest.mark.anyio
async def test_retention_keeps_the_newest_finished_runs(database_url: str) -> None:
    store = DurableRunStore(backend_for(database_url), "runtime-a", max_runs=3, max_age_seconds=3600)
    await store.open()
    try:
        records = [new_record() for _ in range(6)]
        for offset, record in enumerate(records):
            store.created(record)
            finish(record, offset)
            record.completed_ns = record.created_ns + offset
        await asyncio.gather(*(store.written(record) for record in records))
        assert await store.backend.evict(3, 0) == 3
        assert (await store.backend.sizes())[0] == 3
        kept = {record.run_id for record in await store.list(RunQuery())}
        assert kept == {record.run_id for record in records[3:]}
    finally:
        await store.close()


@pytest.mark.anyio
async def test_a_run_whose_journal_cannot_be_decoded_ends_failed_and_the_others_recover(database_url: str, store: DurableRunStore) -> None:
    broken, healthy = new_record(), new_record()
    for record in (broken, healthy):
        store.created(record)
        record.record_event("run_started")
        record.record_event("step_succeeded", item_index=0, step_id="a", error={"code": 1, "message": "m"}, outcome=1)
    await store.written(broken)
    await store.written(healthy)
    await corrupt_journal(database_url, broken.run_id)
    found = await after_a_restart(database_url)
    assert [record.run_id for record in found if isinstance(record, RunRecord)] == [healthy.run_id]
    [problem] = [item for item in found if isinstance(item, CorruptRun)]
    assert broken.run_id in str(problem) and "cannot be decoded" in str(problem)
    shown = await store.get(broken.run_id)
    assert shown is not None and shown.status == "failed"
    assert "cannot be decoded" in shown.events()[-1].error["message"]  # type: ignore[index]
    assert [record.run_id for record in await after_a_restart(database_url)] == [healthy.run_id], "ended: not offered again"  # type: ignore[union-attr]


async def corrupt_journal(database_url: str, run_id: str) -> None:
    if database_url.startswith("sqlite:"):
        with sqlite3.connect(database_url.removeprefix("sqlite:").split("?")[0]) as db:
            db.execute("UPDATE journal SET detail = x'7b7b6e6f' WHERE run_id = ?", (run_id,))
        return
    import asyncpg

    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("UPDATE journal SET detail = '\\x7b7b6e6f'::bytea WHERE run_id = $1", run_id)
    finally:
        await connection.close()


@pytest.mark.anyio
async def test_migrations_apply_once_and_a_newer_schema_is_refused(database_url: str) -> None:
    for _ in range(2):
        backend = backend_for(database_url)
        await backend.open()
        await backend.close()
    await _bump_version(database_url)
    with pytest.raises(StoreUnavailable, match="newer than this runtime knows"):
        await backend_for(database_url).open()


async def _bump_version(database_url: str) -> None:
    if database_url.startswith("sqlite:"):
        with sqlite3.connect(database_url.removeprefix("sqlite:").split("?")[0]) as db:
            db.execute("INSERT INTO schema_version VALUES (99, 0)")
        return
    import asyncpg

    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("INSERT INTO schema_version VALUES (99, 0)")
    finally:
        await connection.close()


@pytest.mark.anyio
async def test_without_auto_migrate_an_empty_database_is_refused_with_the_way_out(database_url: str) -> None:
    with pytest.raises(StoreUnavailable, match="autoMigrate: true"):
        await backend_for(database_url, auto_migrate=False).open()


@pytest.mark.anyio
async def test_a_runtime_reads_its_finished_runs_back_after_a_restart(database_url: str, tmp_path: Path) -> None:
    config = {"plugins": {"builtin": {"type": "builtin"}}, "routes": {"/{*component}": [{"plugin": "builtin"}]}, "storageConfig": {"databaseUrl": database_url}}
    flow = {"name": "keep", "steps": [{"id": "m", "component": "/create_messages", "input": {"user_prompt": {"$input": "q"}}}], "output": {"$step": "m"}}
    first = Runtime(settings_from_data(config, tmp_path), "runtime-a")
    await first.start()
    await first.connected()
    prepared = first.flows.prepare(flow)
    await first.flows.store(prepared)
    record = await first.wait(first.submit(prepared, [{"q": "hi"}, {"q": "there"}]))
    await first.close()
    second = Runtime(settings_from_data(config, tmp_path), "runtime-a")
    await second.start()
    await second.connected()
    try:
        again = await second.get_run(record.run_id)
        assert again is not None and again.status == "completed" and again.item_outcomes == record.item_outcomes
        assert [event.kind for event in again.events()] == [event.kind for event in record.events()]
        assert await second.flows.get(prepared.flow_id) is not None
        assert second.recovered == 0
    finally:
        await second.close()


@pytest.mark.anyio
async def test_a_commit_keeps_every_value_exactly(database_url: str) -> None:
    """Rows read back equal to the rows committed, whatever they hold: bytes of every value,
    text with quotes, backslashes and non-ASCII, nulls in every optional column, int64 limits."""
    every_byte = bytes(range(256))
    awkward = 'a "quoted" \\ back\\slash, é, 漢字, 🙂'
    created = RunRow("run-1", 2**63 - 1, "running", "f" * 64, awkward, "run-1", None, "runtime-a", None, every_byte)
    ended_at_once = RunRow("run-2", 1, "running", "f" * 64, None, "run-1", "run-1", "runtime-a", "key " + awkward, b"")
    entries = [
        JournalRow("run-1", 0, 2**62, "run_started", None, None, None, None, None, None),
        JournalRow("run-1", 1, 5, "step_completed", 0, awkward, 2**31 - 1, "completed", "pod-" + awkward, every_byte),
        JournalRow("run-2", 0, 6, "run_completed", None, None, None, "completed", None, b"{}"),
    ]
    backend = backend_for(database_url)
    await backend.open()
    try:
        ended = RunEnd("failed", 8, b"", "run-2")
        await backend.commit(Batch(runs=[created, ended_at_once], entries=entries, ends=[ended], blobs=[("blob-1", "data", every_byte)]))
        await backend.commit(Batch(ends=[RunEnd("completed", 7, every_byte, "run-1")]))
        first, second = await backend.run("run-1"), await backend.run("run-2")
        assert first == (created._replace(status="completed", completed_ns=7, counts=every_byte), entries[:2])
        assert second == (ended_at_once._replace(status="failed", completed_ns=8, counts=b""), entries[2:])
        assert await backend.blob("blob-1") == (every_byte, "data")
    finally:
        await backend.close()


@pytest.mark.parametrize(
    ("runs", "analyzed_at", "due"),
    [(100, 0, False), (256, 0, True), (511, 256, False), (512, 256, True), (1_000_000, 400_000, True), (2_000_000, 900_000, False)],
)
def test_statistics_are_refreshed_each_time_the_tables_double_until_autovacuum_suffices(runs: int, analyzed_at: int, due: bool) -> None:
    assert statistics_due(runs, analyzed_at) is due


@pytest.mark.anyio
async def test_a_growing_store_has_its_tables_analyzed_so_commits_use_the_indexes(postgres: Any) -> None:
    """Plans cached while ``runs`` was empty seq-scan it on every commit until statistics exist:
    the retention pass analyzes the tables once they have grown (here past 256 runs)."""
    url = postgres.create_database()
    opened = DurableRunStore(backend_for(url), "runtime-a", max_runs=1000, max_age_seconds=3600)
    await opened.open()
    try:
        records = [new_record() for _ in range(300)]
        for record in records:
            opened.created(record)
        await asyncio.gather(*(opened.written(record) for record in records))
        await opened.backend.evict(1000, 0)
        connection = await asyncpg.connect(url)
        try:
            analyzed = await connection.fetchval("SELECT analyze_count + autoanalyze_count FROM pg_stat_user_tables WHERE relname = 'runs'")
        finally:
            await connection.close()
        assert analyzed >= 1
    finally:
        await opened.close()


@pytest.mark.anyio
async def test_each_replica_counts_in_a_share_of_its_own_and_the_old_row_still_counts(postgres: Any) -> None:
    """Two replicas' commits do not queue on one counter row; what a replica on the previous schema
    counts in ``store_sizes`` (during a rolling update) is still part of the store's size."""
    url = postgres.create_database()
    first, second = backend_for(url), backend_for(url)
    await first.open()
    await second.open()
    try:
        epochs = [await backend.acquire_lease(owner, 60_000) for backend, owner in ((first, "replica-a"), (second, "replica-b"))]
        for backend, owner, epoch, run_id in ((first, "replica-a", epochs[0], "run-a"), (second, "replica-b", epochs[1], "run-b")):
            row = RunRow(run_id, 1, "running", "f" * 64, None, run_id, None, owner, None, b"{}", owner_epoch=epoch)
            await backend.commit(Batch(runs=[row], blobs=[(f"blob-{run_id}", "data", b"12345")], fence=(owner, epoch)))
        connection = await asyncpg.connect(url)
        try:
            shares = await connection.fetch("SELECT owner, runs, blobs, blob_bytes FROM store_size_shares ORDER BY owner")
            await connection.execute("UPDATE store_sizes SET runs = runs + 5")  # a replica still on schema 2
        finally:
            await connection.close()
        assert [tuple(share) for share in shares] == [("replica-a", 1, 1, 5), ("replica-b", 1, 1, 5)]
        sizes = await first.sizes()
        assert sizes == (7, 2, 10) and all(type(size) is int for size in sizes), sizes
        assert await second.delete_run("run-a") and await second.delete_blob("blob-run-a")
        assert await first.sizes() == (6, 1, 5)
    finally:
        await first.close()
        await second.close()


@pytest.mark.anyio
async def test_a_run_the_database_refuses_fails_alone_and_the_others_are_written(postgres: Any) -> None:
    """A run whose rows PostgreSQL refuses (here a NUL in its flow's name, which the API's validation
    would have stopped) sharing a group commit with others: they are written, waiting for it says why."""
    url = postgres.create_database()
    opened = DurableRunStore(backend_for(url), "runtime-a", max_runs=1000, max_age_seconds=3600)
    await opened.open()
    try:
        good, bad, also_good = new_record(), new_record(), new_record()
        bad.flow_name = "demo\x00"
        for record in (good, bad, also_good):
            opened.created(record)
        outcomes = await asyncio.gather(*(opened.written(record) for record in (good, bad, also_good)), return_exceptions=True)
        assert outcomes[0] is None and outcomes[2] is None, outcomes
        assert isinstance(outcomes[1], RunRefused) and "refused this run's data" in str(outcomes[1]) and "\\u0000" in str(outcomes[1])
        later = new_record()
        opened.created(later)
        bad.record_event("run_completed", status="failed")  # what it journals afterwards is not written either
        await opened.written(later)
        with pytest.raises(RunRefused):
            await opened.written(bad)
        assert [await opened.backend.run(record.run_id) is not None for record in (good, bad, also_good, later)] == [True, False, True, True]
    finally:
        await opened.close()
