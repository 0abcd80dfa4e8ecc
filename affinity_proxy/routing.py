"""Where a request goes and what a failed attempt leads to: the proxy's whole routing policy.

Pure: reads the membership table, keeps only a round-robin cursor, does no I/O. A request
without ``Stepflow-Instance-Id`` goes to the least-loaded active pod (ties in round-robin
order); a pinned one to its instance if active or draining, never elsewhere (the id only
selects among members discovery found; it never names an address). After an attempt,
``may_retry`` is the one retry rule and ``give_up`` says what the proxy answers itself.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final

from affinity_proxy.membership import Member, Membership, State


class Decision(str, enum.Enum):
    __hash__ = str.__hash__  # Enum's own hashes in Python; equal to its value, so the value's hash is right

    ROUND_ROBIN = "round_robin"
    PINNED = "pinned"
    RETRY = "retry"
    INSTANCE_GONE = "instance_gone"
    NO_BACKENDS = "no_backends"


class Outcome(str, enum.Enum):
    """How one attempt on one pod ended (a str, so a log line takes it as is)."""

    __hash__ = str.__hash__

    COMPLETED = "completed"
    POD_FULL = "pod_full"
    """The pod answered 503 to an unpinned request whose body can be replayed."""
    CONNECT_REFUSED = "connect_refused"
    CONNECT_FAILED = "connect_failed"
    UPSTREAM_FAILED = "upstream_failed"
    """The pod went away after the request was sent, before any answer."""
    BROKEN = "broken"
    """The pod or the client went away mid-answer; the client connection is closed."""
    TOO_LARGE = "too_large"


@dataclass(frozen=True, eq=False)
class Route:
    """Compared and hashed by identity: the selector makes each route to a member once (accounting keys on it)."""

    decision: Decision
    member: Member | None = None
    instance_id: str | None = None
    """The instance a pinned request asked for (whether or not it was found)."""

    unroutable: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "unroutable", self.member is None or self.decision is Decision.INSTANCE_GONE)

    @property
    def worth_rediscovery(self) -> bool:
        """A pinned instance nobody has heard of: one discovery round may find it."""
        return self.decision is Decision.INSTANCE_GONE and self.member is None


PINNABLE: Final = (State.ACTIVE, State.DRAINING)
_TO_A_MEMBER: Final = (Decision.PINNED, Decision.ROUND_ROBIN, Decision.RETRY)
NEXT_POD: Final = (Outcome.POD_FULL, Outcome.CONNECT_FAILED, Outcome.CONNECT_REFUSED)
"""Outcomes after which nothing reached the client and the pod did no work for the request."""


def may_retry(route: Route, outcome: Outcome, attempts: int, max_attempts: int) -> bool:
    """The one retry rule: an unpinned request whose attempt left no trace goes to another pod, while attempts remain."""
    return outcome in NEXT_POD and route.decision is not Decision.PINNED and attempts < max_attempts


@dataclass(frozen=True)
class Refusal:
    """An answer the proxy makes itself because no pod will answer the request."""

    status: int
    message: str
    decision: str
    retryable: bool
    instance_id: str | None = None
    retry_after: bool = False


def unroutable(route: Route, attempts: int) -> Refusal:
    """The answer when no pod can be chosen at all."""
    if route.decision is Decision.INSTANCE_GONE:
        state = route.member.state.value if route.member is not None else "unknown"
        message = f"instance {route.instance_id!r} is not available ({state}); its work cannot continue on another pod"
        return Refusal(503, message, route.decision.value, retryable=False, instance_id=route.instance_id, retry_after=True)
    message = "no active component-server pod to send the request to" if not attempts else f"no pod took the request after {attempts} attempts"
    return Refusal(503, message, route.decision.value, retryable=True, retry_after=True)


def give_up(route: Route, outcome: Outcome, attempts: int, max_body_bytes: int) -> Refusal | None:
    """The answer after the last attempt, or None when the pod answered (or the client is gone) and nothing more can be said."""
    member = route.member
    if outcome in (Outcome.COMPLETED, Outcome.BROKEN):
        return None
    if outcome is Outcome.TOO_LARGE or member is None:
        return Refusal(413, f"request body larger than {max_body_bytes} bytes", "rejected", retryable=False)
    if route.decision is Decision.PINNED and outcome is Outcome.CONNECT_REFUSED:
        return Refusal(
            503,
            f"instance {member.instance_id!r} at {member.address} refused the connection: it is gone",
            Decision.INSTANCE_GONE.value,
            retryable=False,
            instance_id=member.instance_id,
            retry_after=True,
        )
    if outcome is Outcome.POD_FULL:
        return Refusal(503, f"every pod tried is full ({attempts} attempts)", Decision.RETRY.value, retryable=True, retry_after=True)
    detail = "failed before answering" if outcome is Outcome.UPSTREAM_FAILED else "could not be reached"
    return Refusal(
        502,
        f"pod {member.address} (instance {member.instance_id!r}) {detail}",
        route.decision.value,
        retryable=outcome is not Outcome.UPSTREAM_FAILED,
        instance_id=member.instance_id,
    )


@dataclass
class Selector:
    membership: Membership
    _cursor: int = 0
    _version: int = -1
    _active: list[Member] = field(default_factory=list)
    _routes: dict[Decision, dict[Member, Route]] = field(default_factory=lambda: {decision: {} for decision in _TO_A_MEMBER})
    """Routes to members, made once each: a request's route is a lookup, not a new object."""

    def route(self, instance_id: str | None, tried: Collection[Member] = ()) -> Route:
        """Where a request goes; ``tried`` are pods an unpinned request already failed on."""
        if instance_id is not None:
            member = self.membership.find(instance_id)
            if member is not None and member.state in PINNABLE:
                return self._route_to(Decision.PINNED, member)
            return Route(Decision.INSTANCE_GONE, member, instance_id)
        member = self.next_active(tried)
        if member is None:
            return Route(Decision.NO_BACKENDS)
        return self._route_to(Decision.RETRY if tried else Decision.ROUND_ROBIN, member)

    def _route_to(self, decision: Decision, member: Member) -> Route:
        routes = self._routes[decision]
        route = routes.get(member)
        if route is None:
            live = set(self.membership.members.values())
            for table in self._routes.values():  # forget routes to members the table forgot
                for gone in [known for known in table if known not in live]:
                    del table[gone]
            route = routes[member] = Route(decision, member, member.instance_id if decision is Decision.PINNED else None)
        return route

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
