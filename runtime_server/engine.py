"""Runs a prepared flow's items: schedules steps, routes them, calls plugins, applies onError.

One coroutine per item; a step becomes a task only when others are in flight with it
(a chain of steps runs without any task). The run's semaphore bounds step executions
in flight across all its items.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager as AsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runtime_server import metrics
from runtime_server.flow.model import Step
from runtime_server.flow.prepared import PreparedFlow
from runtime_server.flow.results import Failed, failed
from runtime_server.flow.scheduler import ItemScope, ready_steps
from runtime_server.plugins.base import ComponentFailed, ExecuteRequest, Plugin, TransportFailed
from runtime_server.retry import Backoff
from runtime_server.routing import Router, RoutingError
from runtime_server.runs.clock import now_ns
from runtime_server.runs.record import RunRecord
from runtime_server.runs.resume import Budget, RunResume, first_budget
from telemetry.logs import log_event
from telemetry.trace import TraceContext
from wire_protocol.messages import Observability

if TYPE_CHECKING:
    from runtime_server.callbacks import RunCallbacks

logger = logging.getLogger(__name__)
RERUN_BACKOFF = Backoff(first=0.05, factor=2.0, longest=0.5)
"""Pause before re-running a step whose execution was lost in transport (50 ms, 100 ms, ...)."""


@dataclass
class ActiveRun:
    record: RunRecord
    prepared: PreparedFlow
    variables: dict[str, Any]
    limiter: AsyncContextManager[Any]
    trace: TraceContext
    callbacks_for: Callable[[int, str], RunCallbacks]
    """What one execution of a step may ask of the runtime (item index, step id)."""
    journaled: Callable[[RunRecord], Awaitable[None]] | None = None
    """Returns once every journal entry so far is durable (a durable store); None in memory."""
    resume: RunResume | None = None
    """What a recovered run had done before the restart (runs/resume.py)."""


def limiter_for(max_concurrency: int | None) -> AsyncContextManager[Any]:
    """At most ``max_concurrency`` step executions at once (0 counts as 1); None: unbounded."""
    if max_concurrency is None:
        return contextlib.nullcontext()
    return asyncio.Semaphore(max(1, max_concurrency))


def component_failure(step: Step, component: str, message: str, cause: str) -> Failed:
    """Upstream's shape for a failed component call: code 500 and a two-level stack."""
    headline = f'step "{step.id}" failed'
    attachments = [f"Component: {component}", f"Component execution failed for step '{step.id}'", message]
    return failed(500, headline, {"stack": [{"error": headline, "attachments": attachments}, {"error": cause}]})


