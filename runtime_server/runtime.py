"""The orchestrator's state and behaviour behind the REST API and the callbacks.

Owns the stores, the flow catalog, the plugins, the router and the engine; creates runs
(top-level and subflows), waits for them, cancels them for real. With a durable store it
connects at start (waiting for the database if it must, not ready meanwhile) and resumes the
runs it owned that had not finished (``runs/resume.py`` says what each step still needs).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from typing import Any

from runtime_server import metrics
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
from runtime_server.retry import Backoff
from runtime_server.runs.durable_store import StoreUnavailable
from runtime_server.runs.open_store import open_stores
from runtime_server.runs.record import PENDING, RunRecord, StepState
from runtime_server.runs.resume import resume_of
from runtime_server.runs.rows import CorruptRun
from runtime_server.runs.store import RunQuery
from telemetry.logs import log_event
from telemetry.trace import run_trace

logger = logging.getLogger(__name__)


class RunConflict(Exception):
    """The run is in a state that does not allow the request (409)."""


CONNECT_BACKOFF = Backoff(first=0.2, factor=2.0, longest=5.0)


def default_orchestrator_id() -> str:
    """``STEPFLOW_ORCHESTRATOR_ID``, else the pod name (``HOSTNAME`` on Kubernetes), as upstream."""
    return os.environ.get("STEPFLOW_ORCHESTRATOR_ID") or os.environ.get("HOSTNAME") or socket.gethostname()


class NotReady(Exception):
    """The runtime cannot take runs now (its database is away): the message says why."""


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
    def __init__(self, settings: RuntimeSettings, orchestrator_id: str | None = None) -> None:
        self.settings = settings
        self.orchestrator_id = orchestrator_id or default_orchestrator_id()
        self.blobs, self.runs = open_stores(settings.store, self.orchestrator_id)
        self.flows = FlowCatalog(self.blobs)
        self.plugins: dict[str, Plugin] = create_plugins(settings, self)
        self.router = Router(settings.routes, set(self.plugins))
        self.engine = Engine(self.router, self.plugins, settings.step_attempts)
        self._live: dict[str, LiveRun] = {}
        self._live_by_submit_key: dict[str, str] = {}
        self._top_level_live = 0
        self._evictions_seen = 0
        self._connecting: asyncio.Task[None] | None = None
        self._closing = False
        self.recovered = 0
        metrics.RUNS_IN_FLIGHT.set_function(lambda: len(self._live))
        metrics.STEPS_IN_FLIGHT.set_function(lambda: self.engine.steps_in_flight)
        metrics.BLOB_STORE_BYTES.set_function(lambda: self.blobs.size_bytes)
        metrics.BLOB_STORE_BLOBS.set_function(lambda: len(self.blobs))
        metrics.RUN_STORE_RUNS.set_function(lambda: len(self.runs))

    async def start(self) -> None:
        for plugin in self.plugins.values():
            await plugin.start()
        if self.runs.durable:
            self._connecting = asyncio.create_task(self._connect_and_recover(), name="store-connect")
        else:
            await self.runs.open()

    async def connected(self) -> None:
        """Returns once the store is connected and the last start's runs are resumed."""
        if self._connecting is not None:
            await asyncio.shield(self._connecting)

    @property
    def problem(self) -> str | None:
        """Why the runtime is not ready to take runs (its store), or None."""
        if self._connecting is not None and not self._connecting.done():
            return self.runs.problem or "recovering the runs of the last start"
        return self.runs.problem

    def check_ready(self) -> None:
        problem = self.problem
        if problem is not None:
            raise NotReady(problem)

    async def _connect_and_recover(self) -> None:
        attempt = 0
        while True:
            try:
                await self.runs.open()
                break
            except StoreUnavailable as error:
                attempt += 1
                self.runs.connect_problem = str(error)  # type: ignore[attr-defined]  # only durable stores get here
                log_event(logger, "store_unavailable", logging.ERROR if attempt == 1 else logging.WARNING, error=str(error), retry=attempt)
                await asyncio.sleep(CONNECT_BACKOFF.delay(attempt))
        log_event(logger, "store_connected", store=self.settings.store.type, orchestrator_id=self.orchestrator_id, retries=attempt)
        await self._recover()

    async def _recover(self) -> None:
        """Resume every run this runtime had not finished, as its journal left it."""
        found = await self.runs.unfinished()
        for item in found:
            if isinstance(item, CorruptRun):
                log_event(logger, "run_not_recovered", logging.ERROR, orchestrator_id=self.orchestrator_id, error=str(item))
                continue
            await self._resume(item)
        if found:
            log_event(logger, "runs_recovered", orchestrator_id=self.orchestrator_id, runs=self.recovered, unreadable=len(found) - self.recovered)

    async def _resume(self, record: RunRecord) -> None:
        self.runs.adopt(record)
        record.record_event("run_recovered", instance_id=self.orchestrator_id)
        try:
            prepared = await self.flows.get(record.flow_id)
        except (FlowParseError, LookupError):
            prepared = None
        if prepared is None:
            problem: str | None = f"the run's flow {record.flow_id} is no longer stored, so the run cannot resume"
            effective = None
        else:
            effective, problem = self.effective_flow(prepared, record.overrides)
        run = ActiveRun(
            record,
            effective if effective is not None else _nothing_to_run(record),
            {**(effective.variable_defaults if effective else {}), **(record.variables or {})},
            limiter_for(record.max_concurrency),
            run_trace(record.run_id, record.trace_id),
            functools.partial(RunCallbacks, self, record),
            self.runs.written,
            resume_of(record.journal),
        )
        self._start(run, problem)
        self.recovered += 1
        metrics.RUNS_RECOVERED.inc()
        log_event(logger, "run_recovered", run_id=record.run_id, trace_id=record.trace_id, orchestrator_id=self.orchestrator_id, flow=record.flow_name)

    async def close(self) -> None:
        """Stop: runs in flight are left as journaled (a durable store resumes them at the next start)."""
        self._closing = True
        if self._connecting is not None:
            self._connecting.cancel()
        for live in list(self._live.values()):
            live.task.cancel()
        for live in list(self._live.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await live.task
        for plugin in self.plugins.values():
            await plugin.close()
        await self.runs.close()

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
        submit_key: str | None = None,
    ) -> RunRecord:
        """Create a run and start it; the returned record is live until the run ends.
        A sub-run joins its parent's trace; a top-level run joins ``trace_id`` (the caller's) if given.
        With a durable store the run is durable once ``journaled(record)`` returns."""
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
            variables=variables or None,
            max_concurrency=max_concurrency,
            submit_key=submit_key,
        )
        effective, problem = self.effective_flow(prepared, overrides)
        callbacks_for = functools.partial(RunCallbacks, self, record)
        run = ActiveRun(record, effective, {**effective.variable_defaults, **(variables or {})}, limiter_for(max_concurrency), trace, callbacks_for,
                        self.runs.written if self.runs.durable else None)
        self.runs.created(record)
        record.record_event("run_started")
        self._start(run, problem)
        return record

    def _start(self, run: ActiveRun, problem: str | None) -> None:
        record = run.record
        if record.parent_run_id is None:
            self._top_level_live += 1
        if record.submit_key is not None:
            self._live_by_submit_key[record.submit_key] = record.run_id
        self._live[record.run_id] = LiveRun(record, asyncio.create_task(self._drive(run, problem)))

    async def journaled(self, record: RunRecord) -> None:
        """Returns once the run and everything it journaled so far is durable (at once in memory)."""
        if self.runs.durable:
            await self.runs.written(record)

    async def submitted_run(self, submit_key: str) -> RunRecord | None:
        """The run a component's execution already submitted under this key (before a restart)."""
        run_id = self._live_by_submit_key.get(submit_key)
        if run_id is not None and run_id in self._live:
            return self._live[run_id].record
        return await self.runs.submitted_as(submit_key)

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
            if self._closing:  # stopping, not cancelled: the run stays as journaled, to resume later
                self._forget(record)
                raise
            record.status = "cancelled"
        except Exception as error:  # an engine bug fails the run; it must never stay "running"
            log_event(logger, "run_crashed", logging.ERROR, exc_info=True, run_id=record.run_id, trace_id=record.trace_id)
            crash = failed(500, f"internal error: {type(error).__name__}: {error}")
            record.item_outcomes = [crash if outcome is PENDING else outcome for outcome in record.item_outcomes]
            record.status = "failed"
        await self._finish(record)

    async def _finish(self, record: RunRecord) -> None:
        live = self._live.get(record.run_id)
        try:
            self._record_end(record)
            await self.journaled(record)  # nobody hears of the end before it is durable
        finally:  # even if recording the end failed (a store error): a waiter must never hang
            if live is not None:
                live.wake_waiters()

    def _forget(self, record: RunRecord) -> None:
        if self._live.pop(record.run_id, None) is not None and record.parent_run_id is None:
            self._top_level_live -= 1
        if record.submit_key is not None:
            self._live_by_submit_key.pop(record.submit_key, None)

    def _record_end(self, record: RunRecord) -> None:
        record.completed_ns = record.completed_ns or now_ns()
        record.record_event("run_completed", status=record.status)
        self.runs.ended(record)
        self._forget(record)
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

    async def wait_for_end(self, record: RunRecord, timeout_seconds: float) -> RunRecord:
        """The run once it has ended, or as it is after ``timeout_seconds``."""
        live = self._live.get(record.run_id)
        if live is None:
            return record
        try:
            await asyncio.wait_for(live.finished(), timeout_seconds)
        except TimeoutError:
            pass
        return live.record

    async def run_subflow(self, prepared: PreparedFlow, inputs: list[Any], parent_run_id: str | None, max_concurrency: int | None = None) -> RunRecord:
        parent = await self.get_run(parent_run_id) if parent_run_id else None
        return await self.wait(self.submit(prepared, inputs, max_concurrency=max_concurrency, parent=parent))

    @property
    def runs_in_flight(self) -> int:
        """Top-level runs not yet finished (a run's sub-runs are bounded by its nesting, so they are not counted)."""
        return self._top_level_live

    async def get_run(self, run_id: str) -> RunRecord | None:
        live = self._live.get(run_id)
        return live.record if live is not None else await self.runs.get(run_id)

    async def list_runs(self, query: RunQuery) -> list[RunRecord]:
        """From the store; a run live here is shown as it is now."""
        listed = await self.runs.list(query)
        return [self._live[record.run_id].record if record.run_id in self._live else record for record in listed]

    def cancel(self, record: RunRecord) -> RunRecord:
        live = self._live.get(record.run_id)
        if record.finished or live is None:
            raise RunConflict(f"Run '{record.run_id}' cannot be cancelled (status: {record.status.capitalize()})")
        record.status = "cancelled"
        record.completed_ns = now_ns()
        live.task.cancel()
        return record

    async def delete(self, record: RunRecord) -> None:
        if record.run_id in self._live:
            raise RunConflict(f"Execution '{record.run_id}' is still running and cannot be deleted")
        await self.runs.delete(record.run_id)


def _nothing_to_run(record: RunRecord) -> PreparedFlow:
    """A stand-in flow for a recovered run that cannot resume (its flow is gone): it fails at once."""
    return prepare(record.flow_id, parse_flow({"steps": [], "output": None}), {})
