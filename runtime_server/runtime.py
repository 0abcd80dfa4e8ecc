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
import math
import os
import socket
import time
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
from runtime_server.replicas.coordinator import Coordinator
from runtime_server.retry import Backoff
from runtime_server.routing import Router
from runtime_server.runs.clock import now_ns
from runtime_server.runs.durable_store import DurableRunStore, StoreUnavailable
from runtime_server.runs.ids import new_run_id
from runtime_server.runs.open_store import open_stores
from runtime_server.runs.record import PENDING, RunRecord, StepState
from runtime_server.runs.resume import resume_of
from runtime_server.runs.rows import CorruptRun, RunRefused, RunsLost
from runtime_server.runs.store import RunQuery
from telemetry.logs import log_event
from telemetry.trace import run_trace

logger = logging.getLogger(__name__)


class RunConflict(Exception):
    """The run is in a state that does not allow the request (409)."""


CONNECT_BACKOFF = Backoff(first=0.2, factor=2.0, longest=5.0)
REMOTE_WAIT_RECHECK_SECONDS = 5.0
REMOTE_CANCEL_WAIT_SECONDS = 5.0
LISTEN_CHECK_SECONDS = 2.0


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
        self.blobs, self.runs = open_stores(settings.store, self.orchestrator_id, settings.recovery.lease_ttl_seconds)
        self.flows = FlowCatalog(self.blobs)
        self.plugins: dict[str, Plugin] = create_plugins(settings, self)
        self.router = Router(settings.routes, set(self.plugins))
        self.engine = Engine(self.router, self.plugins, settings.step_attempts)
        self._live: dict[str, LiveRun] = {}
        self._live_by_submit_key: dict[str, str] = {}
        self._top_level_live = 0
        self._evictions_seen = 0
        self._connecting: asyncio.Task[None] | None = None
        self._coordinating: asyncio.Task[None] | None = None
        self._relistening: asyncio.Task[None] | None = None
        self._listening: Any = None
        self._closing = False
        self._dropping: set[str] = set()
        """Runs being stopped without recording anything: another replica holds them now."""
        self._end_waiters: dict[str, list[asyncio.Future[None]]] = {}
        """Callers waiting for runs another replica runs (woken by its NOTIFY)."""
        self.draining = False
        self._draining_since = 0.0
        self.recovered = 0
        metrics.RUNS_IN_FLIGHT.set_function(lambda: len(self._live))
        metrics.STEPS_IN_FLIGHT.set_function(lambda: self.engine.steps_in_flight)
        metrics.BLOB_STORE_BYTES.set_function(lambda: self.blobs.size_bytes)
        metrics.BLOB_STORE_BLOBS.set_function(lambda: len(self.blobs))
        metrics.RUN_STORE_RUNS.set_function(lambda: len(self.runs))
        metrics.RUNS_OWNED.set_function(lambda: len(self._live))

    async def start(self) -> None:
        for plugin in self.plugins.values():
            await plugin.start()
        if not self.runs.durable:
            await self.runs.open()
            return
        try:
            await self.runs.open()
        except StoreUnavailable as error:
            if error.lasting:  # a wrong password or a newer schema: waiting will not help, refuse to start
                log_event(logger, "store_refused", logging.ERROR, error=str(error))
                raise
            self._connecting = asyncio.create_task(self._connect_and_recover(error), name="store-connect")
            return
        self._connecting = asyncio.create_task(self._recover_after_connect(0), name="store-recover")

    async def connected(self) -> None:
        """Returns once the store is connected and the last start's runs are resumed."""
        if self._connecting is not None:
            await asyncio.shield(self._connecting)

    @property
    def problem(self) -> str | None:
        """Why the runtime is not ready to take runs (its store, or shutting down), or None."""
        if self.draining:
            return "shutting down: finishing its runs, taking no new ones"
        if self._connecting is not None and not self._connecting.done():
            return self.runs.problem or "recovering the runs of the last start"
        return self.runs.problem

    def check_ready(self) -> None:
        problem = self.problem
        if problem is not None:
            raise NotReady(problem)

    async def _connect_and_recover(self, first: StoreUnavailable) -> None:
        """The database was away at start: keep trying (not ready meanwhile, saying why)."""
        error, attempt = first, 0
        while True:
            attempt += 1
            self.runs.connect_problem = str(error)  # type: ignore[attr-defined]  # only durable stores get here
            log_event(logger, "store_unavailable", logging.ERROR if attempt == 1 else logging.WARNING, error=str(error), retry=attempt)
            await asyncio.sleep(CONNECT_BACKOFF.delay(attempt))
            try:
                await self.runs.open()
                break
            except StoreUnavailable as again:
                error = again
        await self._recover_after_connect(attempt)

    async def _recover_after_connect(self, retries: int) -> None:
        log_event(logger, "store_connected", store=self.settings.store.type, orchestrator_id=self.orchestrator_id, retries=retries, epoch=self.runs.epoch)  # type: ignore[attr-defined]
        store: DurableRunStore = self.runs  # type: ignore[assignment]  # only durable stores get here
        store.writer.on_lost = self._runs_lost
        self._listening = await store.backend.listen(self._heard_end, self._heard_cancel)
        if self._listening is not None:
            self._relistening = asyncio.create_task(self._keep_listening(store), name="store-listen")
        recovery = self.settings.recovery
        if not recovery.enabled:
            return
        await self.resume_claimed(await store.claim(self.orchestrator_id, recovery.max_startup_recovery), self.orchestrator_id)
        self._coordinating = asyncio.create_task(Coordinator(store, self, recovery).run(), name="replica-coordinator")

    async def _keep_listening(self, store: DurableRunStore) -> None:
        """The LISTEN connection is lost with the database: listen again when it is back, and look
        for cancels asked meanwhile (their NOTIFY went nowhere)."""
        while True:
            await asyncio.sleep(LISTEN_CHECK_SECONDS)
            if self._listening is not None and not self._listening.is_closed():
                continue
            try:
                self._listening = await store.backend.listen(self._heard_end, self._heard_cancel)
                for run_id in await store.read(store.backend.cancels_requested(list(self._live))):
                    self._heard_cancel(run_id)
                log_event(logger, "store_listening_again", orchestrator_id=self.orchestrator_id)
            except (StoreUnavailable, OSError) as error:
                log_event(logger, "store_listen_failed", logging.WARNING, orchestrator_id=self.orchestrator_id, error=str(error))

    async def resume_claimed(self, claimed: list[tuple[Any, bool]], taken_from: str) -> None:
        """Resume runs this runtime just took (its own after a restart, or a dead peer's)."""
        resumed = 0
        for item, cancel_requested in claimed:
            if isinstance(item, CorruptRun):
                log_event(logger, "run_not_recovered", logging.ERROR, orchestrator_id=self.orchestrator_id, error=str(item))
                continue
            stale = self._live.get(item.run_id)
            if stale is not None:  # our own copy from before a lost lease, still stopping: let it stop, then resume the journal's
                self._runs_lost({item.run_id})
                await asyncio.wait([stale.task])
            await self._resume(item, taken_from)
            resumed += 1
            if cancel_requested:
                self.cancel(item)
        if resumed:
            log_event(logger, "runs_recovered", orchestrator_id=self.orchestrator_id, taken_from=taken_from, runs=resumed)

    async def _resume(self, record: RunRecord, taken_from: str) -> None:
        self.runs.adopt(record)
        record.owner = self.orchestrator_id
        record.record_event(
            "run_recovered", instance_id=self.orchestrator_id, status=None if taken_from == self.orchestrator_id else f"taken over from {taken_from}"
        )
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
        log_event(
            logger,
            "run_recovered",
            run_id=record.run_id,
            trace_id=record.trace_id,
            orchestrator_id=self.orchestrator_id,
            flow=record.flow_name,
            taken_from=taken_from,
        )

    def drop_all_runs(self, reason: str) -> None:
        """The lease is lost: stop every run at once, recording nothing (a peer may own them now)."""
        log_event(logger, "runs_dropped", logging.WARNING, orchestrator_id=self.orchestrator_id, runs=len(self._live), reason=reason)
        self._runs_lost(set(self._live))

    def _runs_lost(self, run_ids: set[str]) -> None:
        for run_id in run_ids:
            live = self._live.get(run_id)
            if live is not None:
                self._dropping.add(run_id)
                live.task.cancel()
            else:
                self.runs.forget(run_id)

    def _heard_end(self, run_id: str) -> None:
        for waiter in self._end_waiters.pop(run_id, []):
            if not waiter.done():
                waiter.set_result(None)

    def _heard_cancel(self, run_id: str) -> None:
        live = self._live.get(run_id)
        if live is not None and not live.record.finished:
            self.cancel(live.record)

    def begin_draining(self) -> None:
        """SIGTERM arrived: take no new runs from now on (health says so)."""
        if not self.draining:
            self.draining = True
            self._draining_since = time.monotonic()
            log_event(logger, "runtime_draining", orchestrator_id=self.orchestrator_id, runs=len(self._live))

    async def drain(self, grace_seconds: float) -> None:
        """Give the live runs what is left of ``grace_seconds`` since draining began to finish."""
        self.begin_draining()
        left = grace_seconds - (time.monotonic() - self._draining_since)
        if self._live and left > 0:
            await asyncio.wait([live.task for live in self._live.values()], timeout=left)

    async def close(self) -> None:
        """Stop: runs in flight are left as journaled, and the lease released, so a peer (or the
        next start) resumes them at once."""
        self._closing = True
        for task in (self._connecting, self._coordinating, self._relistening):
            if task is not None:
                task.cancel()
        runs_left = len(self._live)
        for live in list(self._live.values()):
            live.task.cancel()
        for live in list(self._live.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await live.task
        for plugin in self.plugins.values():
            await plugin.close()
        await self._release(runs_left)
        await self.runs.close()

    async def _release(self, runs_left: int) -> None:
        if self._listening is not None:
            with contextlib.suppress(Exception):
                await self._listening.close()
        if self.runs.durable and self.runs.problem is None:
            try:
                await self.runs.release_lease()  # type: ignore[attr-defined]
                log_event(logger, "lease_released", orchestrator_id=self.orchestrator_id, runs_left=runs_left)
            except StoreUnavailable as error:
                log_event(logger, "lease_release_failed", logging.WARNING, orchestrator_id=self.orchestrator_id, error=str(error))

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
            owner=self.orchestrator_id,
        )
        effective, problem = self.effective_flow(prepared, overrides)
        callbacks_for = functools.partial(RunCallbacks, self, record)
        run = ActiveRun(
            record,
            effective,
            {**effective.variable_defaults, **(variables or {})},
            limiter_for(max_concurrency),
            trace,
            callbacks_for,
            self.runs.written if self.runs.durable else None,
        )
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
        except RunsLost:
            self._drop(record)
            return
        except RunRefused as refused:  # the database refused what it wrote: it ends failed, here only
            _fail_unfinished_items(record, failed(500, str(refused)))
        except asyncio.CancelledError:
            if self._closing or record.run_id in self._dropping:  # not cancelled: the run stays as journaled, for whoever resumes it
                self._drop(record)
                if self._closing:
                    raise
                return
            record.status = "cancelled"
        except Exception as error:  # noqa: BLE001 - an engine bug fails the run; it must never stay "running"
            log_event(logger, "run_crashed", logging.ERROR, exc_info=True, run_id=record.run_id, trace_id=record.trace_id)
            _fail_unfinished_items(record, failed(500, f"internal error: {type(error).__name__}: {error}"))
        await self._finish(record)

    async def _finish(self, record: RunRecord) -> None:
        live = self._live.get(record.run_id)
        try:
            self._record_end(record)
            await self.journaled(record)  # nobody hears of the end before it is durable
        except RunsLost:  # another replica took the run before its end was written: it finishes it
            self._drop(record)
        except RunRefused as refused:  # its end cannot be kept: whoever waits hears it failed, and why
            record.item_outcomes = [outcome if isinstance(outcome, Failed) else failed(500, str(refused)) for outcome in record.item_outcomes]
            record.status = "failed"
        except Exception:  # noqa: BLE001 - the store could not keep the end: the run has ended here all the same
            log_event(logger, "run_end_not_stored", logging.ERROR, exc_info=True, run_id=record.run_id, trace_id=record.trace_id)
        finally:  # even if recording the end failed (a store error): a waiter must never hang
            if live is not None:
                live.wake_waiters()

    def _drop(self, record: RunRecord) -> None:
        self._forget(record)
        self._dropping.discard(record.run_id)
        self.runs.forget(record.run_id)
        log_event(logger, "run_dropped", run_id=record.run_id, trace_id=record.trace_id, orchestrator_id=self.orchestrator_id)

    def _forget(self, record: RunRecord) -> None:
        if self._live.pop(record.run_id, None) is not None and record.parent_run_id is None:
            self._top_level_live -= 1
        if record.submit_key is not None:
            self._live_by_submit_key.pop(record.submit_key, None)

    def _record_end(self, record: RunRecord) -> None:
        record.completed_ns = record.completed_ns or now_ns()
        record.record_event("run_completed", status=record.status)
        try:
            self.runs.ended(record)
        finally:  # a store that failed to keep it must not leave the run live and counted
            self._forget(record)
        metrics.RUNS.labels(record.status, record.flow_name or "").inc()
        metrics.RUN_DURATION.observe((record.completed_ns - record.created_ns) / 1e9)
        if self.runs.evictions > self._evictions_seen:
            metrics.RUN_STORE_EVICTIONS.inc(self.runs.evictions - self._evictions_seen)
            self._evictions_seen = self.runs.evictions
        log_event(
            logger,
            "run_finished",
            run_id=record.run_id,
            trace_id=record.trace_id,
            flow=record.flow_name,
            status=record.status,
            items=len(record.inputs),
            parent_run_id=record.parent_run_id,
        )

    async def wait(self, record: RunRecord) -> RunRecord:
        """The run once it has ended; one another replica runs (a sub-run taken over with its
        replica) is waited for through the store."""
        live = self._live.get(record.run_id)
        if live is not None:
            await live.finished()
            return record
        if record.finished or not self.runs.durable:
            return record
        return await self.wait_for_end(record, math.inf)

    async def wait_for_end(self, record: RunRecord, timeout_seconds: float) -> RunRecord:
        """The run once it has ended, or as it is after ``timeout_seconds``; a run another replica
        runs is waited for through its end's NOTIFY (re-read every few seconds, in case one was missed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        while not record.finished and (left := deadline - loop.time()) > 0:
            live = self._live.get(record.run_id)
            try:
                if live is not None:
                    await asyncio.wait_for(live.finished(), left)
                    return live.record
                await self._hear_of_end(record.run_id, min(left, REMOTE_WAIT_RECHECK_SECONDS))
            except TimeoutError:
                pass
            record = await self.get_run(record.run_id) or record
        return record

    async def _hear_of_end(self, run_id: str, timeout_seconds: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._end_waiters.setdefault(run_id, [])
        waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout_seconds)
        finally:
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters and self._end_waiters.get(run_id) is waiters:
                del self._end_waiters[run_id]

    async def run_subflow(
        self, prepared: PreparedFlow, inputs: list[Any], parent_run_id: str | None, max_concurrency: int | None = None, submit_key: str | None = None
    ) -> RunRecord:
        """A child run, waited for; with ``submit_key`` (the asking execution's), the child it
        already started before a restart is waited for instead of starting another."""
        existing = await self.submitted_run(submit_key) if submit_key is not None else None
        if existing is not None:
            return await self.wait(existing)
        parent = await self.get_run(parent_run_id) if parent_run_id else None
        return await self.wait(self.submit(prepared, inputs, max_concurrency=max_concurrency, parent=parent, submit_key=submit_key))

    @property
    def runs_in_flight(self) -> int:
        """Top-level runs not yet finished (a run's sub-runs are bounded by its nesting, so they are not counted)."""
        return self._top_level_live

    def is_live(self, run_id: str) -> bool:
        """Running in this process (not only stored: another replica's, or finished)."""
        return run_id in self._live

    async def get_run(self, run_id: str) -> RunRecord | None:
        live = self._live.get(run_id)
        return live.record if live is not None else await self.runs.get(run_id)

    async def list_runs(self, query: RunQuery) -> list[RunRecord]:
        """From the store; a run live here is shown as it is now."""
        listed = await self.runs.list(query)
        return [self._live[record.run_id].record if record.run_id in self._live else record for record in listed]

    async def cancel_anywhere(self, record: RunRecord) -> RunRecord:
        """Cancel a run wherever it runs: here, or by asking its owner (NOTIFY) and waiting a little for its end."""
        if record.run_id in self._live or record.finished or not self.runs.durable:
            return self.cancel(record)
        if not await self.runs.request_cancel(record.run_id):  # type: ignore[attr-defined]
            raise RunConflict(f"Run '{record.run_id}' cannot be cancelled (status: {record.status.capitalize()})")
        return await self.wait_for_end(record, REMOTE_CANCEL_WAIT_SECONDS)

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


def _fail_unfinished_items(record: RunRecord, failure: Failed) -> None:
    """The run ends failed: items that had not finished get ``failure``, finished ones keep their outcome."""
    record.item_outcomes = [failure if outcome is PENDING else outcome for outcome in record.item_outcomes]
    record.status = "failed"
