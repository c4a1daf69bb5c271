"""The sweeper: in every worker process, it kicks runs whose timer is due, whose lease expired
(their worker died), or whose kick seems lost. It is what recovers runs after a crash; the
broker's own redelivery is not relied on.

Several sweepers (one per worker process) run at once; `FOR UPDATE SKIP LOCKED` lets each take
a different share of due runs.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text

from quire.core.db import Database
from quire.runtime.events import RunEventType, append_event
from quire.runtime.kicks import Kicker
from quire.runtime.signals import deliver_signal

logger = logging.getLogger(__name__)

SWEEP_SQL = text(
    """
    WITH due AS (
        SELECT id, status AS was, lease_owner AS lost_owner
        FROM runtime_run
        WHERE (status IN ('queued', 'waiting', 'sleeping', 'throttled')
               AND wake_at <= now()
               AND (kicked_at IS NULL OR kicked_at < now() - make_interval(secs => :redeliver)))
           OR (status = 'running' AND lease_expires_at < now())
        ORDER BY wake_at NULLS FIRST
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE runtime_run AS r SET
        kicked_at = now(),
        recoveries = r.recoveries + CASE WHEN due.was = 'running' THEN 1 ELSE 0 END,
        status = CASE
            WHEN due.was <> 'running' THEN r.status
            WHEN r.recoveries + 1 > :max_recoveries THEN 'failed'
            ELSE 'queued' END,
        wake_at = CASE WHEN due.was = 'running' THEN now() ELSE r.wake_at END,
        lease_owner = CASE WHEN due.was = 'running' THEN NULL ELSE r.lease_owner END,
        lease_expires_at = CASE WHEN due.was = 'running' THEN NULL ELSE r.lease_expires_at END,
        error = CASE
            WHEN due.was = 'running' AND r.recoveries + 1 > :max_recoveries THEN
                'its worker was lost ' || (r.recoveries + 1) || ' times in a row at step '
                || r.next_seq || '; giving up'
            ELSE r.error END,
        error_code = CASE
            WHEN due.was = 'running' AND r.recoveries + 1 > :max_recoveries THEN 'worker_lost'
            ELSE r.error_code END,
        finished_at = CASE
            WHEN due.was = 'running' AND r.recoveries + 1 > :max_recoveries THEN now()
            ELSE r.finished_at END,
        updated_at = now()
    FROM due
    WHERE r.id = due.id
    RETURNING r.id, r.tenant_id, r.epoch, r.status, due.was, due.lost_owner, r.recoveries,
              r.parent_id, r.error, r.program
    """
)

# A run past its wall-clock deadline is asked to stop, as a cancellation would, whatever it is
# doing: parked ones are woken for it, a running one stops at its next step or call out. Its
# worker then ends it `failed` with deadline_exceeded (its cancel hook runs first).
DEADLINE_SQL = text(
    """
    WITH late AS (
        SELECT id FROM runtime_run
        WHERE deadline_at <= now() AND NOT cancel_requested
          AND status NOT IN ('completed', 'failed', 'cancelled')
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE runtime_run AS r SET
        cancel_requested = true,
        cancel_reason = 'deadline_exceeded',
        status = CASE WHEN r.status = 'running' THEN r.status ELSE 'queued' END,
        wake_at = CASE WHEN r.status = 'running' THEN r.wake_at ELSE now() END,
        kicked_at = CASE WHEN r.status = 'running' THEN r.kicked_at ELSE now() END,
        updated_at = now()
    FROM late
    WHERE r.id = late.id
    RETURNING r.id, r.tenant_id, r.epoch, r.status, r.program, r.deadline_at
    """
)

NEXT_DUE_SQL = text(
    "SELECT least("
    "(SELECT min(wake_at) FROM runtime_run "
    " WHERE status IN ('queued', 'waiting', 'sleeping', 'throttled') AND wake_at > now()), "
    "(SELECT min(deadline_at) FROM runtime_run "
    " WHERE deadline_at > now() AND status NOT IN ('completed', 'failed', 'cancelled')))"
)


@dataclass
class SweepReport:
    kicked: list[uuid.UUID] = field(default_factory=list)
    recovered: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    next_due: datetime | None = None


class Sweeper:
    """A thread that sweeps every `interval` seconds, or sooner when a timer is due sooner."""

    def __init__(
        self,
        database: Database,
        kicker: Kicker,
        *,
        interval: float = 1.0,
        redeliver_after: float = 30.0,
        max_recoveries: int = 5,
        batch: int = 200,
    ) -> None:
        self.database = database
        self.kicker = kicker
        self.interval = interval
        self.redeliver_after = redeliver_after
        self.max_recoveries = max_recoveries
        self.batch = batch
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="quire-sweeper", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def sweep_once(self) -> SweepReport:
        report = SweepReport()
        with self.database.system_session() as session:
            for run_id, tenant_id, epoch, status, program, deadline in session.execute(
                DEADLINE_SQL, {"limit": self.batch}
            ).all():
                append_event(
                    session,
                    tenant_id=tenant_id,
                    run_id=run_id,
                    type=RunEventType.run_deadline_passed,
                    data={"deadline": deadline.isoformat()},
                )
                if status != "running":
                    report.kicked.append(run_id)
                    self.kicker.kick(run_id, epoch, program=program, session=session)
            rows = session.execute(
                SWEEP_SQL,
                {
                    "redeliver": self.redeliver_after,
                    "max_recoveries": self.max_recoveries,
                    "limit": self.batch,
                },
            ).all()
            for (
                run_id,
                tenant_id,
                epoch,
                status,
                was,
                lost_owner,
                recoveries,
                parent_id,
                error,
                program,
            ) in rows:
                if status == "failed":
                    report.failed.append(run_id)
                    append_event(
                        session,
                        tenant_id=tenant_id,
                        run_id=run_id,
                        type=RunEventType.run_failed,
                        data={"error": error},
                    )
                    if parent_id is not None:
                        self._tell_parent(session, parent_id, run_id, error)
                    continue
                if was == "running":
                    report.recovered.append(run_id)
                    append_event(
                        session,
                        tenant_id=tenant_id,
                        run_id=run_id,
                        type=RunEventType.run_recovered,
                        data={"lost_worker": lost_owner, "recoveries": recoveries},
                    )
                report.kicked.append(run_id)
                self.kicker.kick(run_id, epoch, program=program, session=session)
            report.next_due = session.execute(NEXT_DUE_SQL).scalar()
            session.commit()
        if report.recovered or report.failed:
            logger.info(
                "sweeper recovered %d run(s), failed %d after too many recoveries",
                len(report.recovered),
                len(report.failed),
            )
        return report

    def _tell_parent(self, session: object, parent_id: uuid.UUID, run_id: uuid.UUID, error: str) -> None:
        from quire.runtime.errors import RunFinished

        with contextlib.suppress(RunFinished):
            deliver_signal(
                session,  # type: ignore[arg-type]
                run_id=parent_id,
                name=f"child:{run_id}",
                key=f"child-end:{run_id}",
                payload={"status": "failed", "state": None, "error": error},
                kicker=self.kicker,
            )

    def _run(self) -> None:
        while not self.stopping.is_set():
            wait = self.interval
            try:
                report = self.sweep_once()
                if report.next_due is not None:
                    from quire.core.models import utcnow

                    wait = min(wait, max(0.05, (report.next_due - utcnow()).total_seconds()))
            except Exception:
                logger.warning("sweep failed; trying again", exc_info=True)
            self.stopping.wait(wait)
