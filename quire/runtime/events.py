"""The run event log: append-only, ordered by id, what the SSE stream and the audit read."""

from __future__ import annotations

import enum
import uuid
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from quire.runtime.models import RunEvent


class RunEventType(enum.StrEnum):
    """Every event the runtime writes to a run's log: emitters and readers (the SSE stream's
    clients, the console's timeline, metrics) name them through these, never as bare strings."""

    run_created = "run.created"
    run_waiting = "run.waiting"
    run_sleeping = "run.sleeping"
    run_yielded = "run.yielded"
    run_recovered = "run.recovered"
    run_completed = "run.completed"
    run_failed = "run.failed"
    run_cancelled = "run.cancelled"
    run_cancel_requested = "run.cancel_requested"
    run_program_missing = "run.program_missing"
    run_blocked = "run.blocked"  # its program no longer matches its history
    run_handed_over = "run.handed_over"  # its worker is stopping; another takes it
    run_retried = "run.retried"  # a failed, cancelled or blocked run resumes from its failed step
    run_deadline_passed = "run.deadline_passed"
    step_completed = "step.completed"
    step_failed = "step.failed"
    step_retrying = "step.retrying"
    step_throttled = "step.throttled"
    signal_received = "signal.received"
    task_created = "task.created"
    task_decided = "task.decided"
    task_escalated = "task.escalated"
    process_transition = "process.transition"
    process_refused = "process.refused"

    @classmethod
    def ended(cls, status: str) -> RunEventType:
        """The event of a run's end: completed, failed or cancelled."""
        return cls(f"run.{status}")


APPEND_SQL = text(
    "INSERT INTO runtime_event (tenant_id, run_id, type, data, created_at) "
    "VALUES (:tenant_id, :run_id, :type, CAST(:data AS jsonb), now())"
)


def append_event(
    session: Session, *, tenant_id: uuid.UUID, run_id: uuid.UUID, type: str, data: Any = None
) -> None:
    from quire.core.db import dumps

    session.execute(APPEND_SQL, {"tenant_id": tenant_id, "run_id": run_id, "type": type, "data": dumps(data)})


def events_after(
    session: Session, *, run_id: uuid.UUID, after_id: int = 0, limit: int = 500
) -> list[RunEvent]:
    return list(
        session.exec(
            select(RunEvent)
            .where(RunEvent.run_id == run_id, col(RunEvent.id) > after_id)
            .order_by(col(RunEvent.id))
            .limit(limit)
        ).all()
    )
