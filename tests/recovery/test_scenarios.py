"""Issue 15 item 8: the runtime (or a pod, or both) killed with SIGKILL while a chosen step is held,
on SQLite and on PostgreSQL. The hold pods' ledger is the witness: every execution's start,
completion or cancellation, with its attempt (hold_pod.py). "Completed" there means the
component returned its answer on a live connection: a held execution whose runtime died is
cancelled by the pod (its client disconnected), and ``crash_while`` waits for that before the
runtime comes back, so no answer can reach the dead runtime and count as done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.recovery.harness import ORCHESTRATOR_ID, PodSet, Rig, Store, flow, from_input, from_step, step

Make = Callable[..., Rig]


def success(value: float) -> dict[str, Any]:
    return {"outcome": "success", "result": {"value": value}}


def assert_recovered(rig: Rig, run_id: str, restarts: int = 1) -> None:
    """The run's journal says it was recovered, once per restart, naming the runtime that did it."""
    events = rig.events(run_id)
    recovered = [event for event in events if event.get("kind") == "run_recovered"]
    assert len(recovered) == restarts, f"run {run_id}'s journal has {len(recovered)} run_recovered entries, not {restarts}: {[e.get('kind') for e in events]}"
    assert all(ORCHESTRATOR_ID in str(event) for event in recovered), f"run_recovered does not name runtime {ORCHESTRATOR_ID}: {recovered}"


def assert_once(rig: Rig, run_id: str, *step_ids: str) -> None:
    """Each step started and completed exactly once, on attempt 1: it was not run again."""
    for step_id in step_ids:
        starts = rig.ledger.attempts("start", step_id, run_id)
        assert starts == [1], f"step {step_id} started {starts}{rig.ledger.tail()}"
        assert rig.ledger.attempts("complete", step_id, run_id) == [1], f"step {step_id} completed {rig.ledger.attempts('complete', step_id, run_id)}"


def assert_resumed(rig: Rig, run_id: str, step_id: str) -> int:
    """The interrupted step: held on attempt 1, completed exactly once, on a later attempt; that attempt."""
    starts = rig.ledger.attempts("start", step_id, run_id)
    completions = rig.ledger.attempts("complete", step_id, run_id)
    assert starts[0] == 1 and len(completions) == 1 and completions[0] >= 2, f"step {step_id}: started {starts}, completed {completions}{rig.ledger.tail()}"
    assert rig.steps(run_id)[step_id].get("attempt") == completions[0], f"/steps of run {run_id}: {rig.steps(run_id)[step_id]}"
    return completions[0]


def test_sequential_flow_resumes_at_the_interrupted_step(make_rig: Make, store: Store) -> None:
    rig = make_rig(store)
    definition = flow("sequential", [step("a", "hold", [from_input()]), step("b", "hold", [from_step("a")]), step("c", "hold", [from_step("b")])], "c")
    run_id = rig.submit(definition, 10)
    rig.ledger.release("a")
    rig.crash_while("b")
    rig.ledger.wait_for("start", "b", min_attempt=2)
    rig.ledger.release("b")
    rig.ledger.release("c")
    assert rig.wait_runs([run_id])[run_id]["status"] == "completed", rig.result(run_id)
    assert rig.result(run_id) == success(13)
    assert_once(rig, run_id, "a", "c")
    assert_resumed(rig, run_id, "b")
    assert rig.steps(run_id)["a"].get("attempt") == 1
    assert_recovered(rig, run_id)


