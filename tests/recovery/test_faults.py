"""Issue 15 item 6: the store misbehaves. PostgreSQL down at start, lost in the middle of runs, a
wrong password; a journal entry that cannot be decoded and a full disk on SQLite. Each ends with
a clear error or a recovery, and nothing acknowledged is lost."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.recovery.conftest import postgres_store
from tests.recovery.harness import Rig, Store, flow, from_input, from_step, sqlite_store, step
from tests.support.postgres import PostgresServer
from tests.support.waiting import wait_until

Make = Callable[..., Rig]
HELD = flow("held", [step("a", "record", [from_input()]), step("b", "hold", [from_step("a")])], "b")
QUICK = flow("quick", [step("a", "record", [from_input()])], "a")


PASSWORD_VARIABLE = "RECOVERY_DB_PASSWORD"


def env_password_store(server: PostgresServer) -> Store:
    """A fresh database whose URL takes the password from ``${RECOVERY_DB_PASSWORD}``, as from a Secret."""
    url = postgres_store(server).database_url
    return Store("postgres", url.replace(f":{server.password}@", f":${{{PASSWORD_VARIABLE}}}@"))


def health_once_up(rig: Rig, seconds: float = 20.0) -> tuple[int, Any]:
    """The first answer of /health (whatever its status) from a runtime that must stay up."""
    answers: list[tuple[int, Any]] = []

    def answered() -> bool:
        assert rig.runtime is not None and rig.runtime.alive(), f"the runtime exited instead of waiting for its database:\n{rig.runtime_log()}"
        answer = rig.probe("/health")
        answers.extend([answer] if answer else [])
        return bool(answers)

    wait_until(answered, f"/health never answered:\n{rig.runtime_log()}", seconds)
    return answers[0]


def run_to_end(rig: Rig, value: float) -> dict[str, Any]:
    with rig.client(timeout=20) as client:
        response = client.post("/runs", json={"flow": QUICK, "input": [{"value": value}], "wait": True})
    assert response.status_code == 200, response.text
    return response.json()


def test_postgres_unreachable_at_start_then_connects(make_rig: Make, running_postgres: PostgresServer) -> None:
    """Its password from the environment too: connecting at last shows ``${VAR}`` was substituted."""
    store = env_password_store(running_postgres)
    running_postgres.stop()
    rig = make_rig(store, started=False, env={PASSWORD_VARIABLE: running_postgres.password})
    rig.pods.ensure(1)
    rig.start_runtime(wait_ready=False)
    status, body = health_once_up(rig)
    assert status == 503, f"/health answered {status} while the database is down: {body}"
    assert isinstance(body, dict) and any(word in str(body).lower() for word in ("database", "postgres", "connect")), f"/health gives no reason: {body}"
    running_postgres.start()
    rig.wait_ready(seconds=30)
    assert run_to_end(rig, 4)["result"] == {"outcome": "success", "result": {"value": 5}}


def reported(rig: Rig, run_ids: list[str]) -> dict[str, tuple[str, Any]]:
    """What the runtime says of each run it answers for: (status, item 0's result)."""
    said = {}
    for run_id in run_ids:
        answer = rig.probe(f"/runs/{run_id}/items")
        details = rig.probe(f"/runs/{run_id}")
        if answer and details and answer[0] == 200 and details[0] == 200:
            said[run_id] = (details[1]["status"], answer[1]["items"][0].get("result"))
    return said


def test_postgres_lost_in_the_middle_of_runs(make_rig: Make, running_postgres: PostgresServer) -> None:
    """The server crashes while five runs are held and their steps then answer: whatever the runtime
    reported completed (during the outage or after) is still completed, with the same result, after
    the database is back and the runtime itself has been killed and started again."""
    rig = make_rig(postgres_store(running_postgres))
    run_ids = [rig.submit(HELD, value) for value in range(5)]
    rig.ledger.wait_for("start", "b", len(run_ids))
    running_postgres.kill()
    rig.ledger.release("b")
    time.sleep(1.0)
    acknowledged = {run_id: said for run_id, said in reported(rig, run_ids).items() if said[0] in ("completed", "failed")}
    running_postgres.start()
    ended = rig.wait_runs(run_ids, seconds=40)
    for run_id, details in ended.items():
        result = rig.result(run_id)
        if details["status"] == "completed":
            assert result == {"outcome": "success", "result": {"value": run_ids.index(run_id) + 2}}, f"run {run_id}: {result}"
        else:
            clear = details["status"] == "failed" and result and result.get("error", {}).get("message")
            assert clear, f"run {run_id} ended {details['status']} without a clear error: {result}"
        acknowledged[run_id] = (details["status"], result)
    rig.restart_runtime()
    after = reported(rig, run_ids)
    lost = {run_id: (said, after.get(run_id)) for run_id, said in acknowledged.items() if after.get(run_id) != said}
    assert lost == {}, f"runs reported ended before the restart read back otherwise (before, after): {lost}"


def test_wrong_password_is_a_clear_error_without_the_password(make_rig: Make, running_postgres: PostgresServer) -> None:
    """The password comes from the environment (``${VAR}`` in databaseUrl, as from a Secret)."""
    wrong = "wrong-Pw-5d1e9a"
    rig = make_rig(env_password_store(running_postgres), started=False, env={PASSWORD_VARIABLE: wrong})
    rig.pods.ensure(1)
    runtime = rig.start_runtime(wait_ready=False)
    said = ""

    def refused() -> bool:
        """It exited, or /health says why it is not ready (its first answers may say it has not tried yet)."""
        nonlocal said
        if not runtime.alive():
            said = f"exit status {runtime.process.returncode if runtime.process else None}"
            return True
        answer = rig.probe("/health")
        assert answer is None or answer[0] != 200, f"the runtime is healthy with a wrong password: {answer}"
        said = str(answer[1]) if answer else said
        return any(word in said.lower() for word in ("password", "authentication"))

    try:
        wait_until(refused, "the runtime neither exited nor said the password was refused", 20)
    except AssertionError as silent:
        raise AssertionError(f"{silent}; /health said {said}:\n{rig.runtime_log()}") from None
    log = rig.runtime_log(100_000)
    assert wrong not in said and wrong not in log, f"the password shows: {said}\n{log}"
    explained = (said + log).lower()
    assert "password" in explained or "authentication" in explained, f"nothing says the password was refused: {said}\n{log}"


# -- SQLite --------------------------------------------------------------------------------


def corrupt_journal(path: Path, run_id: str) -> int:
    """Overwrite the run's journal details (the JSON of its step results) with bytes that are not JSON;
    the number of rows changed (the lead's schema: runtime_server/runs/rows.py, tables runs and journal)."""
    with sqlite3.connect(path) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert "journal" in tables, f"no journal table in {path}: {tables}"
        changed = db.execute("UPDATE journal SET detail = ? WHERE run_id = ? AND detail IS NOT NULL", (b'{"outcome": not json', run_id)).rowcount
    return changed


def test_undecodable_journal_entry_fails_that_run_only(make_rig: Make, tmp_path: Path) -> None:
    store = sqlite_store(tmp_path)
    rig = make_rig(store)
    run_ids = [rig.submit(HELD, value) for value in range(3)]
    rig.ledger.wait_for("start", "b", len(run_ids))
    rig.kill_runtime()
    rig.ledger.wait_for("cancelled", "b", len(run_ids))
    bad = run_ids[1]
    assert store.path is not None and corrupt_journal(store.path, bad) > 0, "the run's journal holds no step result to corrupt"
    rig.start_runtime()
    rig.ledger.wait_for("start", "b", len(run_ids) - 1, min_attempt=2)
    rig.ledger.release("b")
    ended = rig.wait_runs(run_ids)
    assert ended[bad]["status"] == "failed", ended[bad]
    told = str(rig.probe(f"/runs/{bad}/items")) + str(rig.probe(f"/runs/{bad}/events"))
    assert "decod" in told.lower() or "corrupt" in told.lower(), f"the failed run does not say its journal could not be read: {told}"
    for value, run_id in enumerate(run_ids):
        if run_id != bad:
            assert ended[run_id]["status"] == "completed" and rig.result(run_id) == {"outcome": "success", "result": {"value": value + 2}}
            assert rig.ledger.attempts("complete", "b", run_id) == [2]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs of the test's own (mounting needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        chunk = b"\0" * 65536
        try:
            while True:
                out.write(chunk)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
    return filler


def test_sqlite_disk_full_fails_or_waits_clearly_and_loses_nothing(make_rig: Make, small_disk: Path) -> None:
    path = small_disk / "runs.db"
    rig = make_rig(Store("sqlite", f"sqlite:{path}?mode=rwc", path))
    acknowledged = {(answer := run_to_end(rig, value))["runId"]: (answer["status"], answer["result"]) for value in range(3)}
    filler = fill(small_disk)
    refusals, accepted = [], []
    with rig.client(timeout=3) as client:  # a run that waits for space is not answered: the next one is tried
        for value in range(10, 30):
            try:
                response = client.post("/runs", json={"flow": QUICK, "input": [{"value": value}], "wait": True})
            except httpx.TimeoutException:
                continue  # waiting for space is allowed
            if response.status_code == 200:
                accepted.append(response.json())
            else:
                refusals.append(response.text)
                break
    assert refusals or any(answer["status"] == "failed" for answer in accepted), f"20 runs on a full disk, none refused or failed: {accepted[-3:]}"
    for text in refusals + [str(answer) for answer in accepted if answer["status"] == "failed"]:
        assert any(word in text.lower() for word in ("full", "disk", "space")), f"the error does not say the disk is full: {text}"
    acknowledged.update({answer["runId"]: (answer["status"], answer.get("result")) for answer in accepted})
    filler.unlink()
    rig.restart_runtime()
    after = reported(rig, list(acknowledged))
    # A completed run must read back as it was; a run that failed for want of space must still exist.
    lost = {
        run_id: (said, after.get(run_id)) for run_id, said in acknowledged.items() if run_id not in after or (said[0] == "completed" and after[run_id] != said)
    }
    assert lost == {}, f"acknowledged runs read back otherwise after the restart (before, after): {lost}"
