"""A run as database rows, and back: pure, shared by every durable backend.

A run is one ``runs`` row (what it was asked to do, who owns it, how it ended) and one
``journal`` row per entry. Rows are written once and never updated, except the run's end
(status, completion time, item counts), so recovery and reads rebuild the run from its
entries (``replay``). What the rows hold is plain JSON, encoded here once for both backends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec

from runtime_server.flow.results import from_wire, to_wire
from runtime_server.runs.record import PENDING, JournalEntry, RunRecord, StepState


class RunSpec(msgspec.Struct, rename="camel", omit_defaults=True):
    """What a run was asked to do: enough to start it again after a restart."""

    inputs: list[Any]
    steps: dict[str, str]
    """Step id -> component, in flow order (the run's steps before it has run any)."""
    variables: dict[str, Any] | None = None
    overrides: dict[str, Any] | None = None
    max_concurrency: int | None = None
    trace_id: str | None = None


class EntryDetail(msgspec.Struct, omit_defaults=True):
    error: dict[str, Any] | None = None
    outcome: dict[str, Any] | None = None
    """The step's or item's result in its wire form (``to_wire``)."""
    callbacks: dict[str, int] | None = None


RUN_COLUMNS = "run_id, created_ns, status, flow_id, flow_name, root_run_id, parent_run_id, owner, submit_key, spec, completed_ns, counts, owner_epoch"
"""The ``runs`` columns a ``RunRow`` holds, in its order (every backend reads and writes these)."""


class RunRow(NamedTuple):
    """Tuples, so a backend hands a batch's rows to its driver as they are (columns in this order)."""

    run_id: str
    created_ns: int
    status: str
    flow_id: str
    flow_name: str | None
    root_run_id: str
    parent_run_id: str | None
    owner: str
    submit_key: str | None
    spec: bytes
    completed_ns: int | None = None
    counts: bytes | None = None
    owner_epoch: int = 0
    """The owner's lease epoch when it took the run: a write by an older holder is refused."""


class JournalRow(NamedTuple):
    run_id: str
    seq: int
    at_ns: int
    kind: str
    item_index: int | None
    step_id: str | None
    attempt: int | None
    status: str | None
    instance_id: str | None
    detail: bytes | None


class RunEnd(NamedTuple):
    """In the order of the UPDATE's parameters."""

    status: str
    completed_ns: int
    counts: bytes
    run_id: str


@dataclass
class Batch:
    """One group commit: everything written since the last, from many runs, in one transaction."""

    runs: list[RunRow] = field(default_factory=list)
    entries: list[JournalRow] = field(default_factory=list)
    ends: list[RunEnd] = field(default_factory=list)
    blobs: list[tuple[str, str, bytes]] = field(default_factory=list)
    """(blob id, blob type, JSON body)."""
    fence: tuple[str, int] | None = None
    """(owner, lease epoch): the batch is written only for runs this owner still holds at this epoch."""

    def __bool__(self) -> bool:
        return bool(self.runs or self.entries or self.ends or self.blobs)

    def existing_run_ids(self) -> set[str]:
        """Runs the batch writes to that it does not create: the ones its fence must check."""
        created = {row.run_id for row in self.runs}
        return {entry.run_id for entry in self.entries if entry.run_id not in created} | {end.run_id for end in self.ends if end.run_id not in created}

    def run_ids(self) -> set[str]:
        return self.existing_run_ids() | {row.run_id for row in self.runs}

    def per_run(self) -> list[Batch]:
        """One batch per run (and one for the blobs), to find which run's rows a database refuses."""
        blobs = [Batch(blobs=self.blobs, fence=self.fence)] if self.blobs else []
        return blobs + [
            Batch(
                [row for row in self.runs if row.run_id == run_id],
                [entry for entry in self.entries if entry.run_id == run_id],
                [end for end in self.ends if end.run_id == run_id],
                [],
                self.fence,
            )
            for run_id in sorted(self.run_ids())
        ]

    def without(self, run_ids: set[str]) -> Batch:
        return Batch(
            [row for row in self.runs if row.run_id not in run_ids],
            [entry for entry in self.entries if entry.run_id not in run_ids],
            [end for end in self.ends if end.run_id not in run_ids],
            self.blobs,
            self.fence,
        )


_encoder = msgspec.json.Encoder()
_spec_decoder = msgspec.json.Decoder(RunSpec)
_detail_decoder = msgspec.json.Decoder(EntryDetail)
_counts_decoder = msgspec.json.Decoder(dict[str, int])


class RunRefused(Exception):
    """The database refused what this run wrote (its data, not an outage): nothing more of it is written."""


class RunsLost(Exception):
    """A batch named runs that another replica has taken over (or that are gone): nothing was written."""

    def __init__(self, run_ids: set[str]) -> None:
        super().__init__(f"runs taken over by another replica: {', '.join(sorted(run_ids))}")
        self.run_ids = run_ids


class CorruptRun(ValueError):
    """A run's rows cannot be read back: the message names the run and what is wrong."""


def run_row(record: RunRecord, owner: str, owner_epoch: int = 0) -> RunRow:
    spec = RunSpec(
        inputs=record.inputs,
        steps={step_id: state.component for step_id, state in record.steps.items()},
        variables=record.variables,
        overrides=record.overrides,
        max_concurrency=record.max_concurrency,
        trace_id=record.trace_id,
    )
    return RunRow(
        record.run_id,
        record.created_ns,
        "running",
        record.flow_id,
        record.flow_name,
        record.root_run_id,
        record.parent_run_id,
        owner,
        record.submit_key,
        _encoder.encode(spec),
        owner_epoch=owner_epoch,
    )


def journal_rows(record: RunRecord, start: int) -> list[JournalRow]:
    """The record's entries from ``start`` on."""
    rows = []
    for seq, (at, kind, item_index, step_id, attempt, status, error, instance_id, outcome, callbacks) in enumerate(record.journal[start:], start):
        detail = None
        if error is not None or outcome is not PENDING or callbacks:
            detail = _encoder.encode(EntryDetail(error, None if outcome is PENDING else to_wire(outcome), callbacks))
        rows.append(JournalRow(record.run_id, seq, at, kind, item_index, step_id, attempt, status, instance_id, detail))
    return rows


def run_end(record: RunRecord) -> RunEnd:
    return RunEnd(record.status, record.completed_ns or record.created_ns, _encoder.encode(record.item_counts()), record.run_id)


def replay(row: RunRow, entries: list[JournalRow]) -> RunRecord:
    """The run as it was after its last journaled entry (raises CorruptRun)."""
    try:
        spec = _spec_decoder.decode(row.spec)
        journal = [_entry(entry) for entry in entries]
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise CorruptRun(f"run {row.run_id}: its stored journal cannot be decoded ({error})") from None
    record = RunRecord(
        run_id=row.run_id,
        flow_id=row.flow_id,
        flow_name=row.flow_name,
        inputs=spec.inputs,
        steps={step_id: StepState(component) for step_id, component in spec.steps.items()},
        root_run_id=row.root_run_id,
        parent_run_id=row.parent_run_id,
        overrides=spec.overrides,
        trace_id=spec.trace_id,
        variables=spec.variables,
        max_concurrency=spec.max_concurrency,
        submit_key=row.submit_key,
        owner=row.owner,
        status=row.status,
        created_ns=row.created_ns,
        completed_ns=row.completed_ns,
        journal=journal,
    )
    for entry in journal:
        _apply(record, entry)
    return record


def listed(row: RunRow) -> RunRecord:
    """A run as a list shows it: its summary, without reading its journal."""
    spec = _spec_decoder.decode(row.spec)
    record = RunRecord(
        row.run_id,
        row.flow_id,
        row.flow_name,
        spec.inputs,
        {},
        row.root_run_id,
        row.parent_run_id,
        owner=row.owner,
        status=row.status,
        created_ns=row.created_ns,
        completed_ns=row.completed_ns,
    )
    record.counts = _counts_decoder.decode(row.counts) if row.counts else None
    return record


def _entry(row: JournalRow) -> JournalEntry:
    error, outcome, callbacks = None, PENDING, None
    if row.detail is not None:
        detail = _detail_decoder.decode(row.detail)
        error, callbacks = detail.error, detail.callbacks
        if detail.outcome is not None:
            outcome = from_wire(detail.outcome)
    return (row.at_ns, row.kind, row.item_index, row.step_id, row.attempt, row.status, error, row.instance_id, outcome, callbacks)


def _apply(record: RunRecord, entry: JournalEntry) -> None:
    at, kind, item_index, step_id, attempt, _, _, instance_id, outcome, callbacks = entry
    if kind == "item_completed" and item_index is not None and 0 <= item_index < len(record.item_outcomes) and outcome is not PENDING:
        record.item_outcomes[item_index] = outcome
        record.item_completed_ns[item_index] = at
        return
    state = record.steps.get(step_id) if step_id is not None else None
    if state is None:
        return
    if kind in ("step_started", "step_retried"):
        state.status, state.attempt = "running", attempt or state.attempt + 1
        state.started_ns = state.started_ns if kind == "step_retried" and state.started_ns else at
    elif kind in ("step_succeeded", "step_failed"):
        state.status = "completed" if kind == "step_succeeded" else "failed"
        state.outcome, state.instance_id, state.completed_ns, state.callbacks = outcome, instance_id, at, callbacks
