"""Pure cores: the membership table and backend choice, table-driven, no sockets."""

from __future__ import annotations

import pytest

from affinity_proxy.membership import Failed, Healthy, Membership, NotReady, ProbeOutcome, Refused, State
from affinity_proxy.routing import Decision, Outcome, Route, Selector, give_up, may_retry, unroutable

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def table(*addresses: str) -> Membership:
    membership = Membership(failure_threshold=3, gone_retention_seconds=60, clock=Clock())
    membership.refresh(addresses, {address: Healthy(f"pod-{address}") for address in addresses})
    return membership


def states(membership: Membership) -> dict[str, str]:
    return {m.instance_id: m.state.value for m in membership.members.values()}


@pytest.mark.parametrize(
    ("dns", "probes", "expected"),
    [
        ([A, B], {A: Healthy("pod-A"), B: Healthy("pod-B")}, {"pod-A": "active", "pod-B": "active"}),
        ([A], {A: NotReady("pod-A")}, {"pod-A": "draining"}),
        ([A], {A: Failed("timeout")}, {}),
        ([A], {A: Refused()}, {}),
    ],
)
def test_first_round(dns: list[str], probes: dict[str, ProbeOutcome], expected: dict[str, str]) -> None:
    membership = Membership()
    membership.refresh(dns, probes)
    assert states(membership) == expected


def test_refused_connection_means_gone_at_once() -> None:
    membership = table(A, B)
    membership.refresh([A, B], {A: Refused(), B: Healthy(f"pod-{B}")})
    assert states(membership) == {f"pod-{A}": "gone", f"pod-{B}": "active"}


def test_failed_probes_count_up_to_the_threshold() -> None:
    membership = table(A)
    for expected in ("active", "active", "gone"):
        membership.refresh([A], {A: Failed("timeout")})
        assert states(membership)[f"pod-{A}"] == expected


def test_a_good_probe_resets_the_failure_count() -> None:
    membership = table(A)
    for outcome in (Failed("t"), Failed("t"), Healthy(f"pod-{A}"), Failed("t"), Failed("t")):
        membership.refresh([A], {A: outcome})
    assert states(membership)[f"pod-{A}"] == "active"


def test_leaving_dns_drains_until_streams_end_then_gone() -> None:
    membership = table(A, B)
    member = membership.find(f"pod-{A}")
    assert member is not None
    member.acquire()
    membership.refresh([B], {A: Healthy(f"pod-{A}"), B: Healthy(f"pod-{B}")})
    assert member.state is State.DRAINING and not member.in_dns
    membership.refresh([B], {A: Healthy(f"pod-{A}"), B: Healthy(f"pod-{B}")})
    assert member.state is State.DRAINING, "a stream is still open"
    member.release()
    membership.refresh([B], {A: Healthy(f"pod-{A}"), B: Healthy(f"pod-{B}")})
    assert member.state is State.GONE


def test_probe_targets_include_draining_members_outside_dns() -> None:
    membership = table(A, B)
    membership.refresh([B], {A: Healthy(f"pod-{A}"), B: Healthy(f"pod-{B}")})
    assert membership.probe_targets([B]) == [B, A]


def test_new_process_on_the_same_address_replaces_the_old_instance() -> None:
    membership = table(A)
    membership.refresh([A], {A: Healthy("pod-A-restarted")})
    assert states(membership) == {f"pod-{A}": "gone", "pod-A-restarted": "active"}


def test_in_flight_counts_survive_refreshes_and_never_go_negative() -> None:
    membership = table(A)
    member = membership.find(f"pod-{A}")
    assert member is not None
    member.acquire()
    membership.refresh([A], {A: Healthy(f"pod-{A}")})
    assert membership.find(f"pod-{A}") is member and member.in_flight == 1
    member.release()
    member.release()
    assert member.in_flight == 0


def test_gone_members_are_forgotten_after_the_retention() -> None:
    clock = Clock()
    membership = Membership(gone_retention_seconds=10, clock=clock)
    membership.refresh([A], {A: Healthy("a")})
    membership.refresh([A], {A: Refused()})
    clock.now = 11
    membership.refresh([], {})
    assert membership.find("a") is None


def test_round_robin_spreads_in_order() -> None:
    selector = Selector(table(A, B, C))
    chosen = [selector.route(None).member.address for _ in range(6)]  # type: ignore[union-attr]  # a table with an active member always routes to one
    assert chosen == [A, B, C, A, B, C]


def test_least_in_flight_wins_over_round_robin_order() -> None:
    membership = table(A, B, C)
    selector = Selector(membership)
    for address in (A, B):
        member = membership.find(f"pod-{address}")
        assert member is not None
        member.acquire()
    assert {selector.route(None).member.address for _ in range(3)} == {C}  # type: ignore[union-attr]  # a table with an active member always routes to one


