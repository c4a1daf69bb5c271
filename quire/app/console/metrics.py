"""What the operations page counts: runs by hour and program, live runs by status, queue depth,
recent failures, spend per day and model, and the workers that are alive.

Every query of tenant data runs in the caller's tenant session, so row-level security scopes it.
Two things belong to no tenant: the workers (`core_worker`), read in a system session, and the
PostgreSQL broker's messages, which a function counts through the tenant's runs they kick.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from quire.core.db import Database
from quire.core.workers import BEAT_SECONDS
from quire.runtime.kicks import ACTOR, BACKGROUND_ACTOR
from quire.runtime.models import RunStatus

LIVE = (RunStatus.queued, RunStatus.running, RunStatus.waiting, RunStatus.sleeping, RunStatus.throttled)
ALIVE_WITHIN = timedelta(seconds=3 * BEAT_SECONDS)

HOURLY_STARTED_SQL = text(
    """
    SELECT date_trunc('hour', created_at) AS hour, program, count(*)
    FROM runtime_run WHERE created_at >= :since
    GROUP BY 1, 2
    """
)

HOURLY_FINISHED_SQL = text(
    """
    SELECT date_trunc('hour', finished_at) AS hour, program, status, count(*)
    FROM runtime_run
    WHERE finished_at >= :since AND status IN ('completed', 'failed', 'cancelled')
    GROUP BY 1, 2, 3
    """
)

LIVE_SQL = text(
    """
    SELECT status, count(*) FROM runtime_run
    WHERE status IN ('queued', 'running', 'waiting', 'sleeping', 'throttled')
    GROUP BY status
    """
)

# Runs a worker should be moving now and is not: queued, or parked past their wake time.
DUE_SQL = text(
    """
    SELECT count(*), min(coalesce(wake_at, created_at)) FROM runtime_run
    WHERE status = 'queued'
       OR (status IN ('waiting', 'sleeping', 'throttled') AND wake_at <= now())
    """
)

# Kicks of this tenant's runs waiting in the PostgreSQL broker's table. Tenant transactions may
# not read that table (it belongs to no tenant); this function counts the tenant's kicks only.
BROKER_SQL = text("SELECT * FROM quire_queue_depth(:actors)").bindparams(actors=[ACTOR, BACKGROUND_ACTOR])

FAILURES_SQL = text(
    """
    SELECT id, program, error, created_at, finished_at FROM runtime_run
    WHERE status = 'failed'
    ORDER BY finished_at DESC NULLS LAST, created_at DESC
    LIMIT :limit
    """
)

WORKERS_SQL = text(
    """
    SELECT id, hostname, pid, started_at, seen_at FROM core_worker
    WHERE seen_at > now() - make_interval(secs => :within)
    ORDER BY started_at
    """
)


def database_now(session: Session) -> datetime:
    value: datetime = session.execute(text("SELECT now()")).scalar_one()
    return value


def last_hours(now: datetime, hours: int = 24) -> list[datetime]:
    """The starts of the last `hours` whole hours, the current one last."""
    current = now.replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=hours - 1 - i) for i in range(hours)]


@dataclass
class Activity:
    """Runs started and finished per hour, in all and per program."""

    hours: list[datetime]
    started: list[int]
    completed: list[int]
    failed: list[int]
    cancelled: list[int]
    by_program: dict[str, dict[str, list[int]]]  # program -> started/completed/failed/cancelled -> per hour


def hourly_activity(session: Session, *, now: datetime, hours: int = 24) -> Activity:
    slots = last_hours(now, hours)
    at = {hour: i for i, hour in enumerate(slots)}
    since = slots[0]

    def empty() -> dict[str, list[int]]:
        return {name: [0] * hours for name in ("started", "completed", "failed", "cancelled")}

    by_program: dict[str, dict[str, list[int]]] = {}
    for hour, program, count in session.execute(HOURLY_STARTED_SQL, {"since": since}).all():
        if hour in at:
            by_program.setdefault(program, empty())["started"][at[hour]] += int(count)
    for hour, program, status, count in session.execute(HOURLY_FINISHED_SQL, {"since": since}).all():
        if hour in at:
            by_program.setdefault(program, empty())[str(status)][at[hour]] += int(count)
    totals = empty()
    for counts in by_program.values():
        for name, values in counts.items():
            totals[name] = [a + b for a, b in zip(totals[name], values, strict=True)]
    return Activity(
        hours=slots,
        started=totals["started"],
        completed=totals["completed"],
        failed=totals["failed"],
        cancelled=totals["cancelled"],
        by_program=dict(sorted(by_program.items())),
    )


def live_counts(session: Session) -> dict[str, int]:
    """Runs by status, for every status that is not final (zeros included)."""
    counts = {status.value: 0 for status in LIVE}
    for status, count in session.execute(LIVE_SQL).all():
        counts[str(status)] = int(count)
    return counts


@dataclass(frozen=True)
class QueueDepth:
    due: int  # runs due now that no worker is running
    oldest_due: datetime | None
    broker_ready: int | None = None  # None: the broker is not the PostgreSQL one
    broker_in_flight: int | None = None
    broker_delayed: int | None = None
    broker_dead: int | None = None
    broker_oldest: datetime | None = None


def queue_depth(session: Session, *, postgres_broker: bool) -> QueueDepth:
    due, oldest = session.execute(DUE_SQL).one()
    if not postgres_broker:
        return QueueDepth(due=int(due), oldest_due=oldest)
    ready, in_flight, delayed, dead, broker_oldest = session.execute(BROKER_SQL).one()
    return QueueDepth(
        due=int(due),
        oldest_due=oldest,
        broker_ready=int(ready),
        broker_in_flight=int(in_flight),
        broker_delayed=int(delayed),
        broker_dead=int(dead),
        broker_oldest=broker_oldest,
    )


@dataclass(frozen=True)
class Failure:
    id: Any
    program: str
    error: str
    created_at: datetime
    finished_at: datetime | None


def recent_failures(session: Session, *, limit: int = 20) -> list[Failure]:
    return [
        Failure(id=row[0], program=row[1], error=row[2] or "", created_at=row[3], finished_at=row[4])
        for row in session.execute(FAILURES_SQL, {"limit": limit}).all()
    ]


@dataclass(frozen=True)
class Worker:
    id: str
    hostname: str
    pid: int
    started_at: datetime
    seen_at: datetime


def alive_workers(database: Database) -> list[Worker]:
    """Workers that reported in the last three heartbeats; they serve every tenant."""
    with database.system_session() as session:
        rows = session.execute(WORKERS_SQL, {"within": ALIVE_WITHIN.total_seconds()}).all()
    return [Worker(id=r[0], hostname=r[1], pid=int(r[2]), started_at=r[3], seen_at=r[4]) for r in rows]
