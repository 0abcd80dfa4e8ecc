"""Issue 16 items 4 and 6: two runtimes on one PostgreSQL database, killed, frozen, restarted one
after the other and cut off from their database, with the hold pods' ledger as the witness
(hold_pod.py: every execution's start, completion or cancellation, with its attempt).

What every scenario asserts: each finished step completed exactly once (the ledger) and was
recorded once (one ``step_succeeded`` in the journal); an interrupted step ran again with
attempt + 1 on the replica that took the run; the run's output, owner and journal read the same
from every live replica.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.recovery.conftest import postgres_store
from tests.recovery.harness import TLS, PodSet, Rig, flow, from_input, from_step, step
from tests.recovery.replicas import FAILOVER_SECONDS, LEASE_TTL, POD_HOSTS, Replicas, follow_events, journal, replica_id, submit_anywhere
from tests.recovery.test_scenarios import assert_once, assert_resumed, spawning_flow, sub_runs, success
from tests.support.postgres import PostgresServer
from tests.support.waiting import wait_until

MakeReplicas = Callable[..., Replicas]


@pytest.fixture(scope="module")
def replica_pods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodSet]:
    """Hold pods of this module's own (127.0.0.232-233), shared by its tests."""
    pods = PodSet(tmp_path_factory.mktemp("replica-pods"), POD_HOSTS)
    try:
        yield pods
    finally:
        pods.stop()


@pytest.fixture
def make_replicas(tmp_path: Path, replica_pods: PodSet, running_postgres: PostgresServer) -> Iterator[MakeReplicas]:
    """``make_replicas(**options)``: replicas A and B on a fresh database of the module's own server, started."""
    made: list[Replicas] = []

    def make(**options: Any) -> Replicas:
        replicas = Replicas.make(tmp_path, postgres_store(running_postgres), replica_pods, **options)
        made.append(replicas)
        return replicas.start()

    yield make
    for replicas in made:
        replicas.stop()


def assert_recorded_once(replicas: Replicas, run_id: str, *step_ids: str) -> None:
    """Each step completed once in the ledger and has one ``step_succeeded`` in the journal."""
    rig = replicas.alive()[0]
    for step_id in step_ids:
        completions = rig.ledger.attempts("complete", step_id, run_id)
        succeeded = journal(rig, run_id, "step_succeeded", step_id)
        assert len(completions) == 1 and len(succeeded) == 1, f"step {step_id}: completed {completions}, journal {succeeded}{rig.ledger.tail()}"
        assert succeeded[0]["attempt"] == completions[0], (
            f"step {step_id}: the journal records attempt {succeeded[0]['attempt']}, the pod completed {completions}"
        )


def assert_taken_over(replicas: Replicas, run_id: str, by: int, taken_from: int) -> None:
    """Every replica names ``by`` the run's owner; its journal has one takeover, by ``by`` from ``taken_from``."""
    assert replicas.owner(run_id) == replica_id(by)
    recovered = journal(replicas[by], run_id, "run_recovered")
    expected = [(replica_id(by), f"taken over from {replica_id(taken_from)}")]
    assert [(event.get("instanceId"), event.get("status")) for event in recovered] == expected, recovered


def finish(replicas: Replicas, run_ids: list[str], *releases: str, seconds: float = 30.0) -> None:
    for name in releases:
        replicas.ledger.release(name)
    ended = replicas.wait_runs(run_ids, seconds)
    assert {run_id: details["status"] for run_id, details in ended.items() if details["status"] != "completed"} == {}, replicas.logs()


SEQUENTIAL = flow("sequential", [step("a", "hold", [from_input()]), step("b", "hold", [from_step("a")]), step("c", "hold", [from_step("b")])], "c")
PARALLEL = flow(
    "parallel",
    [
        step("a", "hold", [from_input()]),
        step("b", "hold", [from_step("a")]),
        step("b2", "hold", [from_step("b")]),
        step("c", "hold", [from_step("a")], add=2),
        step("e", "record", [from_step("b2"), from_step("c")], add=0),
    ],
    "e",
)