class Engine:
    def __init__(self, router: Router, plugins: dict[str, Plugin], step_attempts: int = 3, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._router = router
        self._plugins = plugins
        self._step_attempts = step_attempts
        self._sleep = sleep
        self._local_plugins = {name for name, plugin in plugins.items() if not getattr(plugin, "remote", True)}
        """Plugins that run in this process (builtin, mock): no request leaves, so no dispatch to journal first."""
        self.steps_in_flight = 0
        """Step executions in progress (the runtime_steps_in_flight gauge reads it)."""

    async def run_items(self, run: ActiveRun) -> None:
        inputs = run.record.inputs
        if len(inputs) == 1:
            await self._run_item(run, 0)
        else:
            await asyncio.gather(*(self._run_item(run, index) for index in range(len(inputs))))

    async def _run_item(self, run: ActiveRun, item_index: int) -> None:
        scope = ItemScope(run.record.inputs[item_index], run.variables)
        steps = run.prepared.flow.steps
        started: set[int] = set()
        if run.resume is not None:
            if run.resume.item_done(item_index):
                return
            started.update(run.resume.restore(item_index, scope.outcomes, run.prepared.flow.step_index))
        in_flight: dict[asyncio.Task[Any], int] = {}
        try:
            while True:
                ready = ready_steps(run.prepared, scope, started)
                started.update(ready)
                if not ready and not in_flight:
                    break
                if len(ready) == 1 and not in_flight:
                    scope.outcomes[steps[ready[0]].id] = await self._run_step(run, scope, item_index, ready[0])
                    continue
                for index in ready:
                    in_flight[asyncio.create_task(self._run_step(run, scope, item_index, index))] = index
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    scope.outcomes[steps[in_flight.pop(task)].id] = task.result()
        finally:
            for task in in_flight:
                task.cancel()
        outcome = run.prepared.flow.output.resolve(scope)
        record = run.record
        record.item_outcomes[item_index] = outcome
        record.item_completed_ns[item_index] = now_ns()
        record.record_event("item_completed", item_index=item_index, status=record.item_status(item_index), error=_error_json(outcome), outcome=outcome)

    async def _run_step(self, run: ActiveRun, scope: ItemScope, item_index: int, index: int) -> Any:
        step = run.prepared.flow.steps[index]
        record = run.record
        state = record.steps[step.id]
        state.status = "running"
        state.started_ns, state.completed_ns, state.instance_id, state.callbacks = now_ns(), None, None, None
        budget = first_budget(step, self._step_attempts, run.resume.interrupted(item_index, step.id) if run.resume is not None else None)
        state.attempt = budget.attempt
        if budget.recovered is not None:
            record.record_event(
                "step_retried", item_index=item_index, step_id=step.id, attempt=budget.attempt, status=budget.recovered, error=budget.interruption
            )
        elif budget.exhausted is None:
            record.record_event("step_started", item_index=item_index, step_id=step.id, attempt=budget.attempt)
        started = time.perf_counter()
        self.steps_in_flight += 1
        try:
            outcome = await self._execute(run, step, scope, item_index, budget)
        finally:
            self.steps_in_flight -= 1
        is_failed = isinstance(outcome, Failed)
        state.status = "failed" if is_failed else "completed"
        state.outcome = outcome
        state.completed_ns = now_ns()
        metrics.STEP_DURATION.labels("failed" if is_failed else "success").observe(time.perf_counter() - started)
        kind = "step_failed" if is_failed else "step_succeeded"
        record.record_event(
            kind,
            item_index=item_index,
            step_id=step.id,
            attempt=state.attempt,
            error=_error_json(outcome),
            instance_id=state.instance_id,
            outcome=outcome,
            callbacks=state.callbacks,
        )
        if is_failed:
            log_event(
                logger,
                "step_failed",
                logging.WARNING,
                run_id=record.run_id,
                step_id=step.id,
                trace_id=run.trace.trace_id,
                item_index=item_index,
                error=outcome.error.message,
            )
        return outcome

    async def _execute(self, run: ActiveRun, step: Step, scope: ItemScope, item_index: int, budget: Budget) -> Any:
        if budget.exhausted is not None:
            return step.on_error.default_value if step.on_error.action == "useDefault" else budget.exhausted
        step_input = step.input.resolve(scope)
        if isinstance(step_input, Failed):
            return step_input
        try:
            route = self._router.route(step.component, step_input)
        except RoutingError as error:
            return failed(500, f"error routing component: {error}", {"stack": [{"error": "error routing component", "attachments": [str(error)]}]})
        plugin = self._plugins[route.plugin]
        attempt, reruns_left, retries_left = budget.attempt, budget.reruns_left, budget.retries_left
        while True:
            outcome, retriable = await self._call(run, step, item_index, plugin, route.component, step_input, attempt)
            if not isinstance(outcome, Failed):
                return outcome
            if retriable and reruns_left > 0:
                reruns_left, reason = reruns_left - 1, "transport"
            elif retries_left > 0:
                retries_left, reason = retries_left - 1, "on_error_retry"
            elif step.on_error.action == "useDefault":
                return step.on_error.default_value
            else:
                return outcome
            metrics.RETRIES.labels(reason).inc()
            state = run.record.steps[step.id]
            run.record.record_event(
                "step_retried",
                item_index=item_index,
                step_id=step.id,
                attempt=attempt + 1,
                status=reason,
                error=_error_json(outcome),
                instance_id=state.instance_id,
            )
            state.attempt = attempt + 1
            log_event(logger, "step_retried", run_id=run.record.run_id, step_id=step.id, trace_id=run.trace.trace_id, attempt=attempt + 1, reason=reason)
            if reason == "transport":  # give a restarting proxy or a draining pod a moment
                await self._sleep(RERUN_BACKOFF.delay(self._step_attempts - 1 - reruns_left))
            attempt += 1

    async def _call(self, run: ActiveRun, step: Step, item_index: int, plugin: Plugin, component: str, step_input: Any, attempt: int) -> tuple[Any, bool]:
        """One execution: (outcome, whether a transport failure may succeed if re-run).

        With a durable store, the dispatch (its attempt) is journaled before the request
        leaves, and with it every result this step depends on."""
        if run.journaled is not None and plugin.name not in self._local_plugins:
            await run.journaled(run.record)
        span = run.trace.child()
        callbacks = run.callbacks_for(item_index, step.id)
        request = ExecuteRequest(
            component=component,
            input=step_input,
            attempt=attempt,
            observability=Observability(span.trace_id, span.span_id, run.record.run_id, run.record.flow_id, step.id),
            callbacks=callbacks,
            traceparent=span.traceparent(),
            tracestate=span.tracestate(),
            answered_by=callbacks.answered_by,
        )
        started = time.perf_counter()
        async with run.limiter:
            try:
                output = await plugin.execute(request)
                outcome, retriable, label = output, False, "failed" if isinstance(output, Failed) else "success"
            except ComponentFailed as error:
                outcome, retriable, label = component_failure(step, component, error.message, "error executing user-defined function"), False, "failed"
            except TransportFailed as error:
                outcome, retriable, label = (
                    component_failure(step, component, error.message, "error communicating with the component server"),
                    error.retriable,
                    "transport_error",
                )
            except Exception as error:  # noqa: BLE001 - a plugin bug must fail the step, never leave the run hanging
                log_event(
                    logger, "plugin_crashed", logging.ERROR, exc_info=True, run_id=run.record.run_id, step_id=step.id, plugin=plugin.name, component=component
                )
                message = f"plugin {plugin.name!r} failed unexpectedly: {type(error).__name__}: {error}"
                outcome, retriable, label = component_failure(step, component, message, "internal error in the plugin"), False, "internal_error"
        state = run.record.steps[step.id]
        state.instance_id, state.callbacks = callbacks.instance_id, callbacks.made  # this attempt's pod (None: none answered) and its callbacks
        metrics.COMPONENT_CALLS.labels(plugin.name, label).inc()
        metrics.COMPONENT_CALL_DURATION.labels(plugin.name).observe(time.perf_counter() - started)
        return outcome, retriable


def _error_json(outcome: Any) -> dict[str, Any] | None:
    if not isinstance(outcome, Failed):
        return None
    return {"code": outcome.error.code, "message": outcome.error.message}
