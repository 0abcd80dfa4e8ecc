"""The local fleet: ``python -m local_fleet run`` (up, demo, down) or ``up`` (stay up).

``run`` is the project's main job: the cluster's topology on loopback, the demo of
demo.md through it, a report, and a non-zero exit if anything failed. Every process it
started is stopped on the way out, also on Ctrl-C or SIGTERM. ``--runtimes 2`` runs two
runtime replicas on a PostgreSQL server of their own instead of one runtime on SQLite.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from local_fleet.demo import run_demo
from local_fleet.postgres import unavailable_reason
from local_fleet.processes import REPO_ROOT
from local_fleet.supervisor import LocalFleet
from local_fleet.topology import MAX_RUNTIMES, Topology
from telemetry.logs import configure_logging

HELP = (
    "commands: scale N | kill I (SIGKILL pod I) | stop I (graceful) | start I"
    " | kill-runtime I (SIGKILL runtime I) | stop-runtime I (graceful) | start-runtime I | demo | urls | quit"
)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def print_urls(fleet: LocalFleet) -> None:
    for name, url in fleet.urls().items():
        print(f"  {name:<20} {url}")


def demo(fleet: LocalFleet) -> bool:
    topology = fleet.topology
    return run_demo(
        [topology.runtime_url_of(index) for index in sorted(fleet.runtimes)],
        [topology.proxy_metrics_url(index) for index in range(len(fleet.proxies))],
        [topology.pod_metrics_url(index) for index in sorted(fleet.pods)],
        token=fleet.api_token,
    )


def print_access(fleet: LocalFleet) -> None:
    """What a user needs to call the runtime API by hand: it takes a bearer token (any replica answers for any run)."""
    url = fleet.topology.runtime_url
    print(f"  {'API token':<20} {fleet.api_token}")
    print(f"  e.g. STEPFLOW_API_TOKEN={fleet.api_token} python -m runtime_server submit --url {url} --flow FILE --input-json JSON")
    print(f"  or   curl -H 'Authorization: Bearer {fleet.api_token}' {url}/api/v1/runs", flush=True)


def interact(fleet: LocalFleet) -> None:
    """Manual mode: read commands until 'quit' or end of input."""
    print(HELP, flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        command, arguments = words[0], [int(word) for word in words[1:] if word.isdigit()]
        try:
            if command == "quit":
                return
            if command == "scale" and arguments:
                fleet.scale_pods(arguments[0])
            elif command in ("kill", "stop") and arguments:
                fleet.stop_pod(arguments[0], hard=command == "kill")
                fleet.wait_routed()
            elif command == "start" and arguments:
                fleet.start_pod(arguments[0])
                fleet.wait_routed()
            elif command in ("kill-runtime", "stop-runtime") and arguments:
                fleet.stop_runtime(arguments[0], hard=command == "kill-runtime")
            elif command == "start-runtime" and arguments:
                fleet.start_runtime(arguments[0])
            elif command == "demo":
                demo(fleet)
            elif command == "urls":
                print_urls(fleet)
            else:
                print(HELP)
        except (KeyError, ValueError, RuntimeError, TimeoutError) as error:
            print(f"error: {error}")
        print("> ", end="", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["run", "up"], help="run: up, demo, down; up: stay up for manual use")
    parser.add_argument("--pods", type=int, default=3)
    parser.add_argument(
        "--runtimes", type=int, default=1, help=f"runtime replicas (1 to {MAX_RUNTIMES}); more than one share a PostgreSQL server the fleet starts"
    )
    parser.add_argument("--work-dir", type=Path, default=REPO_ROOT / ".fleet", help="logs, DNS records, config")
    args = parser.parse_args(argv)
    if not 1 <= args.runtimes <= MAX_RUNTIMES:
        parser.error(f"--runtimes {args.runtimes}: between 1 and {MAX_RUNTIMES}")
    if args.runtimes > 1 and (reason := unavailable_reason()) is not None:
        parser.error(f"--runtimes {args.runtimes} needs a PostgreSQL server: {reason}")
    configure_logging("local-fleet")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C stops the fleet even if started where SIGINT is ignored (a non-interactive shell's `&`)
    fleet = LocalFleet(Topology(pods=args.pods, runtimes=args.runtimes), args.work_dir)
    runtimes = "the runtime" if args.runtimes == 1 else f"PostgreSQL, {args.runtimes} runtimes"
    try:
        print(f"Starting the fleet: DNS, {args.pods} pods, 2 proxies, {runtimes} (logs in {fleet.log_dir})", flush=True)
        fleet.start()
        print_urls(fleet)
        if args.mode == "run":
            return 0 if demo(fleet) else 1
        print_access(fleet)
        interact(fleet)
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        print("Stopping the fleet", flush=True)
        fleet.stop()


if __name__ == "__main__":
    sys.exit(main())
