"""When a replica renews, gives up its lease, and looks for dead peers (replicas/lease_rules.py, pure)."""

from __future__ import annotations

import pytest

from runtime_server.replicas.lease_rules import LeaseRules

RULES = LeaseRules(ttl=6.0, check_interval=1.0)


@pytest.mark.parametrize(("now", "last_sent", "due"), [(0.0, 0.0, False), (1.9, 0.0, False), (2.0, 0.0, True), (10.0, 9.0, False)])
def test_a_renewal_is_due_every_third_of_the_ttl(now: float, last_sent: float, due: bool) -> None:
    assert RULES.renew_due(now, last_sent) is due


@pytest.mark.parametrize(("now", "last_confirmed", "lost"), [(5.3, 0.0, False), (5.4, 0.0, True), (100.0, 99.0, False)])
def test_the_lease_is_taken_as_lost_before_a_peer_may_claim(now: float, last_confirmed: float, lost: bool) -> None:
    """Judged from when the confirmed renewal was sent: the database's expiry is never earlier than that + TTL."""
    assert RULES.lost(now, last_confirmed) is lost


@pytest.mark.parametrize(("rules", "tick"), [(RULES, 0.5), (LeaseRules(ttl=1.5, check_interval=1.0), 0.25), (LeaseRules(ttl=30.0, check_interval=5.0), 2.5)])
def test_the_loop_wakes_often_enough_for_both(rules: LeaseRules, tick: float) -> None:
    assert rules.tick == tick


def test_a_check_is_due_once_per_interval() -> None:
    assert not RULES.check_due(10.5, 10.0) and RULES.check_due(11.0, 10.0)
