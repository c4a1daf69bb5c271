"""Where a program stands in its run's history.

A program runs again from the top each time its run resumes. Each step, wait or marker it asks
for takes the next seq and gets back the record at that seq, if there is one; the record must
have the same name and kind, or the program changed under the run. What the run last parked on
(`waiting_for`) tells how far it had got past its records, when a wait's deadline was fixed,
and how many attempts its failing steps have used.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from quire.core.models import utcnow
from quire.runtime.errors import NonDeterminism, StepFailed
from quire.runtime.leases import ClaimedRun, RecordedStep
from quire.runtime.models import StepKind
from quire.runtime.results import decode_result

# Steps of a cancel hook are numbered from here, apart from the program's own.
COMPENSATION_SEQ = 1_000_000


class History:
    """The steps a run recorded, the seq its program asks for next, and what the run parked on."""

    def __init__(self, run: ClaimedRun, steps: list[RecordedStep]) -> None:
        self._steps = {step.seq: step for step in steps}
        self._lock = threading.Lock()  # the steps of `parallel` are recorded from several threads
        self.parked_on: dict[str, Any] = run.waiting_for or {}
        self._next_seq = run.next_seq
        self._failed_attempts = run.attempt
        pending = self.parked_on.get("seq")
        frontier = max(self._steps, default=-1) + 1
        # How far the run got before: past its recorded steps when it parked on a wait.
        self.reached = max(frontier, pending + 1 if isinstance(pending, int) else 0)
        self.seq = 0

    @property
    def replaying(self) -> bool:
        """True while the program re-walks ground it covered before (recorded or parked on)."""
        return self.seq < self.reached

    def recorded(self, seq: int) -> RecordedStep | None:
        return self._steps.get(seq)

    def allocate(self, name: str, kind: StepKind) -> int:
        """The seq of the program's next step, checked against what was recorded there."""
        seq = self.seq
        self.seq += 1
        recorded = self._steps.get(seq)
        if recorded is not None and (recorded.name != name or recorded.kind != kind):
            raise NonDeterminism(
                f"step {seq} was recorded as {recorded.kind} {recorded.name!r}, but the program "
                f"now asks for {kind.value} {name!r} there; gate such changes with ctx.patched()"
            )
        return seq

    def add(self, step: RecordedStep) -> None:
        """Remember a step this worker has just recorded."""
        with self._lock:
            self._steps[step.seq] = step
            self.reached = max(self.reached, step.seq + 1)

    def replay(self, recorded: RecordedStep, function: Callable[..., Any]) -> Any:
        """What the recorded step returned, or the StepFailed it ended with, as on its first run."""
        if recorded.status == "failed":
            raise StepFailed(recorded.name, recorded.error or "failed", recorded.error_code)
        return decode_result(function, recorded.result)

    def enter_compensation(self) -> None:
        """Number the cancel hook's steps apart from the program's own, so they replay too."""
        self.seq = COMPENSATION_SEQ

    def deadline(self, seq: int, kind: str, seconds: float | None) -> datetime | None:
        """When the wait at `seq` ends: fixed the first time the run parked on it, so replays
        do not move it."""
        if (
            self.parked_on.get("seq") == seq
            and self.parked_on.get("kind") == kind
            and self.parked_on.get("until")
        ):
            return datetime.fromisoformat(self.parked_on["until"])
        if seconds is None:
            return None
        return utcnow() + timedelta(seconds=seconds)

    def failed_attempts(self, seq: int) -> int:
        """Attempts the step at `seq` has failed so far (RetryAfter does not count)."""
        attempts = self.parked_on.get("attempts")
        if isinstance(attempts, dict):
            return int(attempts.get(str(seq), 0))
        # Runs parked by a single step (and by code older than the map) keep the count on the run.
        return self._failed_attempts if seq == self._next_seq else 0

    def attempts_to_carry(self) -> dict[str, Any]:
        """The failed attempts a park that is not a retry must keep for the retry still due."""
        attempts = self.parked_on.get("attempts")
        return {"attempts": attempts} if isinstance(attempts, dict) else {}