def test_parallel_flow_resumes_its_branches_in_flight(make_rig: Make, store: Store) -> None:
    """a, then b -> b2 and c side by side, then e joins: killed while b2 and c are held (a and b done)."""
    steps = [
        step("a", "hold", [from_input()]),
        step("b", "hold", [from_step("a")]),
        step("b2", "hold", [from_step("b")]),
        step("c", "hold", [from_step("a")], add=2),
        step("e", "record", [from_step("b2"), from_step("c")], add=0),
    ]
    rig = make_rig(store)
    run_id = rig.submit(flow("parallel", steps, "e"), 10)
    rig.ledger.release("a")
    rig.ledger.release("b")
    rig.ledger.wait_for("start", "c")
    rig.crash_while("b2")
    rig.ledger.wait_for("cancelled", "c")
    rig.ledger.wait_for("start", "b2", min_attempt=2)
    rig.ledger.wait_for("start", "c", min_attempt=2)
    rig.ledger.release("b2")
    rig.ledger.release("c")
    assert rig.wait_runs([run_id])[run_id]["status"] == "completed", rig.result(run_id)
    assert rig.result(run_id) == success(13 + 13)
    assert_once(rig, run_id, "a", "b", "e")
    assert_resumed(rig, run_id, "b2")
    assert_resumed(rig, run_id, "c")
    assert_recovered(rig, run_id)


RUNS_IN_FLIGHT = 50


def test_many_runs_in_flight_each_step_completes_exactly_once(make_rig: Make, store: Store) -> None:
    rig = make_rig(store)
    definition = flow("many", [step("a", "record", [from_input()]), step("b", "hold", [from_step("a")])], "b")
    flow_id = rig.store_flow(definition)
    run_ids = [rig.submit(definition, value, flow_id) for value in range(RUNS_IN_FLIGHT)]
    rig.crash_while("b", RUNS_IN_FLIGHT)
    rig.ledger.wait_for("start", "b", RUNS_IN_FLIGHT, min_attempt=2)
    rig.ledger.release("b")
    ended = rig.wait_runs(run_ids)
    assert [run_id for run_id, details in ended.items() if details["status"] != "completed"] == []
    completions = rig.ledger.by_run_step("complete")
    for value, run_id in enumerate(run_ids):
        assert rig.result(run_id) == success(value + 2), f"run {run_id} (input {value})"
        counts = (completions[(run_id, "a")], completions[(run_id, "b")])
        assert counts == (1, 1), f"run {run_id}: steps a and b completed {counts} times"
    for run_id in run_ids:
        assert_recovered(rig, run_id)
    assert rig.metric("runtime_runs_recovered_total") == RUNS_IN_FLIGHT


def test_runs_acknowledged_just_before_the_kill_all_run(make_rig: Make, store: Store) -> None:
    """A run is durable before ``POST /runs`` answers: killed right after the last of 20 answers
    (most steps not started yet), the restarted runtime runs every one, each step once."""
    rig = make_rig(store)
    definition = flow("acknowledged", [step("a", "hold", [from_input()])], "a")
    flow_id = rig.store_flow(definition)
    run_ids = [rig.submit(definition, value, flow_id) for value in range(20)]
    rig.kill_runtime()
    started = rig.ledger.entries("start", "a")
    rig.ledger.wait_for("cancelled", "a", len(started))
    rig.ledger.release("a")
    rig.start_runtime()
    ended = rig.wait_runs(run_ids)
    assert [run_id for run_id, details in ended.items() if details["status"] != "completed"] == []
    completions = rig.ledger.by_run_step("complete")
    for value, run_id in enumerate(run_ids):
        assert rig.result(run_id) == success(value + 1), f"run {run_id} (input {value})"
        assert completions[(run_id, "a")] == 1, f"run {run_id}: step a completed {completions[(run_id, 'a')]} times"


def held_on(rig: Rig, step_id: str, run_id: str) -> str:
    """The pod holding the step's first attempt."""
    return rig.ledger.wait_for("start", step_id, run=run_id)[0].pod


def assert_ran_on(rig: Rig, run_id: str, step_id: str, pod: str) -> None:
    completed = rig.ledger.entries("complete", step_id, run_id)
    assert [entry.pod for entry in completed] == [pod], f"step {step_id} completed on {[entry.pod for entry in completed]}, not once on {pod}"
    instance = rig.steps(run_id)[step_id].get("instanceId") or ""
    assert instance.startswith(f"{pod}-"), f"/steps says step {step_id} ran on instance {instance!r}, the ledger says pod {pod}"


def other_pod(pod: str) -> str:
    return PodSet.name(1) if pod == PodSet.name(0) else PodSet.name(0)


