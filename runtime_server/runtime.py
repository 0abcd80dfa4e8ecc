"""The orchestrator's state and behaviour behind the REST API and the callbacks.

Owns the stores, the flow catalog, the plugins, the router and the engine; creates runs
(top-level and subflows), waits for them, cancels them for real.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from runtime_server import metrics
from runtime_server.blobs import BlobStore, MemoryBlobStore, SqliteBlobStore
from runtime_server.callbacks import RunCallbacks
from runtime_server.config import RuntimeSettings
from runtime_server.engine import ActiveRun, Engine, limiter_for
from runtime_server.flow.model import FlowParseError, parse_flow
from runtime_server.flow.overrides import OverrideError, apply_overrides
from runtime_server.flow.prepared import PreparedFlow, prepare
from runtime_server.flow.results import Failed, failed
from runtime_server.flow_catalog import FlowCatalog
from runtime_server.plugins.base import Plugin
from runtime_server.plugins.registry import create_plugins
from runtime_server.routing import Router
from runtime_server.runs.clock import now_ns
from runtime_server.runs.ids import new_run_id
from runtime_server.runs.record import PENDING, RunRecord, StepState
from runtime_server.runs.sqlite_store import SqliteRunStore, sqlite_path
from runtime_server.runs.store import MemoryRunStore, RunQuery, RunStore
from telemetry.logs import log_event
from telemetry.trace import run_trace

logger = logging.getLogger(__name__)


class RunConflict(Exception):
    """The run is in a state that does not allow the request (409)."""


def _stores(settings: RuntimeSettings) -> tuple[BlobStore, RunStore]:
    if settings.state_store == "sqlite" and settings.database_path:
        path = sqlite_path(settings.database_path)
        return SqliteBlobStore(path), SqliteRunStore(path, settings.max_runs)
    return MemoryBlobStore(), MemoryRunStore(settings.max_runs, settings.max_age_seconds)


class LiveRun:
    """A run in progress: its task, and a future for each caller waiting for its end.

    The run wakes its waiters itself as it finishes: a waiter resumes in the next loop turn,
    where awaiting the task through ``asyncio.shield`` took two (the task's end, then the
    shield's). Each waiter has its own future, so cancelling one never touches the run.
    """

    __slots__ = ("record", "task", "_waiters")

    def __init__(self, record: RunRecord, task: asyncio.Task[None]) -> None:
        self.record = record
        self.task = task
        self._waiters: list[asyncio.Future[None]] = []

    async def finished(self) -> None:
        if self.task.done():  # it ended without recording its end (a store error): nothing will wake us
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def wake_waiters(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)


class Runtime:
    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings
        self.blobs, self.runs = _stores(settings)
        self.flows = FlowCatalog(self.blobs)
        self.plugins: dict[str, Plugin] = create_plugins(settings, self)
        self.router = Router(settings.routes, set(self.plugins))
        self.engine = Engine(self.router, self.plugins, settings.step_attempts)
        self._live: dict[str, LiveRun] = {}
        self._top_level_live = 0
        self._evictions_seen = 0
        metrics.RUNS_IN_FLIGHT.set_function(lambda: len(self._live))
        metrics.STEPS_IN_FLIGHT.set_function(lambda: self.engine.steps_in_flight)
        metrics.BLOB_STORE_BYTES.set_function(lambda: self.blobs.size_bytes)
        metrics.BLOB_STORE_BLOBS.set_function(lambda: len(self.blobs))
        metrics.RUN_STORE_RUNS.set_function(lambda: len(self.runs))

    async def start(self) -> None:
        for plugin in self.plugins.values():
            await plugin.start()

    async def close(self) -> None:
        for live in list(self._live.values()):
            live.task.cancel()
        for plugin in self.plugins.values():
            await plugin.close()
        self.runs.close()

    def submit(
        self,
        prepared: PreparedFlow,
        inputs: list[Any],
        *,
        variables: dict[str, Any] | None = None,
        overrides: dict[str, Any] | None = None,
        max_concurrency: int | None = None,
        parent: RunRecord | None = None,
        trace_id: str | None = None,
    ) -> RunRecord:
        """Create a run and start it; the returned record is live until the run ends.
        A sub-run joins its parent's trace; a top-level run joins ``trace_id`` (the caller's) if given."""
        run_id = new_run_id()
        trace = run_trace(run_id, parent.trace_id if parent else trace_id)
        record = RunRecord(
            run_id=run_id,
            flow_id=prepared.flow_id,
            flow_name=prepared.flow.name,
            inputs=inputs,
            steps={step.id: StepState(step.component) for step in prepared.flow.steps},
            root_run_id=parent.root_run_id if parent else run_id,
            parent_run_id=parent.run_id if parent else None,
            overrides=overrides or None,
            trace_id=trace.trace_id,
        )
        effective, problem = self.effective_flow(prepared, overrides)
        run = ActiveRun(record, effective, {**effective.variable_defaults, **(variables or {})}, limiter_for(max_concurrency), trace, RunCallbacks(self, record))
        self.runs.put(record)
        if parent is None:
            self._top_level_live += 1
        record.record_event("run_started")
        self._live[run_id] = LiveRun(record, asyncio.create_task(self._drive(run, problem)))
        return record

    def effective_flow(self, prepared: PreparedFlow, overrides: dict[str, Any] | None) -> tuple[PreparedFlow, str | None]:
        """The flow with overrides applied, or the reason the run must fail before starting."""
        if overrides:
            try:
                patched = apply_overrides(prepared.flow_json, overrides)
                prepared = prepare(prepared.flow_id, parse_flow(patched), patched)
            except (OverrideError, FlowParseError) as error:
                return prepared, f"invalid overrides: {error}"
        if not prepared.runnable:
            problems = "; ".join(f"{d.formatted} at {d.path}" for d in prepared.diagnostics.fatal)
            return prepared, f"the flow is not valid: {problems}"
        return prepared, None

    async def _drive(self, run: ActiveRun, problem: str | None) -> None:
        record = run.record
        try:
            if problem is None:
                await self.engine.run_items(run)
            else:
                record.item_outcomes = [failed(400, problem)] * len(record.inputs)
            record.status = "failed" if any(isinstance(outcome, Failed) for outcome in record.item_outcomes) else "completed"
        except asyncio.CancelledError:
            record.status = "cancelled"
        except Exception as error:  # an engine bug fails the run; it must never stay "running"
            log_event(logger, "run_crashed", logging.ERROR, exc_info=True, run_id=record.run_id, trace_id=record.trace_id)
            crash = failed(500, f"internal error: {type(error).__name__}: {error}")
            record.item_outcomes = [crash if outcome is PENDING else outcome for outcome in record.item_outcomes]
            record.status = "failed"
        finally:
            self._finish(record)

    def _finish(self, record: RunRecord) -> None:
        live = self._live.get(record.run_id)
        try:
            self._record_end(record)
        finally:  # even if recording the end failed (a store error): a waiter must never hang
            if live is not None:
                live.wake_waiters()

    def _record_end(self, record: RunRecord) -> None:
        record.completed_ns = record.completed_ns or now_ns()
        record.record_event("run_completed", status=record.status)
        self.runs.put(record)
        if self._live.pop(record.run_id, None) is not None and record.parent_run_id is None:
            self._top_level_live -= 1
        metrics.RUNS.labels(record.status, record.flow_name or "").inc()
        metrics.RUN_DURATION.observe((record.completed_ns - record.created_ns) / 1e9)
        if self.runs.evictions > self._evictions_seen:
            metrics.RUN_STORE_EVICTIONS.inc(self.runs.evictions - self._evictions_seen)
            self._evictions_seen = self.runs.evictions
        log_event(logger, "run_finished", run_id=record.run_id, trace_id=record.trace_id, flow=record.flow_name, status=record.status, items=len(record.inputs), parent_run_id=record.parent_run_id)

    async def wait(self, record: RunRecord) -> RunRecord:
        live = self._live.get(record.run_id)
        if live is not None:
            await live.finished()
        return record

    async def run_subflow(self, prepared: PreparedFlow, inputs: list[Any], parent_run_id: str | None, max_concurrency: int | None = None) -> RunRecord:
        parent = self.get_run(parent_run_id) if parent_run_id else None
        return await self.wait(self.submit(prepared, inputs, max_concurrency=max_concurrency, parent=parent))

    @property
    def runs_in_flight(self) -> int:
        """Top-level runs not yet finished (a run's sub-runs are bounded by its nesting, so they are not counted)."""
        return self._top_level_live

    def get_run(self, run_id: str) -> RunRecord | None:
        live = self._live.get(run_id)
        return live.record if live is not None else self.runs.get(run_id)

    def list_runs(self, query: RunQuery) -> list[RunRecord]:
        return self.runs.list(query)

    def cancel(self, record: RunRecord) -> RunRecord:
        live = self._live.get(record.run_id)
        if record.finished or live is None:
            raise RunConflict(f"Run '{record.run_id}' cannot be cancelled (status: {record.status.capitalize()})")
        record.status = "cancelled"
        record.completed_ns = now_ns()
        live.task.cancel()
        return record

    def delete(self, record: RunRecord) -> None:
        if record.run_id in self._live:
            raise RunConflict(f"Execution '{record.run_id}' is still running and cannot be deleted")
        self.runs.delete(record.run_id)
