"""The membership table: which pods exist, by instance id, and whether they take traffic.

Pure bookkeeping fed by discovery (DNS addresses and ``/health`` probe outcomes) and by
the forwarding path (in-flight counts, refused connections). Members are keyed by
instance id, not address, so a pod restarted on the same address is a new member and a
pinned request can never reach the wrong process. Member objects survive refreshes, so
their in-flight counts do too.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


class State(str, enum.Enum):
    ACTIVE = "active"
    """In DNS and healthy: takes new and pinned requests."""
    DRAINING = "draining"
    """Gone from DNS or reporting not-ready: takes pinned requests only, until its streams end."""
    GONE = "gone"
    """Dead (refused, or failed probes N times in a row) or drained: takes nothing."""


@dataclass(frozen=True)
class Healthy:
    instance_id: str


@dataclass(frozen=True)
class NotReady:
    instance_id: str


@dataclass(frozen=True)
class Refused:
    """Connection refused: nothing listens on the address any more."""


@dataclass(frozen=True)
class Failed:
    reason: str


ProbeOutcome = Healthy | NotReady | Refused | Failed


@dataclass(eq=False)
class Member:
    instance_id: str
    address: str
    state: State = State.ACTIVE
    in_dns: bool = True
    failures: int = 0
    in_flight: int = 0
    pinned: int = 0
    """Of the requests in flight, those pinned to this instance (its streams' callbacks)."""
    changed_at: float = 0.0

    def acquire(self, pinned: bool = False) -> None:
        self.in_flight += 1
        if pinned:
            self.pinned += 1

    def release(self, pinned: bool = False) -> None:
        """Never below zero, whatever order releases arrive in."""
        if self.in_flight > 0:
            self.in_flight -= 1
        if pinned and self.pinned > 0:
            self.pinned -= 1

    def view(self) -> dict[str, object]:
        return {
            "instance_id": self.instance_id,
            "address": self.address,
            "state": self.state.value,
            "in_dns": self.in_dns,
            "probe_failures": self.failures,
            "in_flight": self.in_flight,
            "pinned_streams": self.pinned,
        }


@dataclass
class Membership:
    """Members by instance id; ``version`` changes whenever the set of active members may have."""

    failure_threshold: int = 3
    gone_retention_seconds: float = 60.0
    clock: Callable[[], float] = lambda: 0.0
    members: dict[str, Member] = field(default_factory=dict)
    version: int = 0

    def find(self, instance_id: str) -> Member | None:
        return self.members.get(instance_id)

    def active(self) -> list[Member]:
        return sorted((m for m in self.members.values() if m.state is State.ACTIVE), key=lambda m: m.instance_id)

    def probe_targets(self, dns_addresses: Iterable[str]) -> list[str]:
        """DNS addresses plus those of live members that left DNS: they are probed until they end."""
        targets = dict.fromkeys(dns_addresses)
        for member in self.members.values():
            if member.state is not State.GONE:
                targets.setdefault(member.address)
        return list(targets)

    def refresh(self, dns_addresses: Iterable[str], probes: dict[str, ProbeOutcome]) -> None:
        """Apply one discovery round: the addresses DNS returned and the outcome of each probe.

        A member that left DNS drains: it keeps its pinned traffic while its streams last,
        and is gone one round after it has none.
        """
        in_dns = set(dns_addresses)
        idle_outside_dns = [m for m in self.members.values() if m.state is State.DRAINING and not m.in_dns and m.in_flight == 0]
        for address, outcome in probes.items():
            self._apply_probe(address, outcome, address in in_dns)
        for member in self.members.values():
            member.in_dns = member.address in in_dns
            if member.state is State.ACTIVE and not member.in_dns:
                self._move(member, State.DRAINING)
        for member in idle_outside_dns:
            if member.state is State.DRAINING and not member.in_dns and member.in_flight == 0:
                self._move(member, State.GONE)
        self._forget_old_gone()

    def connection_refused(self, member: Member) -> None:
        """The forwarding path found nothing listening: stop sending there before the next probe."""
        self._move(member, State.GONE)

    def view(self) -> list[dict[str, object]]:
        return [m.view() for m in sorted(self.members.values(), key=lambda m: (m.address, m.instance_id))]

    def _apply_probe(self, address: str, outcome: ProbeOutcome, in_dns: bool) -> None:
        current = [m for m in self.members.values() if m.address == address and m.state is not State.GONE]
        if isinstance(outcome, Healthy | NotReady):
            for other in current:
                if other.instance_id != outcome.instance_id:
                    self._move(other, State.GONE)  # a new process answers on this address
            wanted = State.ACTIVE if isinstance(outcome, Healthy) and in_dns else State.DRAINING
            member = self.members.get(outcome.instance_id)
            if member is None:
                member = self.members[outcome.instance_id] = Member(outcome.instance_id, address, State.GONE)
            member.address, member.failures = address, 0
            self._move(member, wanted)
        elif isinstance(outcome, Refused):
            for member in current:
                self._move(member, State.GONE)
        else:
            for member in current:
                member.failures += 1
                if member.failures >= self.failure_threshold:
                    self._move(member, State.GONE)

    def _move(self, member: Member, state: State) -> None:
        if member.state is not state:
            member.state, member.changed_at = state, self.clock()
            self.version += 1

    def _forget_old_gone(self) -> None:
        horizon = self.clock() - self.gone_retention_seconds
        for instance_id, member in list(self.members.items()):
            if member.state is State.GONE and member.in_flight == 0 and member.changed_at < horizon:
                del self.members[instance_id]
