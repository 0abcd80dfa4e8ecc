"""The durable store on PostgreSQL, through asyncpg and a connection pool.

asyncpg was chosen by measurement (docs/decisions.md, "Durable store: asyncpg"). A group
commit is one statement (``_COMMIT``) over one JSON document of its rows; the runs it ended are
announced to every replica afterwards (``_ANNOUNCE``). Migrations run at start under
an advisory lock, so two runtimes starting at once apply each migration once. Errors are
described without the password (``database_url.redact``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
import msgspec

from runtime_server.runs import end_announcements
from runtime_server.runs.clock import now_ns
from runtime_server.runs.database_url import redact
from runtime_server.runs.durable_store import StoreUnavailable
from runtime_server.runs.rows import RUN_COLUMNS as _RUN_COLUMNS
from runtime_server.runs.rows import Batch, JournalRow, RunEnd, RunRow, RunsLost
from runtime_server.runs.schema import VERSION_TABLE, SchemaError, pending
from runtime_server.runs.store import RunQuery
from telemetry.logs import log_event

logger = logging.getLogger(__name__)
MIGRATION_LOCK = 0x5354_4550  # "STEP": the advisory lock key the runtimes agree on
EVICT_CHUNK = 10_000
CONNECT_TIMEOUT_SECONDS = 5.0
NOW_MS = "(extract(epoch from clock_timestamp()) * 1000)::bigint"
"""The database's clock: every replica's lease is judged by the same clock, whatever the nodes' own say."""
STATISTICS_FROM, STATISTICS_UNTIL = 256, 1_000_000
FORGET_DEAD_AFTER_MS = 3_600_000
"""A dead replica's lease row, with no runs left, is deleted after an hour (pod names come and go)."""
ANNOUNCE_EVERY = 0.02
"""Seconds between announcements of run ends: one statement and one notification per replica for
all ends of that time, instead of one per group commit (a remote waiter hears an end up to this
much later; the runtime's own waiters are woken at once)."""
ENDED_CHANNEL, CANCEL_CHANNEL = "stepflow_run_ended", "stepflow_run_cancel"
_FILTERS = (("status", "status"), ("flow_name", "flow_name"), ("root_run_id", "root_run_id"), ("parent_run_id", "parent_run_id"))
_COMMIT = f"""
WITH locked AS (
    SELECT run_id, owner, owner_epoch FROM runs WHERE run_id = ANY($1::text[]) FOR SHARE
), fence AS (
    SELECT array_agg(run_id) FILTER (WHERE owner = $2 AND owner_epoch = $3) AS held FROM locked
), go AS (
    SELECT cardinality(coalesce(held, '{{}}')) = cardinality($1::text[]) AS ok FROM fence
), new_blobs AS (
    INSERT INTO blobs SELECT r->>0, r->>1, decode(r->>2, 'base64') FROM jsonb_array_elements($4::jsonb -> 'blobs') r WHERE (SELECT ok FROM go)
    ON CONFLICT (blob_id) DO UPDATE SET blob_type = 'flow' WHERE blobs.blob_type != 'flow' AND excluded.blob_type = 'flow'
    RETURNING (xmax = 0) AS inserted, length(body) AS size
), new_runs AS (
    INSERT INTO runs ({_RUN_COLUMNS})
    SELECT r->>0, (r->>1)::bigint, r->>2, r->>3, r->>4, r->>5, r->>6, r->>7, r->>8, decode(r->>9, 'base64'),
           (r->>10)::bigint, decode(r->>11, 'base64'), (r->>12)::bigint
    FROM jsonb_array_elements($4::jsonb -> 'runs') r
    WHERE (SELECT ok FROM go) ON CONFLICT (run_id) DO NOTHING RETURNING 1
), sizes AS (
    INSERT INTO store_size_shares
    SELECT $2, added.runs, added.blobs, added.blob_bytes FROM (
        SELECT (SELECT count(*) FROM new_runs) AS runs, (SELECT count(*) FROM new_blobs WHERE inserted) AS blobs,
               (SELECT coalesce(sum(size), 0) FROM new_blobs WHERE inserted) AS blob_bytes) added
    WHERE (SELECT ok FROM go) AND (added.runs > 0 OR added.blobs > 0)
    ON CONFLICT (owner) DO UPDATE SET runs = store_size_shares.runs + excluded.runs, blobs = store_size_shares.blobs + excluded.blobs,
        blob_bytes = store_size_shares.blob_bytes + excluded.blob_bytes
), entries AS (
    INSERT INTO journal
    SELECT r->>0, (r->>1)::int, (r->>2)::bigint, r->>3, (r->>4)::int, r->>5, (r->>6)::int, r->>7, r->>8, decode(r->>9, 'base64')
    FROM jsonb_array_elements($4::jsonb -> 'entries') r
    WHERE (SELECT ok FROM go) ON CONFLICT (run_id, seq) DO NOTHING
), ended AS (
    UPDATE runs SET status = e->>0, completed_ns = (e->>1)::bigint, counts = decode(e->>2, 'base64')
    FROM jsonb_array_elements($4::jsonb -> 'ends') e
    WHERE runs.run_id = ANY($5::text[]) AND runs.run_id = e->>3 AND (SELECT ok FROM go)
)
SELECT (SELECT ok FROM go), (SELECT held FROM fence)
"""
"""One group commit as one statement. The rows come as one JSON document (``_BatchDocument``): asyncpg
encodes array parameters element by element, 0.5-1 µs each, where msgspec writes the document
in one call and PostgreSQL takes it apart faster than it unpacks arrays (docs/decisions.md,
"One JSON document per group commit"). Its parts run on one snapshot and do not see each other's
rows, so a run created and ended in the same batch is inserted ended (``_with_ends_folded_in``).
The ends are announced afterwards (``_ANNOUNCE``), not inside: PostgreSQL serializes every
transaction that notifies until its commit is flushed, which would serialize all commits.
The runs it ends are also named in a small array ($5), so the planner finds them through the
primary key (joined to the document's 100-row estimate it would hash-join a scan of ``runs``).
The fence locks every existing run the batch writes to (FOR SHARE): a peer's claim of one of
them waits for this statement, or made it see the new owner and write nothing."""


