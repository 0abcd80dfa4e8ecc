"""Chaos scenarios: the fleet is broken on purpose while runs go through it (issue 7, item 1).

Real processes on loopback (tests/reliability/chaos_fleet.py): DNS, chaos pods, one affinity
proxy, the runtime with short plugin deadlines (total 4 s per attempt, 3 attempts). Every
scenario submits runs, breaks something, and then reads every run back through the REST
API. The verdict is the same each time: no run is lost (each id is found, terminal), none
hangs (terminal within a bound), each either succeeded — retried steps show attempt 2+ in
the run's journal — or failed with an error that says what happened; and no side effect
ran twice under the same attempt number (the pods' ledger of executions).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.chaos_fleet import ChaosFleet, Verdict, executions_by_pod, judge, one_step_flow, pod_address, same_attempt_twice

pytestmark = pytest.mark.timeout(60)

WORK = one_step_flow("/python/work", {"value": 0, "seconds": 0})
TALK = one_step_flow("/python/talk", {"value": 0, "rounds": 0, "callbacks": 0, "seconds": 0})
STEP_ATTEMPTS = 3
ATTEMPT_BOUND_SECONDS = 4 + 1 + 1
"""One attempt at most: the 4 s total deadline, up to ~1 s of 503/connect backoff, and slack."""
CLEAR_FAILURES = ("within the", "cannot reach", "broke", "answered HTTP 503", "was silent", "could not deliver", "was refused")
POD_A, POD_B, POD_C, POD_D = (pod_address(n) for n in range(4))


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[ChaosFleet]:
    fleet = ChaosFleet(tmp_path)
    yield fleet
    fleet.stop()


def submit_many(fleet: ChaosFleet, flow: dict[str, Any], inputs: list[dict[str, Any]]) -> list[str]:
    with httpx.Client(base_url=fleet.runtime_url, timeout=30) as client:
        return [fleet.submit(client, flow, run_input) for run_input in inputs]


def stream_runs(
    fleet: ChaosFleet, flow: dict[str, Any], make_input: Callable[[int], dict[str, Any]], seconds: float, actions: dict[float, Callable[[], object]]
) -> list[str]:
    """Submit a run every 40 ms for ``seconds`` while ``actions`` fire (each at its second, in its own thread)."""
    timers = [threading.Timer(at, action) for at, action in actions.items()]
    for timer in timers:
        timer.start()
    run_ids: list[str] = []
    ends = time.monotonic() + seconds
    try:
        with httpx.Client(base_url=fleet.runtime_url, timeout=30) as client:
            while time.monotonic() < ends:
                run_ids.append(fleet.submit(client, flow, make_input(len(run_ids))))
                time.sleep(0.04)
    finally:
        for timer in timers:
            timer.join()
    return run_ids


def check_verdict(fleet: ChaosFleet, run_ids: list[str]) -> Verdict:
    """The checks every scenario shares: none lost, none hung, outputs right, failures explained, no silent duplicate."""
    verdict = judge(fleet.runtime_url, run_ids, STEP_ATTEMPTS * ATTEMPT_BOUND_SECONDS + 10)
    assert sorted(verdict.runs) == sorted(run_ids), "a submitted run is missing"
    for run_id in run_ids:
        assert verdict.seconds(run_id) <= STEP_ATTEMPTS * ATTEMPT_BOUND_SECONDS, f"run {run_id} took {verdict.seconds(run_id):.1f}s"
    for number, run_id in enumerate(run_ids):
        if verdict.runs[run_id]["status"] == "completed":
            assert verdict.results[run_id]["result"]["value"] == number, verdict.results[run_id]
    unexplained = {run_id: error for run_id, error in verdict.errors.items() if not any(phrase in error for phrase in CLEAR_FAILURES)}
    assert not unexplained, unexplained
    assert not same_attempt_twice(fleet.ledger()), same_attempt_twice(fleet.ledger())
    return verdict


def assert_retried_elsewhere(fleet: ChaosFleet, verdict: Verdict, broken_pod: str) -> None:
    """Some runs ran again (attempt 2+ in their journal), finally on another pod than the broken one,
    and whatever the broken pod ran of them carries an earlier attempt number."""
    retried = verdict.retried()
    assert retried, "no step ran a second attempt: the fault did not land in the middle of a step"
    broken = f"chaos-pod-{broken_pod.rsplit('.', 1)[1]}"
    seen_on_broken = 0
    for run_id in retried:
        executions = sorted((entry["attempt"], entry["pod"]) for entry in fleet.ledger() if entry["run_id"] == run_id)
        last_attempt, last_pod = executions[-1]
        assert last_attempt >= 2 and last_pod != broken, executions
        seen_on_broken += sum(1 for attempt, pod in executions if pod == broken and attempt < last_attempt)
    assert seen_on_broken, "no retried step had started on the broken pod"


def work_input(seconds: float) -> Callable[[int], dict[str, Any]]:
    return lambda number: {"value": number, "seconds": seconds}


def talk_input(rounds: int, callbacks: int, seconds: float) -> Callable[[int], dict[str, Any]]:
    return lambda number: {"value": number, "rounds": rounds, "callbacks": callbacks, "seconds": seconds}


# -- pods dying -----------------------------------------------------------------------


def kill_a_pod_mid_runs(fleet: ChaosFleet, flow: dict[str, Any], make_input: Callable[[int], dict[str, Any]], runs: int, after: float) -> Verdict:
    """Three pods, ``runs`` runs at once, pod A SIGKILLed ``after`` seconds later: all succeed, some on a second attempt."""
    fleet.start([POD_A, POD_B, POD_C])
    run_ids = submit_many(fleet, flow, [make_input(n) for n in range(runs)])
    time.sleep(after)
    fleet.kill_pod(POD_A)
    verdict = check_verdict(fleet, run_ids)
    assert verdict.with_status("completed") == run_ids, verdict.errors
    assert_retried_elsewhere(fleet, verdict, POD_A)
    return verdict


def test_pod_killed_mid_plain_execution_runs_the_step_again_on_another_pod(fleet: ChaosFleet) -> None:
    kill_a_pod_mid_runs(fleet, WORK, work_input(0.8), 30, 0.4)


def test_pod_killed_mid_bidirectional_execution_runs_the_step_again_on_another_pod(fleet: ChaosFleet) -> None:
    kill_a_pod_mid_runs(fleet, TALK, talk_input(4, 1, 0.2), 30, 0.4)


def test_pod_killed_while_its_callbacks_are_in_flight(fleet: ChaosFleet) -> None:
    """Sixty rounds of eight concurrent blobs/put per run, 10 ms apart: the kill lands with callback answers on their way."""
    kill_a_pod_mid_runs(fleet, TALK, talk_input(60, 8, 0.01), 15, 0.3)
    assert "execute_transport_failed" in fleet.runtime.log(200_000)  # type: ignore[union-attr]  # the fleet fixture has started the runtime


# -- membership changing --------------------------------------------------------------


def test_pod_added_and_pod_removed_from_dns_while_runs_stream(fleet: ChaosFleet) -> None:
    fleet.start([POD_A, POD_B])
    removed_at: list[float] = []

    def remove_a() -> None:
        fleet.unpublish(POD_A)
        removed_at.append(time.time())

    run_ids = stream_runs(fleet, TALK, talk_input(2, 1, 0.1), 6.0, {1.0: lambda: fleet.add_pod(POD_C), 2.5: remove_a})
    verdict = check_verdict(fleet, run_ids)
    assert verdict.with_status("completed") == run_ids, verdict.errors
    assert not verdict.retried(), "a membership change made a step run twice"
    ledger = fleet.ledger()
    assert executions_by_pod(ledger)["chaos-pod-103"] > 0, "the added pod never got work"
    late_on_removed = [entry for entry in ledger if entry["pod"] == "chaos-pod-101" and entry["at"] > removed_at[0] + 2.0]
    assert not late_on_removed, f"the pod removed from DNS still got new work: {late_on_removed[:3]}"


def test_dns_down_for_a_while_keeps_the_last_membership(fleet: ChaosFleet) -> None:
    fleet.start([POD_A, POD_B])
    fleet.dns_down()
    time.sleep(1.5)  # three refresh rounds fail
    during = stream_runs(fleet, WORK, work_input(0.05), 3.0, {})
    ledger = fleet.ledger()
    assert set(executions_by_pod(ledger)) == {"chaos-pod-101", "chaos-pod-102"}, "a pod was dropped while DNS was down"
    fleet.add_pod(POD_C)
    fleet.dns_up()
    time.sleep(1.5)
    after = stream_runs(fleet, WORK, lambda n: work_input(0.05)(len(during) + n), 2.0, {})
    verdict = check_verdict(fleet, during + after)
    assert verdict.with_status("completed") == during + after, verdict.errors
    assert executions_by_pod(fleet.ledger())["chaos-pod-103"] > 0, "the pod published while DNS was down was never found"


# -- the proxy dying ------------------------------------------------------------------


def test_proxy_killed_and_restarted_on_its_address(fleet: ChaosFleet) -> None:
    """The runtime names one proxy URL (config.md), so the proxy comes back on the same address."""
    fleet.start([POD_A, POD_B, POD_C])
    plain = stream_runs(fleet, WORK, work_input(0.5), 4.0, {1.5: lambda: fleet.restart_proxy(down_seconds=0.3)})
    bidirectional = stream_runs(fleet, TALK, lambda n: talk_input(3, 2, 0.15)(len(plain) + n), 4.0, {1.5: lambda: fleet.restart_proxy(down_seconds=0.3)})
    verdict = check_verdict(fleet, plain + bidirectional)
    assert verdict.with_status("completed") == plain + bidirectional, verdict.errors
    assert set(verdict.retried()) & set(plain) and set(verdict.retried()) & set(bidirectional), "no step was in flight through the proxy when it died"


def test_a_killed_proxy_is_failed_over_to_the_other(tmp_path: Path) -> None:
    """Two proxies (the runtime's plugin has both URLs): one dies for good mid-stream; its calls
    in flight run again through the other, new calls skip it, and every run completes."""
    fleet = ChaosFleet(tmp_path, proxy_ports=(8080, 8081))
    try:
        fleet.start([POD_A, POD_B, POD_C])
        plain = stream_runs(fleet, WORK, work_input(0.5), 4.0, {1.5: fleet.kill_proxy})
        after = stream_runs(fleet, TALK, lambda n: talk_input(3, 2, 0.15)(len(plain) + n), 2.0, {})
        verdict = check_verdict(fleet, plain + after)
        assert verdict.with_status("completed") == plain + after, verdict.errors
        assert set(verdict.retried()) & set(plain), "no step was in flight through the proxy when it died"
        assert not fleet.proxies[8080].alive()
    finally:
        fleet.stop()


# -- pods misbehaving -----------------------------------------------------------------


def test_hung_pod_is_ended_by_the_runtime_deadline_and_the_step_runs_elsewhere(fleet: ChaosFleet) -> None:
    fleet.start([POD_A, POD_B, POD_C])
    fleet.pause_pod(POD_A)
    run_ids = submit_many(fleet, WORK, [work_input(0.0)(n) for n in range(12)])
    verdict = check_verdict(fleet, run_ids)
    assert verdict.with_status("completed") == run_ids, verdict.errors
    fleet.resume_pod(POD_A)  # the hung pod wakes up and runs what it had accepted: attempt 1
    time.sleep(1.0)
    assert not same_attempt_twice(fleet.ledger())
    assert_retried_elsewhere(fleet, verdict, POD_A)


def test_every_pod_hung_fails_runs_with_a_clear_error_within_their_deadline(fleet: ChaosFleet) -> None:
    fleet.start([POD_A])
    fleet.pause_pod(POD_A)
    run_ids = submit_many(fleet, WORK, [work_input(0.0)(n) for n in range(3)])
    verdict = check_verdict(fleet, run_ids)
    assert verdict.with_status("failed") == run_ids
    assert all(len([e for e in events if e["kind"] == "step_retried"]) == STEP_ATTEMPTS - 1 for events in verdict.events.values())


def test_slow_pods_within_and_beyond_the_deadline(fleet: ChaosFleet) -> None:
    """A pod 1 s slow only delays runs; a pod 6 s slow (deadline 4 s) has its steps run again.

    The 6 s pod is slow for first attempts only: round-robin does not know which pod timed out,
    so a re-run may land on it again, and the test must not depend on where it lands.
    """
    fleet.add_pod(POD_A, delay=6.0, delay_attempts=1)
    fleet.add_pod(POD_B, delay=1.0)
    fleet.start([POD_C])
    run_ids = submit_many(fleet, WORK, [work_input(0.0)(n) for n in range(15)])
    verdict = check_verdict(fleet, run_ids)
    assert verdict.with_status("completed") == run_ids, verdict.errors
    ledger = fleet.ledger()
    last_attempt = {entry["run_id"]: max(e["attempt"] for e in ledger if e["run_id"] == entry["run_id"]) for entry in ledger}
    timed_out = {entry["run_id"] for entry in ledger if entry["pod"] == "chaos-pod-101" and entry["attempt"] == 1}
    assert timed_out, "no first attempt landed on the 6 s slow pod: the scenario did not happen"
    assert all(last_attempt[run_id] >= 2 for run_id in timed_out), "a step past its deadline was not run again"
    assert set(verdict.retried()) == timed_out, "only the steps that started on the 6 s slow pod had to run again"
    on_slow_pod = [entry for entry in ledger if entry["pod"] == "chaos-pod-102"]
    assert on_slow_pod and all(entry["attempt"] == last_attempt[entry["run_id"]] for entry in on_slow_pod), "a step on the 1 s slow pod had to run again"


def test_full_pods_answer_503_and_nothing_runs_twice(fleet: ChaosFleet) -> None:
    """Five slots for twelve runs: the proxy tries both pods, then answers 503 and the runtime backs off."""
    fleet.deadlines["connectRetries"] = 6
    fleet.add_pod(POD_A, max_concurrency=1)
    fleet.add_pod(POD_B, max_concurrency=4)
    fleet.start([])
    run_ids = submit_many(fleet, WORK, [work_input(0.3)(n) for n in range(12)])
    verdict = check_verdict(fleet, run_ids)
    assert verdict.with_status("completed") == run_ids, verdict.errors
    assert sorted(entry["run_id"] for entry in fleet.ledger()) == sorted(run_ids), "a 503 is a refusal: every run's step ran exactly once"
    assert "answered HTTP 503" in fleet.runtime.log(200_000), "no pod was ever full: the scenario did not happen"  # type: ignore[union-attr]  # the fleet fixture has started the runtime
