"""What the runtime counts about its runs: by hour and program, live ones by status, the ones due,
recent failures, step durations and events by type.

Each function takes a session: in a tenant session row-level security keeps the figures to the
tenant (the console's operations page); in a system session they span tenants (the operator's
/metrics). "Due" is defined once, here. The PostgreSQL broker's messages belong to no tenant: a
function counts the tenant's own kicks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from quire.runtime.kicks import ACTOR, BACKGROUND_ACTOR
from quire.runtime.models import RunStatus

LIVE = (RunStatus.queued, RunStatus.running, RunStatus.waiting, RunStatus.sleeping, RunStatus.throttled)

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
    WHERE status IN ('queued', 'running', 'waiting', 'sleeping', 'throttled', 'blocked')
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

BY_PROGRAM_SQL = text("SELECT program, status, count(*) FROM runtime_run GROUP BY 1, 2")

EVENTS_SQL = text("SELECT type, count(*) FROM runtime_event WHERE type = ANY(:types) GROUP BY 1")


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
    """Runs due, and with the PostgreSQL broker the kicks of the session's tenant waiting in it."""
    due, oldest = due_runs(session)
    if not postgres_broker:
        return QueueDepth(due=due, oldest_due=oldest)
    ready, in_flight, delayed, dead, broker_oldest = session.execute(BROKER_SQL).one()
    return QueueDepth(
        due=due,
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


def runs_by_program(session: Session) -> list[tuple[str, str, int]]:
    """(program, status, runs) for every program and status there are runs of."""
    return [(str(p), str(s), int(n)) for p, s, n in session.execute(BY_PROGRAM_SQL).all()]


def due_runs(session: Session) -> tuple[int, datetime | None]:
    """How many runs are due (a worker should be moving them now) and since when the oldest is."""
    count, oldest = session.execute(DUE_SQL).one()
    return int(count), oldest


ABOUT_TO_MOVE_SQL = text(
    "SELECT count(*) FROM runtime_run WHERE status IN ('queued', 'running') "
    "OR (status IN ('sleeping', 'throttled') AND wake_at <= now() + interval '1 second')"
)


def runs_about_to_move(session: Session) -> int:
    """Runs moving now or within a second: zero once the work in sight has settled."""
    return int(session.execute(ABOUT_TO_MOVE_SQL).scalar_one())


def event_counts(session: Session, types: Sequence[str]) -> dict[str, int]:
    """How many run events of each of `types` there are (zeros included)."""
    counts = dict.fromkeys(types, 0)
    for kind, count in session.execute(EVENTS_SQL, {"types": list(types)}).all():
        counts[str(kind)] = int(count)
    return counts


@dataclass(frozen=True)
class Buckets:
    """A histogram's rows: (labels..., count, sum, cumulative count per bound)."""

    bounds: tuple[float, ...]
    rows: list[tuple[Any, ...]]


def histogram_sql(value: str, source: str, labels: str, bounds: Sequence[float]) -> str:
    """SELECT labels, count, sum and a cumulative count per bound of `value` over `source`."""
    columns = ", ".join(f"count(*) FILTER (WHERE {value} <= {bound})" for bound in bounds)
    return f"SELECT {labels}, count(*), sum({value}), {columns} FROM {source} GROUP BY {labels}"


def step_durations(session: Session, bounds: tuple[float, ...]) -> Buckets:
    """Durations of recorded steps in seconds, by program."""
    duration = "extract(epoch FROM s.finished_at - s.started_at)"
    source = "runtime_step s JOIN runtime_run r ON r.id = s.run_id"
    rows = session.execute(text(histogram_sql(duration, source, "r.program", bounds))).all()
    return Buckets(bounds=bounds, rows=[tuple(row) for row in rows])