_ANNOUNCE = f"SELECT count(pg_notify('{ENDED_CHANNEL}', payload)) FROM unnest($1::text[]) AS payload"
"""Runs' ends, told to every replica (``listen``) once they are committed, many to a notification
(``end_announcements``): in a transaction of its own that writes nothing, so it holds the notify
lock for microseconds, not for a WAL flush."""

_LASTING = (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidCatalogNameError, SchemaError, ValueError)
"""Errors that waiting does not cure: wrong password or user, no such database, a newer schema, a malformed URL."""


class PostgresBackend:
    name = "postgres"

    def __init__(self, database_url: str, auto_migrate: bool = True, pool_size: int = 8) -> None:
        self._url = database_url
        self._auto_migrate = auto_migrate
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._announcing: asyncio.Task[None] | None = None
        self._unannounced: list[str] = []
        self._announced_at = float("-inf")
        """Loop time of the last announcement."""
        self._statistics_for = 0
        """The run count when this runtime last had the tables analyzed (``statistics_due``)."""

    @property
    def _db(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable("the PostgreSQL store is not open")
        return self._pool

    async def open(self) -> None:
        try:
            pool = await asyncpg.create_pool(
                self._url, min_size=1, max_size=self._pool_size, timeout=CONNECT_TIMEOUT_SECONDS, command_timeout=30, reset=_keep_session
            )
            async with pool.acquire() as connection:
                await self._migrate(connection)
        except _LASTING as error:
            raise StoreUnavailable(self.describe(error), lasting=True) from None
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise StoreUnavailable(self.describe(error)) from None
        self._pool = pool

    async def _migrate(self, connection: Any) -> None:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        try:
            await connection.execute(VERSION_TABLE)
            current = await connection.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            for number, statements in pending("postgres", current, self._auto_migrate):
                async with connection.transaction():
                    for statement in statements:
                        await connection.execute(statement)
                    await connection.execute("INSERT INTO schema_version VALUES ($1, $2)", number, now_ns())
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)

    async def close(self) -> None:
        if self._announcing is not None:  # the last ends are told before the pool goes
            await asyncio.wait([self._announcing], timeout=1.0)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 5.0)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()

    async def commit(self, batch: Batch) -> None:
        """The whole batch in one statement, so one round trip (``_COMMIT``: the fence, blobs, runs,
        entries, ends and their NOTIFY); refused whole, with RunsLost, if the fence does not hold."""
        owner, epoch = batch.fence or ("", 0)
        check = sorted(batch.existing_run_ids()) if batch.fence is not None else []
        runs, ends = _with_ends_folded_in(batch)
        document = _BatchDocument(_unique_blobs(batch.blobs), runs, batch.entries, ends)
        ended = [end.run_id for end in ends]
        ok, held = await self._db.fetchrow(_COMMIT, check, owner, epoch, _encoder.encode(document).decode(), ended)
        if not ok:
            raise RunsLost(set(check) - set(held or ()))
        if batch.ends:
            self._announce([end.run_id for end in batch.ends])

    def _announce(self, run_ids: list[str]) -> None:
        """Not awaited by the runs' waiters (a replica that misses it reads the end on its next
        check); one announcement in flight at a time, at most one per ``ANNOUNCE_EVERY``, carrying
        every end committed meanwhile."""
        self._unannounced.extend(run_ids)
        if self._announcing is None or self._announcing.done():
            self._announcing = asyncio.create_task(self._announce_all(), name="announce-run-ends")

    async def _announce_all(self) -> None:
        loop = asyncio.get_running_loop()
        while self._unannounced:
            if (wait := self._announced_at + ANNOUNCE_EVERY - loop.time()) > 0:
                await asyncio.sleep(wait)
            run_ids, self._unannounced, self._announced_at = self._unannounced, [], loop.time()
            try:
                await self._db.execute(_ANNOUNCE, end_announcements.payloads(run_ids))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, StoreUnavailable) as error:
                log_event(logger, "run_ends_not_announced", logging.WARNING, runs=len(run_ids), error=self.describe(error))

    async def run(self, run_id: str) -> tuple[RunRow, list[JournalRow]] | None:
        async with self._db.acquire() as connection:
            row = await connection.fetchrow(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = $1", run_id)
            if row is None:
                return None
            entries = await connection.fetch("SELECT * FROM journal WHERE run_id = $1 ORDER BY seq", run_id)
        return RunRow(*row), [JournalRow(*entry) for entry in entries]

    async def runs(self, query: RunQuery) -> list[RunRow]:
        clauses, values = [], []
        for attribute, column in _FILTERS:
            value = getattr(query, attribute)
            if value is not None:
                values.append(value)
                clauses.append(f"{column} = ${len(values)}")
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        sql = f"SELECT {_RUN_COLUMNS} FROM runs{where} ORDER BY created_ns DESC LIMIT ${len(values) + 1} OFFSET ${len(values) + 2}"
        return [RunRow(*row) for row in await self._db.fetch(sql, *values, query.limit, query.offset)]

    async def run_id_submitted_as(self, submit_key: str) -> str | None:
        return await self._db.fetchval("SELECT run_id FROM runs WHERE submit_key = $1", submit_key)

    async def delete_run(self, run_id: str) -> bool:
        async with self._db.acquire() as connection, connection.transaction():
            return await _delete_runs(connection, [run_id]) > 0

    async def blob(self, blob_id: str) -> tuple[bytes, str] | None:
        row = await self._db.fetchrow("SELECT body, blob_type FROM blobs WHERE blob_id = $1", blob_id)
        return None if row is None else (bytes(row[0]), row[1])

    async def delete_blob(self, blob_id: str) -> bool:
        async with self._db.acquire() as connection, connection.transaction():
            size = await connection.fetchval("DELETE FROM blobs WHERE blob_id = $1 RETURNING LENGTH(body)", blob_id)
            if size is not None:
                await _count(connection, 0, -1, -size)
            return size is not None

    async def evict(self, max_runs: int, finished_before_ns: int) -> int:
        """Retention, and the planner's statistics while the tables grow (``statistics_due``)."""
        async with self._db.acquire() as connection:
            async with connection.transaction():
                aged = await connection.fetch(
                    "SELECT run_id FROM runs WHERE status != 'running' AND completed_ns < $1 ORDER BY completed_ns LIMIT $2", finished_before_ns, EVICT_CHUNK
                )
                evicted = await _delete_runs(connection, [row[0] for row in aged])
                kept = (await connection.fetchrow(_SIZES))[0]
                excess = min(kept - max_runs, EVICT_CHUNK)
                if excess > 0:
                    oldest = await connection.fetch("SELECT run_id FROM runs WHERE status != 'running' ORDER BY completed_ns LIMIT $1", excess)
                    evicted += await _delete_runs(connection, [row[0] for row in oldest])
            if statistics_due(kept, self._statistics_for):
                await connection.execute("ANALYZE runs, journal")
                self._statistics_for = kept
            return evicted

    # -- leases (docs/durable-runs.md, "Replicas") -------------------------------------------

    async def acquire_lease(self, owner: str, ttl_ms: int) -> int:
        return int(
            await self._db.fetchval(
                f"""INSERT INTO leases VALUES ($1, nextval('lease_epochs'), {NOW_MS} + $2) ON CONFLICT (orchestrator_id)
                DO UPDATE SET epoch = nextval('lease_epochs'), expires_at_ms = {NOW_MS} + $2 RETURNING epoch""",
                owner,
                ttl_ms,
            )
        )

    async def renew_lease(self, owner: str, epoch: int, ttl_ms: int) -> bool:
        sql = f"UPDATE leases SET expires_at_ms = {NOW_MS} + $3 WHERE orchestrator_id = $1 AND epoch = $2 AND expires_at_ms > {NOW_MS} RETURNING 1"
        return await self._db.fetchval(sql, owner, epoch, ttl_ms) is not None

    async def release_lease(self, owner: str, epoch: int) -> None:
        await self._db.execute("UPDATE leases SET expires_at_ms = 0 WHERE orchestrator_id = $1 AND epoch = $2", owner, epoch)

    async def expired_owners(self, owner: str) -> list[str]:
        rows = await self._db.fetch(f"SELECT orchestrator_id FROM leases WHERE expires_at_ms <= {NOW_MS} AND orchestrator_id <> $1", owner)
        return [row[0] for row in rows]

    async def claim_runs(self, previous: str, owner: str, epoch: int, limit: int) -> list[tuple[str, bool]]:
        """Take up to ``limit`` unfinished runs of ``previous`` (its lease expired, or it is us at an
        older epoch); a peer whose lease is gone and who has no runs left loses its lease row."""
        async with self._db.acquire() as connection, connection.transaction():
            if previous != owner and not await connection.fetchval(
                f"SELECT 1 FROM leases WHERE orchestrator_id = $1 AND expires_at_ms <= {NOW_MS} FOR UPDATE", previous
            ):
                return []  # it renewed meanwhile: its runs stay its own
            rows = await connection.fetch(
                """UPDATE runs SET owner = $2, owner_epoch = $3 WHERE run_id IN (
                       SELECT run_id FROM runs WHERE owner = $1 AND status = 'running' AND NOT (owner = $2 AND owner_epoch = $3)
                       ORDER BY created_ns LIMIT $4 FOR UPDATE SKIP LOCKED)
                   RETURNING run_id, cancel_requested""",
                previous,
                owner,
                epoch,
                limit,
            )
            if previous != owner and len(rows) < limit:  # nothing left of it: forget it once it has been gone a while
                await connection.execute(
                    f"""DELETE FROM leases WHERE orchestrator_id = $1 AND expires_at_ms < {NOW_MS} - $2
                        AND NOT EXISTS (SELECT 1 FROM runs WHERE owner = $1 AND status = 'running')""",
                    previous,
                    FORGET_DEAD_AFTER_MS,
                )
        return [(row[0], bool(row[1])) for row in rows]

    async def request_cancel(self, run_id: str) -> bool:
        async with self._db.acquire() as connection, connection.transaction():
            owner = await connection.fetchval("UPDATE runs SET cancel_requested = TRUE WHERE run_id = $1 AND status = 'running' RETURNING owner", run_id)
            if owner is not None:
                await connection.execute(f"SELECT pg_notify('{CANCEL_CHANNEL}', $1)", run_id)
        return owner is not None

    async def cancels_requested(self, run_ids: list[str]) -> list[str]:
        rows = await self._db.fetch("SELECT run_id FROM runs WHERE run_id = ANY($1::text[]) AND cancel_requested AND status = 'running'", run_ids)
        return [row[0] for row in rows]

    async def listen(self, on_ended: Callable[[str], None], on_cancel: Callable[[str], None]) -> Any:
        """A connection of its own that hears runs end and cancels asked of us; the caller closes it."""
        connection = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT_SECONDS)
        await connection.add_listener(ENDED_CHANNEL, lambda _c, _p, _ch, payload: _each(on_ended, end_announcements.run_ids_of(payload)))
        await connection.add_listener(CANCEL_CHANNEL, lambda _c, _p, _ch, payload: on_cancel(payload))
        return connection

    async def sizes(self) -> tuple[int, int, int]:
        row = await self._db.fetchrow(_SIZES)
        return row[0], row[1], row[2]

    def refuses(self, error: BaseException) -> bool:
        return isinstance(error, (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError))

    def describe(self, error: BaseException) -> str:
        return redact(f"PostgreSQL store {self._url}: {type(error).__name__}: {error}", self._url)