def test_pod_crash_during_a_step_is_retried_on_another_pod(make_rig: Make, store: Store) -> None:
    rig = make_rig(store, pod_count=2)
    run_id = rig.submit(flow("pod-crash", [step("a", "record", [from_input()]), step("b", "hold", [from_step("a")])], "b"), 5)
    crashed = held_on(rig, "b", run_id)
    rig.pods.kill(crashed)
    survivor = other_pod(crashed)
    rig.ledger.wait_for("start", "b", run=run_id, min_attempt=2)
    rig.ledger.release("b")
    assert rig.wait_runs([run_id])[run_id]["status"] == "completed", rig.result(run_id)
    assert rig.result(run_id) == success(7)
    assert_once(rig, run_id, "a")
    assert rig.ledger.attempts("complete", "b", run_id) == [2]
    assert rig.steps(run_id)["b"].get("attempt") == 2, rig.steps(run_id)["b"]
    assert_ran_on(rig, run_id, "b", survivor)


def test_pod_that_stays_down_fails_the_run_after_its_retries(make_rig: Make, store: Store) -> None:
    rig = make_rig(store)
    run_id = rig.submit(flow("pod-down", [step("a", "hold", [from_input()])], "a"), 5)
    rig.pods.kill(held_on(rig, "a", run_id))
    assert rig.wait_runs([run_id], seconds=20)[run_id]["status"] == "failed"
    result = rig.result(run_id)
    assert result["outcome"] == "failed", result
    text = str(result["error"])
    assert "127.0.0.191" in text and ("cannot reach" in text or "broke" in text), f"the error does not say which pod could not be reached: {text}"
    assert rig.steps(run_id)["a"].get("attempt") == 3, f"stepAttempts is 3: {rig.steps(run_id)['a']}"
    assert rig.ledger.attempts("start", "a", run_id) == [1]


def test_pod_and_runtime_crashing_together(make_rig: Make, store: Store) -> None:
    rig = make_rig(store, pod_count=2)
    run_id = rig.submit(flow("both-crash", [step("a", "record", [from_input()]), step("b", "hold", [from_step("a")])], "b"), 5)
    crashed = held_on(rig, "b", run_id)
    rig.kill_runtime()
    rig.pods.kill(crashed)
    rig.start_runtime()
    rig.ledger.wait_for("start", "b", run=run_id, min_attempt=2)
    rig.ledger.release("b")
    assert rig.wait_runs([run_id])[run_id]["status"] == "completed", rig.result(run_id)
    assert rig.result(run_id) == success(7)
    assert_once(rig, run_id, "a")
    assert_resumed(rig, run_id, "b")
    assert_ran_on(rig, run_id, "b", other_pod(crashed))
    assert_recovered(rig, run_id)


def sub_flow(component: str) -> dict[str, Any]:
    inner = {"id": "inner", "component": f"/python/{component}", "input": {"values": {"$input": "values"}, "add": 1}}
    return {"schema": "https://stepflow.org/schemas/v1/flow.json", "name": f"sub-{component}", "steps": [inner], "output": {"$step": "inner"}}


def spawning_flow(component: str, hold_after: bool) -> dict[str, Any]:
    spawn = step("p", "spawn", [from_input()], flow={"$literal": sub_flow(component)}, holdAfter=hold_after)
    return flow(f"parent-{component}", [spawn], "p")


def sub_runs(rig: Rig, component: str) -> list[str]:
    """The runs of the sub-flow: runs/submit makes independent top-level runs (protocol.md §5.9), so by flow name."""
    return [run["runId"] for run in rig.get("/runs", flowName=f"sub-{component}")["runs"]]


def test_sub_run_in_flight_is_reattached(make_rig: Make, store: Store) -> None:
    """Killed while the sub-run's step is held: after the restart the parent's step, run again,
    gets the same sub-run back, whose step completes once."""
    rig = make_rig(store)
    parent = rig.submit(spawning_flow("hold", hold_after=False), 5)
    child = rig.ledger.wait_for("start", "inner")[0].run
    assert child is not None
    rig.crash_while("inner")
    rig.ledger.wait_for("start", "inner", min_attempt=2)
    rig.ledger.wait_for("start", "p", run=parent, min_attempt=2)
    rig.ledger.release("inner")
    assert rig.wait_runs([parent])[parent]["status"] == "completed", rig.result(parent)
    assert rig.result(parent) == success(7)
    assert {entry.raw["subRun"] for entry in rig.ledger.entries("submitted", "p", parent)} == {child}
    assert {entry.run for entry in rig.ledger.entries("start", "inner")} == {child}, "a second sub-run was created"
    assert_resumed(rig, child, "inner")
    assert sub_runs(rig, "hold") == [child]
    assert_recovered(rig, parent)
    assert_recovered(rig, child)


