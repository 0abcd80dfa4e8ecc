"""Runs' ends as PostgreSQL NOTIFY payloads: many run ids a notification, not one. Pure.

Every replica listens, the one that ended the runs too, so one notification per run cost each
of them a message and a callback per run (about a tenth of a run's CPU at a thousand runs a
second, measured: docs/benchmarks.md). A payload carries as many ids as fit under
PostgreSQL's limit (8,000 bytes), comma-separated; run ids never hold a comma. A payload of
one id is what replicas of earlier versions sent, and it reads the same.
"""

from __future__ import annotations

PAYLOAD_LIMIT = 7_900
"""Bytes a payload may take: PostgreSQL refuses 8,000 and more."""
SEPARATOR = ","


def payloads(run_ids: list[str], limit: int = PAYLOAD_LIMIT) -> list[str]:
    """The ids in as few payloads of at most ``limit`` bytes as they fit in, in order."""
    found: list[str] = []
    current: list[str] = []
    size = 0
    for run_id in run_ids:
        added = len(run_id.encode()) + (1 if current else 0)
        if current and size + added > limit:
            found.append(SEPARATOR.join(current))
            current, size, added = [], 0, added - 1
        current.append(run_id)
        size += added
    if current:
        found.append(SEPARATOR.join(current))
    return found


def run_ids_of(payload: str) -> list[str]:
    """The run ids a payload announces (empty pieces dropped)."""
    return [run_id for run_id in payload.split(SEPARATOR) if run_id]
