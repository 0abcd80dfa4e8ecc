"""Follow one run through every service's logs: which step ran on which pod, via which proxy.

Lines are joined on ids, not on text: a line belongs to the run if it carries the run's
``run_id``, or a ``trace_id`` seen on one of the run's lines (the proxies know traces
and instances, not runs). Sources: the local fleet's log files, or ``kubectl logs``.

Run: ``python -m local_fleet.trace_run RUN_ID [--logs DIR | --kubectl NAMESPACE]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from local_fleet.processes import REPO_ROOT

SHOWN_FIELDS = ("step_id", "attempt", "component", "instance_id", "decision", "method", "status", "outcome", "duration_ms", "error")


def parse_lines(lines: Iterable[str], source: str) -> list[dict[str, Any]]:
    """JSON objects only; anything else (a stack trace, a banner) is skipped."""
    events = []
    for line in lines:
        start = line.find("{")
        if start < 0:
            continue
        try:
            event = json.loads(line[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            event.setdefault("source", source)
            events.append(event)
    return events


def lines_of_run(events: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    traces = {event["trace_id"] for event in events if event.get("run_id") == run_id and event.get("trace_id")}
    chosen = [event for event in events if event.get("run_id") == run_id or event.get("trace_id") in traces]
    return sorted(chosen, key=lambda event: str(event.get("ts", "")))


def from_log_dir(log_dir: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for path in sorted(log_dir.glob("*.log")):
        events += parse_lines(path.read_text(errors="replace").splitlines(), path.stem)
    return events


def from_kubectl(namespace: str) -> list[dict[str, Any]]:
    """Every container's logs in the namespace; ``--prefix`` names the pod on each line."""
    output = subprocess.run(
        ["kubectl", "logs", "-n", namespace, "--all-containers", "--prefix", "--tail=-1", "-l", "app.kubernetes.io/part-of=stepflow-demo"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return parse_lines(output.splitlines(), "kubectl")


def describe(event: dict[str, Any]) -> str:
    who = event.get("pod") or event.get("source", "?")
    details = " ".join(f"{key}={event[key]}" for key in SHOWN_FIELDS if key in event)
    return f"{event.get('ts', ''):<25} {event.get('service', ''):<15} {who:<28} {event.get('event', ''):<28} {details}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_id")
    parser.add_argument("--logs", type=Path, default=REPO_ROOT / ".fleet" / "logs", help="the local fleet's log folder")
    parser.add_argument("--kubectl", metavar="NAMESPACE", help="read kubectl logs from this namespace instead")
    args = parser.parse_args(argv)
    events = from_kubectl(args.kubectl) if args.kubectl else from_log_dir(args.logs)
    path = lines_of_run(events, args.run_id)
    if not path:
        print(f"no log lines for run {args.run_id}", file=sys.stderr)
        return 1
    for event in path:
        print(describe(event))
    return 0


if __name__ == "__main__":
    sys.exit(main())
