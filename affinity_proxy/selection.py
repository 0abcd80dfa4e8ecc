"""Backend choice: round robin over active pods (least in-flight first), or the pinned pod.

Pure: reads the membership table, keeps only a cursor. The instance id of a pinned
request selects among members discovery found; it never names an address.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass, field

from affinity_proxy.membership import Member, Membership, State


class Decision(str, enum.Enum):
    ROUND_ROBIN = "round_robin"
    PINNED = "pinned"
    RETRY = "retry"
    INSTANCE_GONE = "instance_gone"
    NO_BACKENDS = "no_backends"


@dataclass(frozen=True)
class Route:
    decision: Decision
    member: Member | None = None
    instance_id: str | None = None
    """The instance a pinned request asked for (whether or not it was found)."""


PINNABLE = (State.ACTIVE, State.DRAINING)


@dataclass
class Selector:
    membership: Membership
    _cursor: int = 0
    _version: int = -1
    _active: list[Member] = field(default_factory=list)

    def route(self, instance_id: str | None, tried: Collection[Member] = ()) -> Route:
        """Where a request goes; ``tried`` are pods an unpinned request already failed on."""
        if instance_id is not None:
            member = self.membership.find(instance_id)
            if member is not None and member.state in PINNABLE:
                return Route(Decision.PINNED, member, instance_id)
            return Route(Decision.INSTANCE_GONE, member, instance_id)
        member = self.next_active(tried)
        if member is None:
            return Route(Decision.NO_BACKENDS)
        return Route(Decision.RETRY if tried else Decision.ROUND_ROBIN, member)

    def next_active(self, exclude: Collection[Member] = ()) -> Member | None:
        """The least-loaded active member, ties broken in round-robin order from the cursor."""
        active = self._current_active()
        count = len(active)
        best: Member | None = None
        best_index = 0
        for offset in range(count):
            index = (self._cursor + offset) % count
            member = active[index]
            if member in exclude:
                continue
            if best is None or member.in_flight < best.in_flight:
                best, best_index = member, index
        if best is not None:
            self._cursor = best_index + 1
        return best

    def _current_active(self) -> list[Member]:
        if self._version != self.membership.version:
            self._active = self.membership.active()
            self._version = self.membership.version
        return self._active
