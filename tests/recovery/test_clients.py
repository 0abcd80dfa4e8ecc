"""Issue 15 item 5: clients across a runtime restart. A client whose waiting ``POST /runs`` broke
finds its run and waits again with ``GET /runs/{id}?wait=true&timeoutSecs=N``; the CLI's
``submit`` (one input, and a batch) reconnects by itself and says so on stderr."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.recovery.harness import Rig, Store, flow, from_input, from_step, sqlite_store, step
from tests.support.processes import REPO_ROOT

Make = Callable[..., Rig]
RECONNECTED = re.compile(r"reconnect|connection .*(lost|broke|error|refused)|waiting again|again", re.IGNORECASE)


def waited(rig: Rig, run_id: str, timeout_seconds: int) -> tuple[float, dict[str, Any]]:
    """(seconds it took, the answer) of one long poll."""
    started = time.monotonic()
    with rig.client(timeout=timeout_seconds + 10) as client:
        response = client.get(f"/runs/{run_id}", params={"wait": "true", "timeoutSecs": timeout_seconds})
    assert response.status_code == 200, response.text
    return time.monotonic() - started, response.json()


def test_client_waits_again_after_its_post_broke(make_rig: Make, store: Store) -> None:
    rig = make_rig(store)
    definition = flow("client-waits-again", [step("a", "hold", [from_input()])], "a")
    broke: list[BaseException] = []

    def post() -> None:
        try:
            with rig.client(timeout=60) as client:
                client.post("/runs", json={"flow": definition, "input": [{"value": 1}], "wait": True})
        except httpx.HTTPError as error:
            broke.append(error)

    poster = threading.Thread(target=post)
    poster.start()
    rig.crash_while("a")
    poster.join(10)
    assert broke, "the waiting POST /runs did not break when the runtime was killed"
    [run] = rig.get("/runs", flowName="client-waits-again")["runs"]
    seconds, answer = waited(rig, run["runId"], 1)
    assert answer["status"] == "running" and 0.8 <= seconds < 5, f"a 1 s long poll on a held run took {seconds:.2f}s and answered {answer}"
    rig.ledger.release("a")
    seconds, answer = waited(rig, run["runId"], 20)
    assert answer["status"] == "completed" and seconds < 10, f"{seconds:.2f}s: {answer}"
    assert answer["runId"] == run["runId"] and "inputs" in answer, f"not the run's details: {answer}"
    assert rig.result(run["runId"]) == {"outcome": "success", "result": {"value": 2}}


def cli(rig: Rig, flow_path: Path, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "runtime_server", "submit", "--url", rig.api.removesuffix("/api/v1"), "--flow", str(flow_path), "--timeout", "60", *args]
    env = {"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=env)


def cli_through_a_restart(rig: Rig, tmp_path: Path, *args: str, held: int = 1) -> tuple[str, str]:
    """Start the CLI on a flow whose second step holds, kill the runtime while ``held`` executions of
    it are held, start it again, release: the CLI's (stdout, stderr), once it exited 0."""
    flow_path = tmp_path / "cli-flow.json"
    flow_path.write_text(json.dumps(flow("cli-restart", [step("a", "record", [from_input()]), step("b", "hold", [from_step("a")])], "b")))
    process = cli(rig, flow_path, *args)
    try:
        rig.crash_while("b", held)
        rig.ledger.release("b")
        out, err = process.communicate(timeout=40)
    finally:
        process.kill()
    assert process.returncode == 0, f"the CLI exited {process.returncode}:\n{err}\n{out}"
    assert RECONNECTED.search(err), f"the CLI did not say it reconnected:\n{err}"
    return out, err


def test_cli_submit_survives_a_runtime_restart(make_rig: Make, tmp_path: Path) -> None:
    rig = make_rig(sqlite_store(tmp_path))
    out, _ = cli_through_a_restart(rig, tmp_path, "--input-json", '{"value": 3}')
    assert json.loads(out) == {"outcome": "success", "result": {"value": 5}}


def test_cli_batch_survives_a_runtime_restart(make_rig: Make, tmp_path: Path) -> None:
    rig = make_rig(sqlite_store(tmp_path))
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"value": value}) + "\n" for value in range(4)))
    out, _ = cli_through_a_restart(rig, tmp_path, "--inputs", str(inputs), "--json", held=4)
    report = json.loads(out)
    assert (report["status"], report["succeeded"], report["failed"]) == ("completed", 4, 0), report
    assert report["results"] == [{"outcome": "success", "result": {"value": value + 2}} for value in range(4)]