_SIZES = """SELECT (s.runs + coalesce(sum(share.runs), 0))::bigint, (s.blobs + coalesce(sum(share.blobs), 0))::bigint,
       (s.blob_bytes + coalesce(sum(share.blob_bytes), 0))::bigint
FROM store_sizes s LEFT JOIN store_size_shares share ON TRUE GROUP BY s.runs, s.blobs, s.blob_bytes"""
"""The store's size: the old single row plus every replica's share (schema.py, migration 3)."""


async def _count(connection: Any, runs: int, blobs: int, blob_bytes: int) -> None:
    """Deletions are counted in the share of no replica (``''``): rare, so nobody waits on that row."""
    await connection.execute(
        """INSERT INTO store_size_shares VALUES ('', $1, $2, $3) ON CONFLICT (owner) DO UPDATE SET runs = store_size_shares.runs + $1,
           blobs = store_size_shares.blobs + $2, blob_bytes = store_size_shares.blob_bytes + $3""",
        runs,
        blobs,
        blob_bytes,
    )


def statistics_due(runs: int, analyzed_at: int) -> bool:
    """Whether to ANALYZE the tables now: each time they have doubled, from a few hundred runs up to
    a million (autovacuum analyzes after a minute and 10% growth; until then the planner, and every
    plan cached while the tables were empty, would go on seq-scanning ``runs`` on every commit)."""
    return STATISTICS_FROM <= runs <= STATISTICS_UNTIL and runs >= 2 * analyzed_at


