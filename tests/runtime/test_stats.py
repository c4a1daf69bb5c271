"""What the runtime counts about its runs (runtime/stats.py), in a tenant's session: runs per hour,
live runs, runs due, failures, events, step durations, and the tenant's own kicks in the broker."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import psycopg
import pytest
from sqlmodel import Session

from quire.core.db import Database
from quire.core.models import Tenant
from quire.core.pgqueue import enqueue_in
from quire.runtime import stats
from quire.runtime.events import append_event
from quire.runtime.local import LocalKicker
from quire.runtime.models import Run, RunStatus, Step, StepKind


def make_tenant(database: Database) -> uuid.UUID:
    with database.system_session() as session:
        tenant = Tenant(name=f"unit-{uuid.uuid4().hex[:8]}")
        session.add(tenant)
        session.commit()
    return tenant.id


@pytest.fixture
def tenant_id(database: Database) -> uuid.UUID:
    return make_tenant(database)


def make_run(
    session: Session,
    tenant_id: uuid.UUID,
    *,
    created_at: datetime,
    status: RunStatus = RunStatus.queued,
    program: str = "test.ingest",
    finished_at: datetime | None = None,
    wake_at: datetime | None = None,
    error: str | None = None,
) -> Run:
    run = Run(
        tenant_id=tenant_id,
        program=program,
        program_version=1,
        input={},
        status=status,
        created_at=created_at,
        updated_at=created_at,
        finished_at=finished_at,
        wake_at=wake_at,
        error=error,
    )
    session.add(run)
    session.flush()
    return run


def test_the_last_hours_end_with_the_current_one() -> None:
    now = datetime(2026, 12, 3, 14, 37, 5, 123)
    hours = stats.last_hours(now, 3)
    assert hours == [datetime(2026, 12, 3, 12), datetime(2026, 12, 3, 13), datetime(2026, 12, 3, 14)]
    assert len(stats.last_hours(now)) == 24 and stats.last_hours(now)[0] == datetime(2026, 12, 2, 15)


def test_runs_are_counted_in_the_hour_they_started_and_the_hour_they_ended(
    database: Database, tenant_id: uuid.UUID
) -> None:
    with database.tenant_session(tenant_id) as session:
        now = stats.database_now(session)
        slots = stats.last_hours(now, 3)
        minute = timedelta(minutes=1)
        make_run(
            session,
            tenant_id,
            created_at=slots[0] + 10 * minute,
            finished_at=slots[1] + 5 * minute,
            status=RunStatus.completed,
        )
        make_run(
            session, tenant_id, created_at=slots[1] + minute, finished_at=slots[2], status=RunStatus.failed
        )
        make_run(session, tenant_id, created_at=slots[2], status=RunStatus.running, program="agent.answer")
        # Started before the window, cancelled inside it; and a run entirely before it.
        make_run(
            session,
            tenant_id,
            created_at=slots[0] - timedelta(hours=1),
            finished_at=slots[0] + minute,
            status=RunStatus.cancelled,
            program="agent.answer",
        )
        make_run(
            session,
            tenant_id,
            created_at=now - timedelta(hours=5),
            finished_at=now - timedelta(hours=4),
            status=RunStatus.completed,
        )
        activity = stats.hourly_activity(session, now=now, hours=3)
    assert activity.hours == slots
    assert activity.started == [1, 1, 1]
    assert activity.completed == [0, 1, 0]
    assert activity.failed == [0, 0, 1]
    assert activity.cancelled == [1, 0, 0]
    assert list(activity.by_program) == ["agent.answer", "test.ingest"]
    assert activity.by_program["test.ingest"] == {
        "started": [1, 1, 0],
        "completed": [0, 1, 0],
        "failed": [0, 0, 1],
        "cancelled": [0, 0, 0],
    }
    assert activity.by_program["agent.answer"]["started"] == [0, 0, 1]
    assert activity.by_program["agent.answer"]["cancelled"] == [1, 0, 0]


def test_live_counts_name_every_live_status_and_only_the_tenants_runs(database: Database) -> None:
    ours, theirs = make_tenant(database), make_tenant(database)
    with database.system_session() as session:
        everyone_before = stats.live_counts(session)
    with database.tenant_session(ours) as session:
        now = stats.database_now(session)
        assert stats.live_counts(session) == dict.fromkeys(
            ["queued", "running", "waiting", "sleeping", "throttled"], 0
        )
        for status in (RunStatus.queued, RunStatus.queued, RunStatus.sleeping, RunStatus.completed):
            make_run(session, ours, created_at=now, status=status)
        session.commit()
    with database.tenant_session(theirs) as session:
        make_run(session, theirs, created_at=now, status=RunStatus.running)
        session.commit()
    with database.tenant_session(ours) as session:
        assert stats.live_counts(session) == {
            "queued": 2,
            "running": 0,
            "waiting": 0,
            "sleeping": 1,
            "throttled": 0,
        }
    # A system session counts across tenants.
    with database.system_session() as session:
        everyone = stats.live_counts(session)
    assert {k: everyone[k] - everyone_before[k] for k in everyone} == {
        "queued": 2,
        "running": 1,
        "waiting": 0,
        "sleeping": 1,
        "throttled": 0,
    }


def test_due_runs_are_queued_or_parked_past_their_wake_time(database: Database, tenant_id: uuid.UUID) -> None:
    with database.tenant_session(tenant_id) as session:
        now = stats.database_now(session)
        assert stats.due_runs(session) == (0, None)
        make_run(session, tenant_id, created_at=now - timedelta(minutes=10))
        make_run(
            session,
            tenant_id,
            created_at=now - timedelta(hours=2),
            status=RunStatus.sleeping,
            wake_at=now - timedelta(hours=1),
        )
        make_run(
            session, tenant_id, created_at=now, status=RunStatus.throttled, wake_at=now - timedelta(seconds=1)
        )
        # Not due: a future wake, a wait without a deadline, a run that is moving, a finished one.
        make_run(
            session,
            tenant_id,
            created_at=now - timedelta(days=1),
            status=RunStatus.sleeping,
            wake_at=now + timedelta(minutes=1),
        )
        make_run(
            session,
            tenant_id,
            created_at=now - timedelta(days=1),
            status=RunStatus.waiting,
            wake_at=now + timedelta(hours=1),
        )
        make_run(session, tenant_id, created_at=now - timedelta(days=1), status=RunStatus.waiting)
        make_run(session, tenant_id, created_at=now - timedelta(days=1), status=RunStatus.running)
        make_run(session, tenant_id, created_at=now - timedelta(days=1), status=RunStatus.completed)
        assert stats.due_runs(session) == (3, now - timedelta(hours=1))
        # Moving now or within a second: the queued and running ones and the two parked past their wake.
        assert stats.runs_about_to_move(session) == 4


def test_recent_failures_newest_first(database: Database, tenant_id: uuid.UUID) -> None:
    with database.tenant_session(tenant_id) as session:
        now = stats.database_now(session)
        older = make_run(
            session,
            tenant_id,
            created_at=now - timedelta(hours=3),
            finished_at=now - timedelta(hours=2),
            status=RunStatus.failed,
            error="parser crashed",
        )
        newer = make_run(
            session,
            tenant_id,
            created_at=now - timedelta(hours=3),
            finished_at=now - timedelta(hours=1),
            status=RunStatus.failed,
            program="agent.answer",
        )
        make_run(session, tenant_id, created_at=now, finished_at=now, status=RunStatus.completed)
        failures = stats.recent_failures(session)
        assert [(f.id, f.program, f.error) for f in failures] == [
            (newer.id, "agent.answer", ""),
            (older.id, "test.ingest", "parser crashed"),
        ]
        assert [f.id for f in stats.recent_failures(session, limit=1)] == [newer.id]
        assert sorted(stats.runs_by_program(session)) == [
            ("agent.answer", "failed", 1),
            ("test.ingest", "completed", 1),
            ("test.ingest", "failed", 1),
        ]


def test_event_counts_include_zeros_for_types_never_seen(database: Database, tenant_id: uuid.UUID) -> None:
    with database.tenant_session(tenant_id) as session:
        run = make_run(session, tenant_id, created_at=stats.database_now(session))
        for kind in ("step.completed", "step.completed", "run.failed", "run.started"):
            append_event(session, tenant_id=tenant_id, run_id=run.id, type=kind)
        counts = stats.event_counts(session, ["step.completed", "run.failed", "run.cancelled"])
    assert counts == {"step.completed": 2, "run.failed": 1, "run.cancelled": 0}


def test_step_durations_are_histogram_rows_per_program(database: Database, tenant_id: uuid.UUID) -> None:
    with database.tenant_session(tenant_id) as session:
        now = stats.database_now(session)
        ingest = make_run(session, tenant_id, created_at=now)
        answer = make_run(session, tenant_id, created_at=now, program="agent.answer")
        for run, seq, seconds in ((ingest, 0, 0.5), (ingest, 1, 2.0), (ingest, 2, 10.0), (answer, 0, 1.0)):
            session.add(
                Step(
                    tenant_id=tenant_id,
                    run_id=run.id,
                    seq=seq,
                    name=f"step-{seq}",
                    kind=StepKind.step,
                    started_at=now,
                    finished_at=now + timedelta(seconds=seconds),
                )
            )
        session.flush()
        buckets = stats.step_durations(session, (1.0, 5.0))
    assert buckets.bounds == (1.0, 5.0)
    rows = sorted(
        (program, count, float(total), *cumulative) for program, count, total, *cumulative in buckets.rows
    )
    # (program, steps, seconds in all, steps within 1 s, steps within 5 s)
    assert rows == [("agent.answer", 1, 1.0, 1, 1), ("test.ingest", 3, 12.5, 1, 2)]


def enqueue(session: Session, run_id: uuid.UUID, *, background: bool = False, delay_ms: int = 0) -> None:
    """A kick of `run_id` in the PostgreSQL broker's table, written as a tenant's transaction writes it."""
    kicker = LocalKicker()
    actor = kicker.background_actor if background else kicker.actor
    driver = session.connection().connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    enqueue_in(driver, actor.message(str(run_id), 1), delay_ms=delay_ms)


def test_queue_depth_counts_the_tenants_own_kicks_only(database: Database) -> None:
    ours, theirs = make_tenant(database), make_tenant(database)
    with database.tenant_session(theirs) as session:
        now = stats.database_now(session)
        stranger = make_run(session, theirs, created_at=now)
        enqueue(session, stranger.id)
        session.commit()
    with database.tenant_session(ours) as session:
        queued = make_run(session, ours, created_at=now - timedelta(minutes=5))
        parked = make_run(
            session, ours, created_at=now, status=RunStatus.sleeping, wake_at=now + timedelta(hours=1)
        )
        enqueue(session, queued.id)
        enqueue(session, queued.id, background=True)
        enqueue(session, parked.id, delay_ms=3_600_000)
        session.flush()

        assert stats.queue_depth(session, postgres_broker=False) == stats.QueueDepth(
            due=1, oldest_due=now - timedelta(minutes=5)
        )
        depth = stats.queue_depth(session, postgres_broker=True)
        assert (depth.due, depth.oldest_due) == (1, now - timedelta(minutes=5))
        assert (depth.broker_ready, depth.broker_in_flight, depth.broker_delayed, depth.broker_dead) == (
            2,
            0,
            1,
            0,
        )
        assert depth.broker_oldest is not None
        session.commit()  # kept, so the other tenant's count below would see ours if it leaked
    with database.tenant_session(theirs) as session:
        depth = stats.queue_depth(session, postgres_broker=True)
        assert (depth.due, depth.broker_ready, depth.broker_delayed) == (1, 1, 0)
