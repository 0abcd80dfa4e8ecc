"""Our runtime as in the work tree against another revision of it, on the same pods, in one run.

    python bench/ab_runtime.py [--base HEAD] [--flow simple] [--concurrency 8] [--rounds 7] [--seconds 3] [--topology one-pod|demo]

How the rows of "what each change took" in docs/benchmarks.md were measured: a change to the
runtime moves its CPU per run by a few µs, under what separates two runs of the bench on this
machine, so both trees run side by side instead. ``--base`` is checked out into a temporary
``git worktree``; both runtimes get the same config and drive the same fleet (the topologies
of bench_runtime_vs_upstream.py, in a ``perf-*`` network namespace, root needed) with the same
closed-loop client, in alternating rounds of ``--seconds`` (3 s). Prints each side's median runs/s and CPU per
run (runtime process; fleet = proxy and pods) and the ratio. The same tree against itself
differs by up to ±5 µs a run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_runtime_vs_upstream import FLOWS, HUB, OURS_PORT, TOPOLOGIES, Round, drive, sides_on, stop_all
from tests.support.netns import inside_new_netns
from tests.support.processes import REPO_ROOT, ManagedProcess
from tests.support.runtime import remote_plugin_config, wait_plugins_healthy

BASE_PORT = 7873


@contextmanager
def worktree(revision: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as parent:
        path = Path(parent) / "base"
        added = subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", "--quiet", str(path), revision], capture_output=True, text=True)
        if added.returncode != 0:
            raise SystemExit(f"ab_runtime: cannot check out {revision!r}: {added.stderr.strip()}")
        try:
            yield path
        finally:
            subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(path)], check=True)


def start_base_runtime(tree: Path, url: str, log_dir: Path) -> ManagedProcess:
    """The runtime from ``tree``: ``-P`` keeps the work tree (the processes' cwd) off sys.path."""
    config = log_dir / "runtime-base.yml"
    config.write_text(remote_plugin_config(url, idleTimeoutSeconds=5, totalTimeoutSeconds=20))
    args = [sys.executable, "-P", "-m", "runtime_server", "--config", str(config), "--host", HUB, "--port", str(BASE_PORT), "--metrics-port", "0"]
    process = ManagedProcess("runtime-base", args, log_dir / "runtime-base.log", {"PYTHONPATH": str(tree)}).start()
    api = f"http://{HUB}:{BASE_PORT}/api/v1"
    process.wait_healthy(f"{api}/health")
    wait_plugins_healthy(api, process)
    return process


def summary(name: str, rounds: list[Round]) -> str:
    rates = [r.runs_per_second for r in rounds]
    return (
        f"| {name} | {statistics.median(rates):.0f} | {statistics.median(r.cpu_us_per_run for r in rounds):.1f} | "
        f"{statistics.median(r.fleet_cpu_us_per_run for r in rounds):.1f} | {', '.join(f'{rate:.0f}' for rate in rates)} |"
    )


def run(base: str, flow: str, concurrency: int, rounds: int, seconds: float, topology: str, log_dir: Path) -> None:
    start_fleet, _ = TOPOLOGIES[topology]
    with worktree(base) as tree:
        fleet, ours, url = start_fleet("ours", log_dir)
        theirs: ManagedProcess | None = None
        try:
            theirs = start_base_runtime(tree, url, log_dir)
            sides = sides_on(fleet, [("work tree", (HUB, OURS_PORT), ours), (f"base {base}", (HUB, BASE_PORT), theirs)])
            results: dict[str, list[Round]] = {side.name: [] for side in sides}
            for index in range(rounds):
                for side in sides if index % 2 == 0 else sides[::-1]:
                    asyncio.run(drive(side, flow, concurrency, 0.3))
                    results[side.name].append(asyncio.run(drive(side, flow, concurrency, seconds)))
            print(f"{topology}, {flow} flow, concurrency {concurrency}, {rounds} alternating rounds of {seconds:g} s\n")
            print("| runtime | runs/s (median) | CPU µs/run | fleet CPU µs/run | rounds |\n|---|---|---|---|---|")
            for side in sides:
                print(summary(side.name, results[side.name]))
            ours_rate, base_rate = (statistics.median(r.runs_per_second for r in results[side.name]) for side in sides)
            print(f"\nwork tree / base: {ours_rate / base_rate:.3f}x runs/s")
        finally:
            stop_all([theirs, ours, *reversed(fleet)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="HEAD", help="the revision to compare the work tree with")
    parser.add_argument("--flow", choices=sorted(FLOWS), default="simple")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per side (at most 15)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per round (at most 30)")
    parser.add_argument("--topology", choices=sorted(TOPOLOGIES), default="one-pod")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logs, inside_new_netns("perf-ab"):
        run(args.base, args.flow, min(max(args.concurrency, 1), 64), min(max(args.rounds, 1), 15), min(args.seconds, 30.0), args.topology, Path(logs))


if __name__ == "__main__":
    main()