async def _keep_session(connection: Any) -> None:
    """No reset when a connection goes back to the pool (asyncpg's default costs a round trip per use,
    1.7-2.5x on reads: docs/benchmarks.md): nothing here leaves session state behind (the migration lock
    is released explicitly, listeners have a connection of their own)."""


class _BatchDocument(msgspec.Struct):
    """A batch as ``_COMMIT`` reads it: every row a JSON array in its table's column order, bytes in base64."""

    blobs: list[tuple[str, str, bytes]]
    runs: list[RunRow]
    entries: list[JournalRow]
    ends: list[RunEnd]


_encoder = msgspec.json.Encoder()


def _with_ends_folded_in(batch: Batch) -> tuple[list[RunRow], list[RunEnd]]:
    """A run created in this batch and ended in it too is written ended, once."""
    ends = {end.run_id: end for end in batch.ends}
    runs = []
    for row in batch.runs:
        end = ends.pop(row.run_id, None)
        runs.append(row if end is None else row._replace(status=end.status, completed_ns=end.completed_ns, counts=end.counts))
    return runs, list(ends.values())


def _unique_blobs(blobs: list[tuple[str, str, bytes]]) -> list[tuple[str, str, bytes]]:
    """One row per blob id (an upsert may not touch a row twice in one statement); a flow wins."""
    unique: dict[str, tuple[str, str, bytes]] = {}
    for blob in blobs:
        if blob[0] not in unique or blob[1] == "flow":
            unique[blob[0]] = blob
    return list(unique.values())


async def _delete_runs(connection: Any, run_ids: list[str]) -> int:
    if not run_ids:
        return 0
    deleted = await connection.fetch("DELETE FROM runs WHERE run_id = ANY($1::text[]) RETURNING run_id", run_ids)
    await connection.execute("DELETE FROM journal WHERE run_id = ANY($1::text[])", [row[0] for row in deleted])
    await _count(connection, -len(deleted), 0, 0)
    return len(deleted)


def _each(heard: Callable[[str], None], run_ids: list[str]) -> None:
    for run_id in run_ids:
        heard(run_id)