def test_sub_run_already_completed_is_not_run_again(make_rig: Make, store: Store) -> None:
    """Killed while the parent's step holds after its sub-run completed: the step, run again, gets
    the completed sub-run back; the sub-run's step ran once."""
    rig = make_rig(store)
    parent = rig.submit(spawning_flow("record", hold_after=True), 5)
    first = rig.ledger.wait_for("submitted", "p", run=parent)[0]
    assert first.raw["subStatus"] == "completed", first.raw
    rig.crash_while("p")
    rig.ledger.wait_for("submitted", "p", run=parent, min_attempt=2)
    rig.ledger.release("p")
    assert rig.wait_runs([parent])[parent]["status"] == "completed", rig.result(parent)
    assert rig.result(parent) == success(7)
    child = first.raw["subRun"]
    assert {entry.raw["subRun"] for entry in rig.ledger.entries("submitted", "p", parent)} == {child}
    assert rig.ledger.attempts("complete", "inner") == [1], f"the completed sub-run's step ran again{rig.ledger.tail()}"
    assert sub_runs(rig, "record") == [child]
    assert_resumed(rig, parent, "p")
    assert_recovered(rig, parent)
    assert_recovered(rig, child, restarts=0)


def test_on_error_retry_budget_continues_across_a_crash(make_rig: Make, store: Store) -> None:
    """maxAttempts 3, every attempt fails: attempt 1 fails, attempt 2 is held at the kill, so after
    the restart exactly one more (3) runs, never a fresh three. ``stepAttempts: 1`` leaves no
    transport re-runs, so the lost attempt can only be paid from the onError budget."""
    rig = make_rig(store, extra_config="stepAttempts: 1\n")
    retrying = step("a", "hold", [from_input()], failAttempts=[1, 2, 3], onError={"action": "retry", "maxAttempts": 3})
    run_id = rig.submit(flow("retry-budget", [retrying], "a"), 5)
    rig.ledger.release("a@1")
    rig.crash_while("a", attempt=2)
    rig.ledger.wait_for("start", "a", run=run_id, attempt=3)
    rig.ledger.release("a")
    assert rig.wait_runs([run_id])[run_id]["status"] == "failed", rig.result(run_id)
    assert rig.ledger.attempts("start", "a", run_id) == [1, 2, 3], rig.ledger.tail()
    assert rig.ledger.attempts("failed", "a", run_id) == [1, 3]
    assert "attempt 3 of step a fails" in str(rig.result(run_id)), rig.result(run_id)
    assert rig.steps(run_id)["a"].get("attempt") == 3, rig.steps(run_id)["a"]
    assert_recovered(rig, run_id)


def test_transport_budget_continues_across_crashes(make_rig: Make, store: Store) -> None:
    """``stepAttempts: 2``: the runtime killed during attempt 1 (re-run as 2, its last), then during
    attempt 2: the step is not run a third time, and the run fails saying why."""
    rig = make_rig(store, extra_config="stepAttempts: 2\n")
    run_id = rig.submit(flow("transport-budget", [step("a", "hold", [from_input()])], "a"), 5)
    rig.crash_while("a", attempt=1)
    rig.crash_while("a", attempt=2)
    assert rig.wait_runs([run_id])[run_id]["status"] == "failed", rig.result(run_id)
    assert rig.ledger.attempts("start", "a", run_id) == [1, 2], rig.ledger.tail()
    text = str(rig.result(run_id)).lower()
    assert "restart" in text and "attempt 2" in text, f"the error does not say the last attempt was lost to a restart: {text}"
    assert_recovered(rig, run_id, restarts=2)
