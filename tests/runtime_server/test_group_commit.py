"""The group-commit writer in process, over a commit that waits until the test lets it finish.

And the announcements of run ends (``end_announcements``), pure table tests.
"""

from __future__ import annotations

import asyncio

import pytest

from runtime_server.runs import end_announcements
from runtime_server.runs.group_commit import GroupCommitWriter
from runtime_server.runs.record import RunRecord, StepState
from runtime_server.runs.rows import Batch


class GatedCommit:
    """Records each batch; a commit returns only once the test opens the gate."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.gate = asyncio.Event()

    async def __call__(self, batch: Batch) -> None:
        self.batches.append(batch)
        await self.gate.wait()


def record(run_id: str) -> RunRecord:
    return RunRecord(run_id, "f" * 64, "demo", [{}], {"s": StepState("/c")}, run_id)


def writer_with_a_run(commit: GatedCommit) -> tuple[GroupCommitWriter, RunRecord]:
    """A started writer over ``commit``, tracking one new run."""
    writer = GroupCommitWriter(commit, "replica-a")
    writer.start()
    run = record("run-1")
    writer.track(run)
    return writer, run


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.anyio
async def test_a_cancelled_waiter_leaves_the_others_of_its_batch_waiting() -> None:
    """A blob put whose callback stream went away must not cancel the runs committed with it."""
    commit = GatedCommit()
    writer, run = writer_with_a_run(commit)
    blob = writer.put_blob("b" * 64, "data", b"{}")
    waiting = asyncio.create_task(writer.written(run))
    await settle()
    blob.cancel()
    await settle()
    assert not waiting.done()
    commit.gate.set()
    await asyncio.wait_for(waiting, 1.0)  # committed, not cancelled
    assert [r.run_id for r in commit.batches[0].runs] == ["run-1"]
    await writer.close()


@pytest.mark.anyio
async def test_a_run_waits_for_the_batch_its_latest_entries_are_in() -> None:
    commit = GatedCommit()
    writer, run = writer_with_a_run(commit)
    await settle()  # the first batch is being committed (gate closed)
    run.record_event("run_started")
    writer.mark(run)
    waiting = asyncio.create_task(writer.written(run))
    commit.gate.set()
    await settle()
    assert len(commit.batches) == 2
    await asyncio.wait_for(waiting, 1.0)
    assert [entry.kind for entry in commit.batches[1].entries][-1:] == ["run_started"]
    await writer.close()


@pytest.mark.anyio
async def test_waiting_for_a_committed_run_returns_at_once() -> None:
    commit = GatedCommit()
    commit.gate.set()
    writer, run = writer_with_a_run(commit)
    await asyncio.wait_for(writer.written(run), 1.0)
    await asyncio.wait_for(writer.written(run), 1.0)
    assert len(commit.batches) == 1
    await writer.close()


ID = "0" * 36


@pytest.mark.parametrize(
    ("run_ids", "limit", "payloads"),
    [
        ([], 100, []),
        (["a"], 100, ["a"]),
        (["a", "b", "c"], 100, ["a,b,c"]),
        (["a", "b", "c"], 3, ["a,b", "c"]),  # "a,b" is 3 bytes: exactly the limit
        (["a", "b", "c"], 2, ["a", "b", "c"]),
        (["abc"], 2, ["abc"]),  # one id longer than the limit still goes (PostgreSQL decides)
        ([ID] * 3, 73, [f"{ID},{ID}", ID]),
        (["é", "b"], 3, ["é", "b"]),  # bytes, not characters: "é,b" is 4 bytes
    ],
)
def test_run_ends_go_as_few_payloads_under_the_limit(run_ids: list[str], limit: int, payloads: list[str]) -> None:
    assert end_announcements.payloads(run_ids, limit) == payloads
    assert all(len(p.encode()) <= limit for p in payloads if "," in p)
    assert [run_id for payload in payloads for run_id in end_announcements.run_ids_of(payload)] == run_ids


def test_a_default_payload_stays_under_postgresql_limit() -> None:
    payloads = end_announcements.payloads([ID] * 1000)
    assert len(payloads) == 5
    assert max(len(p.encode()) for p in payloads) < 8000


@pytest.mark.parametrize(("payload", "run_ids"), [("a", ["a"]), ("a,b", ["a", "b"]), ("", []), ("a,,b,", ["a", "b"])])
def test_a_payload_names_its_runs(payload: str, run_ids: list[str]) -> None:
    """One id alone is what earlier versions sent: it reads the same."""
    assert end_announcements.run_ids_of(payload) == run_ids