def test_failover_of_a_sequential_flow(make_replicas: MakeReplicas) -> None:
    """A killed while step b is held and left dead: B takes the run after the TTL, runs b again
    (attempt 2) and c, and a is not run again."""
    replicas = make_replicas()
    a, b = replicas
    run_id = a.submit(SEQUENTIAL, 10)
    replicas.ledger.release("a")
    replicas.ledger.wait_for("start", "b", run=run_id)
    a.kill_runtime()
    replicas.ledger.wait_for("cancelled", "b", run=run_id)
    replicas.ledger.wait_for("start", "b", run=run_id, min_attempt=2, seconds=FAILOVER_SECONDS)
    finish(replicas, [run_id], "b", "c")
    assert replicas.result(run_id) == success(13)
    assert_once(b, run_id, "a", "c")
    assert assert_resumed(b, run_id, "b") == 2
    assert_recorded_once(replicas, run_id, "a", "b", "c")
    assert_taken_over(replicas, run_id, by=1, taken_from=0)
    assert b.metric("runtime_runs_claimed_total") == 1
    assert b.metric("runtime_runs_recovered_total") == 1
    a.start_runtime()  # back with the same id: it reads the same run, and takes nothing back
    assert replicas.result(run_id) == success(13)
    assert_taken_over(replicas, run_id, by=1, taken_from=0)
    assert a.metric("runtime_runs_recovered_total") == 0


def test_failover_of_a_parallel_flow(make_replicas: MakeReplicas) -> None:
    """A killed while b2 and c are held side by side: B runs both again, e joins them once."""
    replicas = make_replicas()
    a, b = replicas
    run_id = a.submit(PARALLEL, 10)
    replicas.ledger.release("a")
    replicas.ledger.release("b")
    replicas.ledger.wait_for("start", "c", run=run_id)
    replicas.ledger.wait_for("start", "b2", run=run_id)
    a.kill_runtime()
    replicas.ledger.wait_for("cancelled", "b2", run=run_id)
    replicas.ledger.wait_for("cancelled", "c", run=run_id)
    replicas.ledger.wait_for("start", "b2", run=run_id, min_attempt=2, seconds=FAILOVER_SECONDS)
    replicas.ledger.wait_for("start", "c", run=run_id, min_attempt=2)
    finish(replicas, [run_id], "b2", "c")
    assert replicas.result(run_id) == success(13 + 13)
    assert_once(b, run_id, "a", "b", "e")
    assert_resumed(b, run_id, "b2")
    assert_resumed(b, run_id, "c")
    assert_recorded_once(replicas, run_id, "a", "b", "b2", "c", "e")
    assert_taken_over(replicas, run_id, by=1, taken_from=0)


def test_both_replicas_killed_and_restarted(make_replicas: MakeReplicas) -> None:
    """Three runs held on each replica, both killed at once, both started again: every run resumes
    (on whichever replica takes it first), each interrupted step again once, each step recorded once."""
    replicas = make_replicas()
    definition = flow("both", [step("a", "hold", [from_input()]), step("b", "record", [from_step("a")])], "b")
    run_ids = [replicas[index % 2].submit(definition, index) for index in range(6)]
    replicas.ledger.wait_for("start", "a", 6)
    assert [replicas.owner(run_id) for run_id in run_ids] == [replica_id(index % 2) for index in range(6)]
    for rig in replicas:
        rig.kill_runtime()
    replicas.ledger.wait_for("cancelled", "a", 6)
    replicas.start()
    replicas.ledger.wait_for("start", "a", 6, min_attempt=2, seconds=FAILOVER_SECONDS)
    finish(replicas, run_ids, "a")
    for value, run_id in enumerate(run_ids):
        assert replicas.result(run_id) == success(value + 2), f"run {run_id} (input {value})"
        assert_resumed(replicas[0], run_id, "a")
        assert_once(replicas[0], run_id, "b")
        assert_recorded_once(replicas, run_id, "a", "b")
        assert len(journal(replicas[0], run_id, "run_recovered")) == 1


