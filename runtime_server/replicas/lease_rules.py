"""When a replica renews its lease, when it must take its lease as lost, and how often it looks
for dead peers: pure, with the clock passed in (table tests in tests/runtime_server/test_lease_rules.py).

A renewal is judged by when it was *sent*: the database extends the lease from its own clock
at the time it runs the renewal, which is no earlier, so "sent + TTL" is never later than the
real expiry. A replica that has not had a renewal confirmed for ``LOST_FRACTION`` of the TTL
stops working on its runs before any peer may take them; fencing (every write checks the
owner's epoch) keeps them safe even if it is slower than that.
"""

from __future__ import annotations

from dataclasses import dataclass

LOST_FRACTION = 0.9
"""Of the TTL without a confirmed renewal, after which a replica takes its lease as lost."""


@dataclass(frozen=True)
class LeaseRules:
    ttl: float
    check_interval: float

    @property
    def renew_every(self) -> float:
        return self.ttl / 3

    @property
    def tick(self) -> float:
        """How often the coordinator wakes: often enough for both renewals and checks."""
        return min(self.renew_every, self.check_interval) / 2

    def renew_due(self, now: float, last_sent: float) -> bool:
        return now - last_sent >= self.renew_every

    def lost(self, now: float, last_confirmed_sent: float) -> bool:
        """No renewal sent at or after ``last_confirmed_sent`` has been confirmed, for too long."""
        return now - last_confirmed_sent >= self.ttl * LOST_FRACTION

    def check_due(self, now: float, last_check: float) -> bool:
        return now - last_check >= self.check_interval
