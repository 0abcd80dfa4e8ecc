"""Whether a pod takes one more execution: a concurrency limit and a draining flag.

Pure bookkeeping: the HTTP shell asks ``admit()`` before an execution and calls
``leave()`` after it; a refusal says why, so the shell answers a retriable 503.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RejectReason = Literal["full", "draining"]


@dataclass
class Admission:
    limit: int
    in_flight: int = 0
    draining: bool = False

    def admit(self) -> RejectReason | None:
        """Take a slot and return None, or return why there is none."""
        if self.draining:
            return "draining"
        if self.in_flight >= self.limit:
            return "full"
        self.in_flight += 1
        return None

    def leave(self) -> None:
        if self.in_flight <= 0:
            raise RuntimeError("leave() without a matching admit()")
        self.in_flight -= 1

    def start_draining(self) -> None:
        self.draining = True

    @property
    def idle(self) -> bool:
        return self.in_flight == 0