def test_sub_run_in_flight_during_failover_is_reattached(make_replicas: MakeReplicas) -> None:
    """A killed while the sub-run's step is held: B takes parent and sub-run; the parent's step,
    run again, gets the same sub-run back (no second one), whose step completes once."""
    replicas = make_replicas()
    a, b = replicas
    parent = a.submit(spawning_flow("hold", hold_after=False), 5)
    child = replicas.ledger.wait_for("start", "inner")[0].run
    assert child is not None
    a.kill_runtime()
    replicas.ledger.wait_for("cancelled", "inner", run=child)
    replicas.ledger.wait_for("start", "inner", run=child, min_attempt=2, seconds=FAILOVER_SECONDS)
    replicas.ledger.wait_for("start", "p", run=parent, min_attempt=2)
    finish(replicas, [parent], "inner")
    assert replicas.result(parent) == success(7)
    assert {entry.raw["subRun"] for entry in replicas.ledger.entries("submitted", "p", parent)} == {child}
    assert {entry.run for entry in replicas.ledger.entries("start", "inner")} == {child}, "a second sub-run was created"
    assert_resumed(b, child, "inner")
    assert_resumed(b, parent, "p")
    assert sub_runs(b, "hold") == [child]
    assert_recorded_once(replicas, child, "inner")
    assert_taken_over(replicas, parent, by=1, taken_from=0)
    assert_taken_over(replicas, child, by=1, taken_from=0)


def test_frozen_replica_cannot_record_its_late_result(make_replicas: MakeReplicas) -> None:
    """A frozen (SIGSTOP) past its lease while step a is held; B takes the run and runs a again.
    A's attempt is released and answers A while A is frozen; A resumed (SIGCONT) finds its lease
    gone: its late result is not recorded, b is not dispatched by A, B alone finishes the run."""
    replicas = make_replicas()
    a, b = replicas
    run_id = a.submit(flow("frozen", [step("a", "hold", [from_input()]), step("b", "record", [from_step("a")])], "b"), 10)
    replicas.ledger.wait_for("start", "a", run=run_id)
    assert a.runtime is not None
    a.runtime.signal(signal.SIGSTOP)
    replicas.ledger.wait_for("start", "a", run=run_id, attempt=2, seconds=FAILOVER_SECONDS)
    replicas.ledger.release("a@1")
    replicas.ledger.wait_for("complete", "a", run=run_id, attempt=1)
    a.runtime.signal(signal.SIGCONT)
    lost = replicas.wait_log(0, "lease_lost")
    time.sleep(1.0)  # room for anything A would still do with the run
    finish(replicas, [run_id], "a@2")
    assert replicas.result(run_id) == success(12)
    succeeded = journal(b, run_id, "step_succeeded", "a")
    assert [event["attempt"] for event in succeeded] == [2], f"A's late result was recorded: {succeeded}"
    assert [event["attempt"] for event in journal(b, run_id, "step_started", "b")] == [1], journal(b, run_id, "step_started")
    assert replicas.ledger.attempts("start", "b", run_id) == [1], f"step b dispatched more than once{replicas.ledger.tail()}"
    assert replicas.ledger.attempts("start", "a", run_id) == [1, 2], "step a dispatched again after the takeover"
    assert_recorded_once(replicas, run_id, "b")
    assert_taken_over(replicas, run_id, by=1, taken_from=0)
    assert a.metric("runtime_lease_losses_total") >= 1, lost
    assert a.metric("runtime_runs_owned") == 0


