"""The test's side of ``hold_pod.py``: read what the pods recorded, release held executions."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.waiting import wait_until


@dataclass(frozen=True)
class Entry:
    event: str
    pod: str
    run: str | None
    step: str | None
    attempt: int
    raw: dict[str, Any]


@dataclass(frozen=True)
class Ledger:
    """The pods' shared directory: ``ledger.jsonl`` (what happened) and ``release/`` (what may finish).
    A test sees only the lines written after its ``offset``."""

    directory: Path
    offset: int = 0
    explain: Callable[[], str] = lambda: ""
    """More to say when an entry never comes (the rig gives the runtime's log)."""

    @classmethod
    def fresh(cls, directory: Path, explain: Callable[[], str] = lambda: "") -> Ledger:
        """A view for a new test: nothing released, earlier tests' lines out of sight."""
        releases = directory / "release"
        releases.mkdir(parents=True, exist_ok=True)
        for name in releases.iterdir():
            name.unlink()
        path = directory / "ledger.jsonl"
        return cls(directory, path.stat().st_size if path.exists() else 0, explain)

    @property
    def path(self) -> Path:
        return self.directory / "ledger.jsonl"

    def release(self, name: str) -> None:
        """``STEP``, ``STEP@ATTEMPT``, ``RUN.STEP`` or ``*`` (hold_pod.py)."""
        (self.directory / "release" / name).touch()

    def entries(self, event: str | None = None, step: str | None = None, run: str | None = None, attempt: int | None = None) -> list[Entry]:
        lines = self._lines()
        chosen = []
        for line in lines:
            if not line.endswith("}"):
                continue  # a line a killed pod was writing
            data = json.loads(line)
            entry = Entry(data["event"], data["pod"], data.get("run"), data.get("step"), data.get("attempt", 0), data)
            if _matches(entry, event, step, run, attempt):
                chosen.append(entry)
        return chosen

    def wait_for(
        self,
        event: str,
        step: str | None = None,
        count: int = 1,
        seconds: float = 15.0,
        run: str | None = None,
        attempt: int | None = None,
        min_attempt: int | None = None,
    ) -> list[Entry]:
        """At least ``count`` matching entries (``min_attempt``: only attempts from that on); fails naming what never came."""

        def found() -> list[Entry]:
            entries = self.entries(event, step, run, attempt)
            return [e for e in entries if min_attempt is None or e.attempt >= min_attempt]

        what = f"{count} {event!r} of step {step or 'any'} (run {run or 'any'}, attempt {attempt or min_attempt or 'any'}); the ledger: {self.tail()}"
        try:
            wait_until(lambda: len(found()) >= count, what, seconds)
        except AssertionError as missing:
            raise AssertionError(f"{missing}\n{self.explain()}") from None
        return found()

    def by_run_step(self, event: str) -> Counter[tuple[str | None, str | None]]:
        return Counter((e.run, e.step) for e in self.entries(event))

    def attempts(self, event: str, step: str, run: str | None = None) -> list[int]:
        return sorted(e.attempt for e in self.entries(event, step, run))

    def tail(self, lines: int = 30) -> str:
        return "\n" + "\n".join(self._lines()[-lines:])

    def _lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as ledger:
                ledger.seek(self.offset)
                return ledger.read().decode(errors="replace").splitlines()
        except FileNotFoundError:
            return []


def _matches(entry: Entry, event: str | None, step: str | None, run: str | None, attempt: int | None) -> bool:
    return all(wanted is None or got == wanted for wanted, got in ((event, entry.event), (step, entry.step), (run, entry.run), (attempt, entry.attempt)))
