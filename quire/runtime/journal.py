"""The fenced writes of one run.

Each transition of a run (a step recorded, a park, the end) is one statement that names the
epoch its worker claimed and carries the events and state buffered since the last one, so they
commit together or not at all (`quire/runtime/sql.py`). A statement that matches no row means
another worker has the run: LeaseLost, and this worker stops without writing.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NoReturn

from pydantic import BaseModel

from quire.core.db import Database, TenantSession, dumps
from quire.core.models import utcnow
from quire.runtime import sql
from quire.runtime.errors import LeaseLost, Suspend
from quire.runtime.events import RunEventType, append_event
from quire.runtime.history import History
from quire.runtime.kicks import Kicker
from quire.runtime.leases import ClaimedRun, RecordedStep
from quire.runtime.models import RunStatus, StepKind


class Journal:
    """Writes one run's transitions under the epoch its worker claimed."""

    def __init__(
        self, *, database: Database, kicker: Kicker, run: ClaimedRun, history: History, lease_ttl: float
    ) -> None:
        self.database = database
        self.kicker = kicker
        self.run = run
        self.history = history
        self.lease_ttl = lease_ttl
        self.cancel_requested = run.cancel_requested
        self._events: list[tuple[str, Any]] = []
        self._state: dict[str, Any] | None = None
        self._lock = threading.RLock()  # the steps of `parallel` share the buffers
        # Working time: from the claim to each transition, added to the run's worked_seconds.
        # Parked time never reaches it, since a park ends the slice that the clock measures.
        self._clock = time.monotonic()

    def take_worked(self) -> float:
        """Seconds worked since the last transition (each is counted once)."""
        with self._lock:
            now = time.monotonic()
            worked, self._clock = now - self._clock, now
        return worked

    def emit(self, type: str, data: Any = None) -> None:
        """Buffer an event: it is written with the next transition."""
        with self._lock:
            self._events.append((type, data))

    def emit_now(self, type: str, data: Any = None) -> None:
        """Write an event at once, in a transaction of its own."""
        with self.database.tenant_session(self.run.tenant_id) as session:
            append_event(session, tenant_id=self.run.tenant_id, run_id=self.run.id, type=type, data=data)
            session.commit()

    def publish(self, state: BaseModel | dict[str, Any]) -> None:
        """Make `state` the run's visible state from the next transition on."""
        with self._lock:
            self._state = state.model_dump(mode="json") if isinstance(state, BaseModel) else state

    def take_events(self, *extra: tuple[str, Any]) -> dict[str, Any]:
        """The buffered events and `extra`, as the parameters of a fenced statement."""
        with self._lock:
            events = [*self._events, *extra]
            self._events = []
        return {
            "event_types": [kind for kind, _ in events],
            "event_data": [dumps(data) for _, data in events],
        }

    def take_state(self) -> str | None:
        with self._lock:
            state, self._state = self._state, None
        return None if state is None else dumps(state)

    @contextmanager
    def locked(self) -> Iterator[TenantSession]:
        """A transaction that holds this run's row (fenced): signal senders wait for it."""
        with self.database.tenant_session(self.run.tenant_id) as session:
            row = session.execute(sql.LOCK_FENCED, {"run_id": self.run.id, "epoch": self.run.epoch}).first()
            if row is None:
                raise LeaseLost(self.run.id)
            self.cancel_requested = bool(row[0])
            yield session

    def record_step(
        self,
        session: TenantSession,
        *,
        seq: int,
        name: str,
        kind: StepKind,
        attempt: int,
        result: str | None,
        started: datetime,
        error: str | None = None,
        error_code: str | None = None,
    ) -> None:
        """Record step `seq` (its result, or the error it failed with for good) in `session`."""
        finished = utcnow()
        status = "failed" if error else "completed"
        event = (
            RunEventType.step_failed if error else RunEventType.step_completed,
            {
                "seq": seq,
                "name": name,
                "kind": kind.value,
                "attempt": attempt,
                "ms": round((finished - started).total_seconds() * 1000, 2),
                **({"error": error} if error else {}),
            },
        )
        with self._lock:
            row = session.execute(
                sql.COMMIT_STEP,
                {
                    "run_id": self.run.id,
                    "epoch": self.run.epoch,
                    "ttl": self.lease_ttl,
                    "seq": seq,
                    "name": name,
                    "kind": kind.value,
                    "status": status,
                    "attempt": attempt,
                    "result": result,
                    "error": error,
                    "error_code": error_code if error else None,
                    "worked": self.take_worked(),
                    "started_at": started,
                    # Not now(): that is when the transaction began, before the step's work ran.
                    "finished_at": finished,
                    "state": self.take_state(),
                    **self.take_events(event),
                },
            ).first()
            if row is None:
                session.rollback()
                raise LeaseLost(self.run.id)
            self.cancel_requested = bool(row[0])
            self.history.add(RecordedStep(seq, name, kind.value, status, None, error, error_code))

    def park(
        self,
        session: TenantSession,
        *,
        status: RunStatus,
        wake_at: datetime | None,
        waiting_for: dict[str, Any] | None,
        event: tuple[str, Any],
        attempt: int = 0,
        kick: bool = False,
        error: str | None = None,
        error_code: str | None = None,
    ) -> NoReturn:
        """Leave the run `status` until `wake_at` (or a signal), commit, and end the slice.

        `error` and `error_code` say why a run parks for good (`blocked`)."""
        row = session.execute(
            sql.PARK,
            {
                "run_id": self.run.id,
                "epoch": self.run.epoch,
                "status": status.value,
                "wake_at": wake_at,
                "kicked": kick,
                "attempt": attempt,
                "waiting_for": dumps(waiting_for) if waiting_for is not None else None,
                "worked": self.take_worked(),
                "error": error,
                "error_code": error_code,
                "state": self.take_state(),
                **self.take_events(event),
            },
        ).first()
        if row is None:
            session.rollback()
            raise LeaseLost(self.run.id)
        if kick:
            self.kicker.kick(self.run.id, self.run.epoch, program=self.run.program, session=session)
        session.commit()
        raise Suspend()

    def finish(
        self, session: TenantSession, *, status: RunStatus, error: str | None, error_code: str | None = None
    ) -> uuid.UUID | None:
        """Record the run's end in `session`; returns its parent's id, which must hear of it."""
        ended = {"error": error, "code": error_code} if error else None
        row = session.execute(
            sql.FINISH,
            {
                "run_id": self.run.id,
                "epoch": self.run.epoch,
                "status": status.value,
                "error": error,
                "error_code": error_code,
                "worked": self.take_worked(),
                "state": self.take_state(),
                **self.take_events((RunEventType.ended(status.value), ended)),
            },
        ).first()
        if row is None:
            raise LeaseLost(self.run.id)
        parent_id: uuid.UUID | None = row[0]
        return parent_id