def test_sigterm_finishes_what_it_can_and_hands_over_the_rest(make_replicas: MakeReplicas) -> None:
    """Two runs held on A, A given SIGTERM with a 2 s grace: new runs are refused at once (503, or
    no connection: uvicorn closes its listener at the signal), the run
    released within the grace finishes on A, the other is handed over when A exits (its lease
    released, so B takes it at its next check, not after the TTL) and runs again there."""
    replicas = make_replicas(grace=2.0)
    a, b = replicas
    definition = flow("drain", [step("a", "hold", [from_input()]), step("b", "record", [from_step("a")])], "b")
    finished, handed = a.submit(definition, 1), a.submit(definition, 2)
    replicas.ledger.wait_for("start", "a", 2)
    assert a.runtime is not None
    a.runtime.signal(signal.SIGTERM)
    replicas.wait_log(0, "runtime_draining")
    with httpx.Client(base_url=a.api, timeout=5.0, verify=TLS) as client:
        refused, _ = submit_anywhere([client, client], {"flow": definition, "input": [{"value": 3}], "wait": False}, 0)
    assert refused is None, "A took a new run after SIGTERM"
    replicas.ledger.release(f"{finished}.a")
    wait_until(lambda: a.runtime is None or not a.runtime.alive(), f"A never exited after its grace:\n{a.runtime_log()}", 10)
    exited = time.monotonic()
    replicas.ledger.wait_for("cancelled", "a", run=handed)
    replicas.ledger.wait_for("start", "a", run=handed, attempt=2, seconds=FAILOVER_SECONDS)
    taken_after = time.monotonic() - exited
    finish(replicas, [finished, handed], "a")
    assert (replicas.result(finished), replicas.result(handed)) == (success(3), success(4))
    assert replicas.owner(finished) == replica_id(0)
    assert_once(b, finished, "a", "b")
    assert_resumed(b, handed, "a")
    assert_recorded_once(replicas, handed, "a", "b")
    assert_taken_over(replicas, handed, by=1, taken_from=0)
    assert [entry.get("runs_left") for entry in replicas.log_events(0, "lease_released")] == [1]
    assert taken_after < LEASE_TTL / 2, f"B took the handed-over run {taken_after:.1f}s after A exited: it waited for the lease to expire"


LOAD_RUNS = 200
LOAD_SECONDS = 15.0


def steady_load(replicas: Replicas, flow_id: str, acknowledged: dict[str, int], retried: list[int], refused: list[int], stop: threading.Event) -> None:
    """``LOAD_RUNS`` runs over ``LOAD_SECONDS``, alternating replicas, a refused POST retried on the other
    (``retried``: the inputs that were; ``refused``: those both replicas refused)."""
    clients = [httpx.Client(base_url=rig.api, timeout=5.0, verify=TLS) for rig in replicas]
    try:
        started = time.monotonic()
        for value in range(LOAD_RUNS):
            if stop.is_set():
                return
            time.sleep(max(0.0, started + value * LOAD_SECONDS / LOAD_RUNS - time.monotonic()))
            run_id, tries = submit_anywhere(clients, {"flowId": flow_id, "input": [{"value": value}], "wait": False}, value % 2)
            if run_id is None:
                refused.append(value)
            else:
                acknowledged[run_id] = value
            if tries > 1:
                retried.append(value)
    finally:
        for client in clients:
            client.close()


def rolling_restart(rig: Rig) -> None:
    """SIGTERM (the replica drains), wait for its exit, start it again."""
    assert rig.runtime is not None
    rig.runtime.stop(grace=15.0)
    rig.start_runtime()