def test_retry_skips_pods_already_tried_and_says_so() -> None:
    membership = table(A, B)
    selector = Selector(membership)
    first = selector.route(None)
    second = selector.route(None, tried=[first.member])  # type: ignore[list-item]  # a table with an active member always routes to one
    assert second.decision is Decision.RETRY and second.member is not first.member
    assert selector.route(None, tried=[first.member, second.member]).decision is Decision.NO_BACKENDS  # type: ignore[list-item]  # a table with an active member always routes to one


@pytest.mark.parametrize(
    ("probe", "in_dns", "decision"),
    [
        (Healthy("pod-A"), True, Decision.PINNED),
        (Healthy("pod-A"), False, Decision.PINNED),  # draining still takes its callbacks
        (NotReady("pod-A"), True, Decision.PINNED),
        (Refused(), True, Decision.INSTANCE_GONE),
    ],
)
def test_pinned_requests_go_to_their_instance_only(probe: ProbeOutcome, in_dns: bool, decision: Decision) -> None:
    membership = Membership()
    membership.refresh([A], {A: Healthy("pod-A")})
    membership.find("pod-A").acquire()  # type: ignore[union-attr]  # pod-A was refreshed into the table just above
    membership.refresh([A] if in_dns else [], {A: probe})
    route = Selector(membership).route("pod-A")
    assert route.decision is decision
    if decision is Decision.PINNED:
        assert route.member is membership.find("pod-A")


def test_unknown_instance_and_empty_fleet() -> None:
    selector = Selector(Membership())
    assert selector.route("nobody").decision is Decision.INSTANCE_GONE
    assert selector.route("nobody").member is None
    assert selector.route(None).decision is Decision.NO_BACKENDS


@pytest.mark.parametrize(
    ("decision", "outcome", "attempts", "retry"),
    [
        (Decision.ROUND_ROBIN, Outcome.POD_FULL, 1, True),
        (Decision.ROUND_ROBIN, Outcome.CONNECT_REFUSED, 1, True),
        (Decision.RETRY, Outcome.CONNECT_FAILED, 2, True),
        (Decision.RETRY, Outcome.CONNECT_FAILED, 3, False),
        (Decision.ROUND_ROBIN, Outcome.UPSTREAM_FAILED, 1, False),
        (Decision.ROUND_ROBIN, Outcome.BROKEN, 1, False),
        (Decision.ROUND_ROBIN, Outcome.COMPLETED, 1, False),
        (Decision.PINNED, Outcome.CONNECT_REFUSED, 1, False),
        (Decision.PINNED, Outcome.POD_FULL, 1, False),
    ],
)
def test_the_one_retry_rule(decision: Decision, outcome: Outcome, attempts: int, retry: bool) -> None:
    member = table(A).members[f"pod-{A}"]
    assert may_retry(Route(decision, member), outcome, attempts, max_attempts=3) is retry


@pytest.mark.parametrize(
    ("decision", "outcome", "status", "answered_decision", "retryable"),
    [
        (Decision.PINNED, Outcome.CONNECT_REFUSED, 503, "instance_gone", False),
        (Decision.ROUND_ROBIN, Outcome.POD_FULL, 503, "retry", True),
        (Decision.ROUND_ROBIN, Outcome.CONNECT_FAILED, 502, "round_robin", True),
        (Decision.PINNED, Outcome.UPSTREAM_FAILED, 502, "pinned", False),
        (Decision.ROUND_ROBIN, Outcome.TOO_LARGE, 413, "rejected", False),
    ],
)
def test_what_the_proxy_answers_when_it_gives_up(decision: Decision, outcome: Outcome, status: int, answered_decision: str, retryable: bool) -> None:
    member = table(A).members[f"pod-{A}"]
    refusal = give_up(Route(decision, member), outcome, attempts=3, max_body_bytes=10)
    assert refusal is not None
    assert (refusal.status, refusal.decision, refusal.retryable) == (status, answered_decision, retryable)
    assert refusal.retry_after is (status == 503)


def test_nothing_to_say_when_the_pod_answered_or_the_client_left() -> None:
    member = table(A).members[f"pod-{A}"]
    assert give_up(Route(Decision.PINNED, member), Outcome.COMPLETED, 1, 10) is None
    assert give_up(Route(Decision.PINNED, member), Outcome.BROKEN, 1, 10) is None


def test_unroutable_answers_name_the_instance_or_the_attempts() -> None:
    gone = unroutable(Route(Decision.INSTANCE_GONE, None, "pod-x"), 0)
    assert (gone.status, gone.decision, gone.instance_id, gone.retryable) == (503, "instance_gone", "pod-x", False)
    assert "after 2 attempts" in unroutable(Route(Decision.NO_BACKENDS), 2).message
