"""Group commit: journal entries of every run written together, one transaction at a time.

Runs mark themselves dirty as they journal (``RunRecord.sink``); the writer takes everything
dirty, writes it in one transaction, and wakes whoever waits for any of it. While one commit
is in progress the next batch gathers, so under load a commit carries the entries of many
runs and durability costs one round trip per batch instead of one per entry.

A failed commit is kept and tried again (backoff up to 2 s) until the database takes it:
nothing journaled is dropped, and runs waiting for durability wait. ``problem`` says why,
for the health endpoint. A batch the database refuses for its data (``refuses``: waiting
cannot cure it) is written again run by run, so only the runs whose rows are refused stop
being written; waiting for them raises ``RunRefused`` with the database's reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from runtime_server import metrics
from runtime_server.retry import Backoff
from runtime_server.runs.record import RunRecord
from runtime_server.runs.rows import Batch, RunRefused, RunsLost, journal_rows, run_end, run_row
from telemetry.logs import log_event

logger = logging.getLogger(__name__)
Commit = Callable[[Batch], Awaitable[None]]
COMMIT_BACKOFF = Backoff(first=0.05, factor=2.0, longest=2.0)


class _Commit:
    """One batch's commit, as those waiting for it see it: each waiter gets a future of its own,
    so a waiter cancelled (a cancelled run, a callback's stream gone) cancels only itself, and
    waiting costs a future, not ``asyncio.shield``'s two callbacks."""

    __slots__ = ("done", "_waiters")

    def __init__(self) -> None:
        self.done = False
        self._waiters: list[asyncio.Future[None]] = []

    def wait(self) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.done:
            waiter.set_result(None)
        else:
            self._waiters.append(waiter)
        return waiter

    def finish(self) -> None:
        self.done = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class GroupCommitWriter:
    def __init__(
        self,
        commit: Commit,
        owner: str,
        describe_error: Callable[[BaseException], str] = str,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        refuses: Callable[[BaseException], bool] = lambda error: False,
    ) -> None:
        self._commit = commit
        self._refuses = refuses
        self._refused: dict[str, str] = {}
        """Runs whose rows the database refused, with its reason."""
        self._owner = owner
        self._describe = describe_error
        self._sleep = sleep
        self._written: dict[str, int] = {}
        """Journal entries already taken into a batch, per live run (absent: its row is not written yet)."""
        self._dirty: dict[str, RunRecord] = {}
        self._blobs: list[tuple[str, str, bytes]] = []
        self._pending: _Commit | None = None
        """The commit of the batch now gathering."""
        self._batch_of: dict[str, _Commit] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.problem: str | None = None
        self.fence: tuple[str, int] | None = None
        """(owner, epoch): written into every batch, so a replica that lost a run cannot write to it."""
        self.on_lost: Callable[[set[str]], None] = lambda run_ids: None
        """Told of runs a commit found taken over by another replica; their entries are dropped."""
        self._lost: set[str] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-commit")

    async def close(self) -> None:
        """Commit what is gathered (bounded), then stop."""
        if self._task is None:
            return
        if self._dirty or self._blobs:
            try:
                await asyncio.wait_for(self._gathering().wait(), 5.0)
            except TimeoutError:
                log_event(logger, "journal_not_flushed", logging.ERROR, runs=len(self._dirty), problem=self.problem)
        self._task.cancel()

    def adopt(self, record: RunRecord) -> None:
        """A run read back from the database (recovery): its row and entries are written already."""
        self._written[record.run_id] = len(record.journal)
        record.sink = self.mark

    def track(self, record: RunRecord) -> None:
        """A new run: its row goes into the next batch with its first entries."""
        record.sink = self.mark
        self.mark(record)

    def mark(self, record: RunRecord) -> None:
        if record.run_id not in self._dirty:
            self._dirty[record.run_id] = record
            self._batch_of[record.run_id] = self._gathering()
            self._wake.set()

    def put_blob(self, blob_id: str, blob_type: str, body: bytes) -> asyncio.Future[None]:
        self._blobs.append((blob_id, blob_type, body))
        self._wake.set()
        return self._gathering().wait()

    async def written(self, record: RunRecord) -> None:
        """Returns once every entry the record has now is committed; raises RunsLost when the run
        is another replica's now (nothing of it was written)."""
        batch = self._batch_of.get(record.run_id)
        if batch is not None and not batch.done:
            await batch.wait()
        if record.run_id in self._refused:
            raise RunRefused(f"the durable store refused this run's data: {self._refused[record.run_id]}")
        if record.run_id in self._lost:
            raise RunsLost({record.run_id})

    def forget(self, run_id: str) -> None:
        """A run this runtime stopped working on (lost, or dropped with its lease)."""
        self._lost.discard(run_id)
        self._refused.pop(run_id, None)
        self._written.pop(run_id, None)
        self._dirty.pop(run_id, None)

    def _gathering(self) -> _Commit:
        if self._pending is None:
            self._pending = _Commit()
        return self._pending

    def _take(self) -> tuple[Batch, _Commit | None]:
        batch = Batch(blobs=self._blobs, fence=self.fence)
        epoch = self.fence[1] if self.fence is not None else 0
        for run_id, record in self._dirty.items():
            if run_id in self._lost:
                continue
            start = self._written.get(run_id)
            if start is None:
                batch.runs.append(run_row(record, self._owner, epoch))
                start = 0
            batch.entries.extend(journal_rows(record, start))
            if record.journal_complete:
                batch.ends.append(run_end(record))
                self._written.pop(run_id, None)
            else:
                self._written[run_id] = len(record.journal)
        self._dirty, self._blobs = {}, []
        done, self._pending = self._pending, None
        return batch, done

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, done = self._take()
            if batch:
                await self._commit_until_taken(batch)
            if done is not None:
                done.finish()
            self._forget_done_batches()

    async def _commit_until_taken(self, batch: Batch) -> None:
        failures = 0
        while True:
            started = time.perf_counter()
            try:
                await self._commit(batch)
            except asyncio.CancelledError:
                raise
            except RunsLost as lost:  # another replica holds these runs now: write the rest, stop these
                self._lost |= lost.run_ids
                for run_id in lost.run_ids:
                    self._written.pop(run_id, None)
                batch = batch.without(lost.run_ids)
                log_event(logger, "runs_lost", logging.WARNING, runs=sorted(lost.run_ids), owner=self._owner)
                self.on_lost(lost.run_ids)
                if not batch:
                    return
                continue
            except Exception as error:  # noqa: BLE001 - the database is away, full or refusing: keep the batch, try again
                if self._refuses(error) and batch.run_ids():
                    await self._commit_apart(batch, self._describe(error))
                    return
                failures += 1
                self.problem = self._describe(error)
                metrics.JOURNAL_COMMIT_FAILURES.inc()
                log_event(
                    logger,
                    "journal_commit_failed",
                    logging.WARNING if failures > 1 else logging.ERROR,
                    error=self.problem,
                    retry=failures,
                    entries=len(batch.entries),
                )
                await self._sleep(COMMIT_BACKOFF.delay(failures))
                continue
            if self.problem is not None:
                log_event(logger, "journal_commit_recovered", retries=failures)
            self.problem = None
            metrics.JOURNAL_COMMITS.inc()
            metrics.JOURNAL_COMMIT_SECONDS.observe(time.perf_counter() - started)
            metrics.JOURNAL_ENTRIES.inc(len(batch.entries))
            return

    async def _commit_apart(self, batch: Batch, reason: str) -> None:
        """Run by run: the runs the database takes are written, a run it refuses alone stops being written."""
        parts = batch.per_run()
        if len(parts) == 1:
            run_ids = parts[0].run_ids()
            for run_id in run_ids:
                self._refused[run_id] = reason
                self._lost.add(run_id)
                self._written.pop(run_id, None)
            metrics.JOURNAL_COMMIT_FAILURES.inc()
            log_event(logger, "run_refused_by_store", logging.ERROR, run_id=", ".join(sorted(run_ids)), error=reason)
            return
        for part in parts:
            await self._commit_until_taken(part)

    def _forget_done_batches(self) -> None:
        if len(self._batch_of) > 4 * len(self._dirty) + 1024:
            self._batch_of = {run_id: batch for run_id, batch in self._batch_of.items() if not batch.done}