def test_rolling_restart_under_steady_load_loses_nothing(make_replicas: MakeReplicas) -> None:
    """200 runs over 15 s spread over A and B while A, then B, is stopped (SIGTERM: it drains) and
    started again: every run acknowledged completes with its output, each step once; none is refused
    by both, and some POSTs were refused by the replica restarting and taken by the other."""
    replicas = make_replicas()
    definition = flow("demo-like", [step("a", "record", [from_input()]), step("b", "record", [from_step("a")])], "b")
    flow_id = replicas[0].store_flow(definition)
    acknowledged: dict[str, int] = {}
    retried: list[int] = []
    refused: list[int] = []
    stop = threading.Event()
    load = threading.Thread(target=steady_load, args=(replicas, flow_id, acknowledged, retried, refused, stop), daemon=True)
    load.start()
    try:
        time.sleep(2.0)
        rolling_restart(replicas[0])
        rolling_restart(replicas[1])
    finally:
        load.join(LOAD_SECONDS + 20)
        stop.set()
    assert refused == [], f"runs refused by both replicas: {refused}"
    assert len(acknowledged) == LOAD_RUNS
    assert retried, "no POST was refused: the restarts did not happen under the load"
    ended = replicas.wait_runs(list(acknowledged))
    assert [run_id for run_id, details in ended.items() if details["status"] != "completed"] == []
    completions = replicas.ledger.by_run_step("complete")
    with replicas[1].client() as client:
        for run_id, value in acknowledged.items():
            items = client.get(f"/runs/{run_id}/items").json()["items"]
            assert items[0].get("result") == success(value + 2), f"run {run_id} (input {value}): {items}"
            assert (completions[(run_id, "a")], completions[(run_id, "b")]) == (1, 1), f"run {run_id}: steps completed more than once"
    owners = {replicas.owner(run_id) for run_id in list(acknowledged)[:: LOAD_RUNS // 10]}
    assert owners <= {replica_id(0), replica_id(1)}
    drained = [entry for index in (0, 1) for entry in replicas.log_events(index, "runtime_draining")]
    assert len(drained) == 2, f"each replica drained once: {drained}"


def confirmed_after_restart(replicas: Replicas) -> None:
    """Until each replica has had a lease renewal confirmed by the restarted database: a replica that
    lost its lease meanwhile (the restart can outlast 90% of the TTL) has dropped its runs and taken
    them back by then, so no step is released into a run being dropped (its answer would be
    discarded, rightly, and the step would complete twice on the pod)."""
    renewals = "runtime_lease_renewals_total"
    before = [rig.metric(renewals) for rig in replicas]
    wait_until(lambda: all(rig.metric(renewals) > count for rig, count in zip(replicas, before, strict=True)), "no renewal after the restart", 15)
    time.sleep(0.3)  # the dropped steps' cancellations reach the pod


@pytest.mark.parametrize("outage", ["restart", "crash"])
def test_database_restart_under_load(make_replicas: MakeReplicas, running_postgres: PostgresServer, outage: str) -> None:
    """Ten runs held on each replica, then the database restarted under them (``restart``: a fast
    shutdown and start; ``crash``: SIGKILL, down past the lease TTL, crash recovery at start): every
    run completes, each step completed and recorded once. In a crash both replicas lose their
    leases and drop their runs (their held steps cancelled); each run is then taken once, by its
    replica on a new epoch or by the peer that saw the lease expire first, and runs again there."""
    replicas = make_replicas()
    definition = flow("database", [step("a", "hold", [from_input()]), step("b", "record", [from_step("a")])], "b")
    flow_id = replicas[0].store_flow(definition)
    run_ids = [replicas[index % 2].submit(definition, index, flow_id) for index in range(20)]
    replicas.ledger.wait_for("start", "a", 20)
    if outage == "restart":
        running_postgres.restart()
        confirmed_after_restart(replicas)
    else:
        running_postgres.kill()
        for index in (0, 1):
            replicas.wait_log(index, "lease_lost")
        replicas.ledger.wait_for("cancelled", "a", 20)
        running_postgres.start()
        replicas.ledger.wait_for("start", "a", 20, min_attempt=2, seconds=FAILOVER_SECONDS)
    more = [replicas[index % 2].submit(definition, index, flow_id) for index in range(20, 24)]
    finish(replicas, run_ids + more, "a", seconds=60)
    completions = replicas.ledger.by_run_step("complete")
    for value, run_id in enumerate(run_ids + more):
        assert replicas.result(run_id) == success(value + 2), f"run {run_id} (input {value})"
        assert (completions[(run_id, "a")], completions[(run_id, "b")]) == (1, 1), f"run {run_id}: a step completed more than once"
        assert_recorded_once(replicas, run_id, "a", "b")
        assert len(journal(replicas[0], run_id, "run_completed")) == 1
        if outage == "crash" and value < 20:
            assert replicas.ledger.attempts("start", "a", run_id) == [1, 2], f"run {run_id}{replicas.ledger.tail()}"
            recovered = journal(replicas[0], run_id, "run_recovered")
            assert len(recovered) == 1, f"run {run_id} was taken more than once: {recovered}"


def test_any_replica_answers_for_a_run_another_runs(make_replicas: MakeReplicas) -> None:
    """A run held on A, seen from B: details, steps, the flow and the list; B's events stream follows
    it to its end; ``wait=true`` on B returns when A finishes it."""
    replicas = make_replicas()
    a, b = replicas
    run_id = a.submit(SEQUENTIAL, 1)
    replicas.ledger.release("a")
    replicas.ledger.wait_for("start", "b", run=run_id)
    assert (a.metric("runtime_runs_owned"), b.metric("runtime_runs_owned")) == (1, 0)
    assert (a.metric("runtime_steps_in_flight"), b.metric("runtime_steps_in_flight")) == (1, 0)
    details = b.get(f"/runs/{run_id}")
    assert (details["status"], details["orchestratorId"]) == ("running", replica_id(0)), details
    assert b.steps(run_id)["a"].get("status") == "completed", b.steps(run_id)
    assert b.get(f"/runs/{run_id}/flow")["flow"]["name"] == "sequential"
    assert run_id in [run["runId"] for run in b.get("/runs", flowName="sequential")["runs"]]
    streamed: list[dict[str, Any]] = []
    waited: list[tuple[float, dict[str, Any]]] = []
    stream = threading.Thread(target=lambda: streamed.extend(follow_events(b, run_id)), daemon=True)

    def wait_on_b() -> None:
        with b.client(timeout=30) as client:
            answer = client.get(f"/runs/{run_id}", params={"wait": "true", "timeoutSecs": 25}).json()
        waited.append((time.monotonic(), answer))

    waiter = threading.Thread(target=wait_on_b, daemon=True)
    stream.start()
    waiter.start()
    time.sleep(0.5)
    assert not waited, f"wait=true on B returned before the run ended: {waited}"
    replicas.ledger.release("b")
    replicas.ledger.release("c")
    replicas.ledger.wait_for("complete", "c", run=run_id)
    completed_at = time.monotonic()
    waiter.join(30)
    stream.join(30)
    assert waited and waited[0][1]["status"] == "completed", waited
    assert waited[0][0] - completed_at < 2.0, f"wait=true on B answered {waited[0][0] - completed_at:.1f}s after the run ended"
    kinds = [event["kind"] for event in streamed]
    assert kinds == [event["kind"] for event in a.events(run_id)] and kinds[-1] == "run_completed", kinds
    assert replicas.result(run_id) == success(4)


def test_cancel_sent_to_a_replica_reaches_the_owner(make_replicas: MakeReplicas) -> None:
    replicas = make_replicas()
    a, b = replicas
    run_id = a.submit(SEQUENTIAL, 1)
    replicas.ledger.wait_for("start", "a", run=run_id)
    with b.client() as client:
        response = client.post(f"/runs/{run_id}/cancel")
    assert response.status_code == 200, response.text
    replicas.ledger.wait_for("cancelled", "a", run=run_id)
    ended = replicas.wait_runs([run_id])
    assert ended[run_id]["status"] == "cancelled", ended
    assert {rig.get(f"/runs/{run_id}")["status"] for rig in replicas} == {"cancelled"}
    assert replicas.owner(run_id) == replica_id(0)
    assert replicas.ledger.attempts("complete", "a", run_id) == []
