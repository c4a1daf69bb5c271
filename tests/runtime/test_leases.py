"""Leases: a claim bumps the fencing epoch, one worker moves a run at a time, and the keeper
extends the leases it holds until another worker has the run."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import text

from quire.runtime.context import RunContext
from quire.runtime.errors import LeaseLost
from quire.runtime.executor import Executor
from quire.runtime.leases import LeaseKeeper, claim
from quire.runtime.programs import program
from tests.harness import Harness


class Idle(BaseModel):
    pass


@program("test.leases.idle")
def idle(ctx: RunContext, state: Idle) -> Idle:
    ctx.wait_for_signal("go")
    return state


class Seen(BaseModel):
    lease_expires_at: datetime | None = None


def read_then_work(ctx: RunContext, seconds: float) -> None:
    ctx.session.execute(text("SELECT 1"))  # the step's transaction begins here
    time.sleep(seconds)


def committed_lease(ctx: RunContext) -> datetime:
    row = ctx.session.execute(
        text("SELECT lease_expires_at FROM runtime_run WHERE id = :id"), {"id": ctx.run_id}
    )
    return row.scalar_one()  # type: ignore[no-any-return]


@program("test.leases.long-step")
def long_step(ctx: RunContext, state: Seen) -> Seen:
    ctx.step("work", read_then_work, ctx, 1.5)  # longer than the harness's 1 s lease
    state.lease_expires_at = ctx.step("look", committed_lease, ctx)
    return state


def start(harness: Harness) -> uuid.UUID:
    run_id = harness.start("test.leases.idle", Idle())
    harness.kicker.pending.clear()  # the tests claim by hand, as a worker would
    return run_id


def row(harness: Harness, run_id: uuid.UUID) -> dict[str, Any]:
    with harness.database.system_session() as session:
        found = session.execute(
            text(
                "SELECT status, epoch, lease_owner, lease_expires_at, lease_expires_at > now() AS leased "
                "FROM runtime_run WHERE id = :id"
            ),
            {"id": run_id},
        ).mappings()
        return dict(found.one())


def update(harness: Harness, run_id: uuid.UUID, assignments: str) -> None:
    with harness.database.system_session() as session:
        session.execute(text(f"UPDATE runtime_run SET {assignments} WHERE id = :id"), {"id": run_id})
        session.commit()


def run_out_the_lease(harness: Harness, run_id: uuid.UUID) -> None:
    """As if the worker stopped extending the lease (it died) and its time ran out."""
    update(harness, run_id, "lease_expires_at = now() - interval '1 second'")


def test_a_claim_bumps_the_epoch_and_takes_the_lease(harness: Harness) -> None:
    run_id = start(harness)
    claimed = claim(harness.database, run_id=run_id, epoch=0, owner="A", ttl=30)
    assert claimed is not None
    run, history = claimed
    assert (run.id, run.epoch, run.program, history) == (run_id, 1, "test.leases.idle", [])
    now = row(harness, run_id)
    assert (now["status"], now["epoch"], now["lease_owner"], now["leased"]) == ("running", 1, "A", True)


def test_a_stale_kick_claims_nothing(harness: Harness) -> None:
    run_id = start(harness)
    assert claim(harness.database, run_id=run_id, epoch=0, owner="A", ttl=30) is not None
    assert claim(harness.database, run_id=run_id, epoch=0, owner="B", ttl=30) is None  # a duplicate
    assert row(harness, run_id)["lease_owner"] == "A"


def test_a_run_under_a_live_lease_cannot_be_claimed_even_with_the_current_epoch(harness: Harness) -> None:
    run_id = start(harness)
    assert claim(harness.database, run_id=run_id, epoch=0, owner="A", ttl=30) is not None
    assert claim(harness.database, run_id=run_id, epoch=1, owner="B", ttl=30) is None
    assert (row(harness, run_id)["lease_owner"], row(harness, run_id)["epoch"]) == ("A", 1)


def test_once_the_lease_runs_out_another_worker_claims_the_run_and_the_first_cannot_write(
    harness: Harness,
) -> None:
    run_id = start(harness)
    first = claim(harness.database, run_id=run_id, epoch=0, owner="A", ttl=30)
    assert first is not None
    run_out_the_lease(harness, run_id)
    second = claim(harness.database, run_id=run_id, epoch=1, owner="B", ttl=30)
    assert second is not None and second[0].epoch == 2
    stale = RunContext(Executor(harness.database, harness.kicker, owner="A"), *first)
    with pytest.raises(LeaseLost), stale.journal.locked():
        pass
    with pytest.raises(LeaseLost):
        stale.step("write", lambda: None)
    assert row(harness, run_id)["lease_owner"] == "B"


def test_a_parked_run_is_claimed_only_when_its_timer_is_due_or_it_is_cancelled(harness: Harness) -> None:
    run_id = start(harness)
    update(harness, run_id, "status = 'sleeping', wake_at = now() + interval '1 hour'")
    assert claim(harness.database, run_id=run_id, epoch=0, owner="A", ttl=30) is None
    update(harness, run_id, "cancel_requested = true")
    cancelled = claim(harness.database, run_id=run_id, epoch=0, owner="A", ttl=30)
    assert cancelled is not None and cancelled[0].cancel_requested

    other = start(harness)
    update(harness, other, "status = 'waiting', wake_at = now() - interval '1 second'")
    assert claim(harness.database, run_id=other, epoch=0, owner="A", ttl=30) is not None


def test_an_ended_run_is_never_claimed(harness: Harness) -> None:
    run_id = start(harness)
    update(harness, run_id, "status = 'completed', cancel_requested = true")
    assert claim(harness.database, run_id=run_id, epoch=0, owner="A", ttl=30) is None


def test_a_claim_brings_the_run_history_in_order(harness: Harness) -> None:
    run_id = start(harness)
    harness.kicker.kick(run_id, 0, program="test.leases.idle")
    harness.drive()  # parks on the signal, after nothing; record two steps by hand
    with harness.database.system_session() as session:
        for seq, name in ((1, "second"), (0, "first")):
            session.execute(
                text(
                    "INSERT INTO runtime_step (tenant_id, run_id, seq, name, kind, status, attempt, "
                    "result, started_at, finished_at) VALUES (:t, :r, :seq, :name, 'step', "
                    "'completed', 1, CAST(:result AS jsonb), now(), now())"
                ),
                {"t": harness.tenant_id, "r": run_id, "seq": seq, "name": name, "result": f'"{name}"'},
            )
        session.commit()
    update(harness, run_id, "status = 'queued'")
    claimed = claim(harness.database, run_id=run_id, epoch=1, owner="A", ttl=30)
    assert claimed is not None
    assert [(s.seq, s.name, s.result) for s in claimed[1]] == [(0, "first", "first"), (1, "second", "second")]


def test_the_keeper_extends_the_leases_it_holds(harness: Harness) -> None:
    run_id = start(harness)
    claimed = claim(harness.database, run_id=run_id, epoch=0, owner="A", ttl=1)
    assert claimed is not None
    keeper = LeaseKeeper(harness.database, owner="A", ttl=60)
    keeper.hold(run_id, claimed[0].epoch)
    before = row(harness, run_id)["lease_expires_at"]
    keeper.extend()
    keeper.stop()
    assert row(harness, run_id)["lease_expires_at"] > before
    assert not keeper.is_lost(run_id, claimed[0].epoch)


def test_the_keeper_marks_a_lease_lost_once_another_worker_has_the_run(harness: Harness) -> None:
    run_id = start(harness)
    mine = claim(harness.database, run_id=run_id, epoch=0, owner="A", ttl=30)
    assert mine is not None
    keeper = LeaseKeeper(harness.database, owner="A", ttl=30)
    keeper.hold(run_id, mine[0].epoch)
    run_out_the_lease(harness, run_id)
    theirs = claim(harness.database, run_id=run_id, epoch=1, owner="B", ttl=30)
    assert theirs is not None
    keeper.extend()
    keeper.stop()
    assert keeper.is_lost(run_id, mine[0].epoch)
    assert not keeper.is_lost(run_id, theirs[0].epoch)
    assert row(harness, run_id)["lease_owner"] == "B"  # the heartbeat did not touch B's lease
    keeper.release(run_id, mine[0].epoch)
    assert not keeper.is_lost(run_id, mine[0].epoch)


def test_a_program_that_heartbeats_stops_once_its_lease_is_lost(harness: Harness) -> None:
    run_id = start(harness)
    mine = claim(harness.database, run_id=run_id, epoch=0, owner="A", ttl=30)
    assert mine is not None
    executor = Executor(harness.database, harness.kicker, owner="A", lease_ttl=30)
    executor.leases.hold(run_id, mine[0].epoch)
    ctx = RunContext(executor, *mine)
    ctx.heartbeat()  # still ours
    run_out_the_lease(harness, run_id)
    assert claim(harness.database, run_id=run_id, epoch=1, owner="B", ttl=30) is not None
    with pytest.raises(LeaseLost):
        ctx.heartbeat()
    executor.stop()


def test_the_keeper_thread_heartbeats_on_its_own(harness: Harness) -> None:
    run_id = start(harness)
    claimed = claim(harness.database, run_id=run_id, epoch=0, owner="A", ttl=0.6)
    assert claimed is not None
    first_expiry = row(harness, run_id)["lease_expires_at"]
    keeper = LeaseKeeper(harness.database, owner="A", ttl=0.6)
    keeper.hold(run_id, claimed[0].epoch)
    keeper.start()
    try:
        deadline = time.monotonic() + 10
        while row(harness, run_id)["lease_expires_at"] <= first_expiry and time.monotonic() < deadline:
            time.sleep(0.05)
        assert row(harness, run_id)["lease_expires_at"] > first_expiry
    finally:
        keeper.stop()


def test_a_step_that_outlasts_the_lease_commits_a_lease_that_runs_from_its_commit(
    harness: Harness,
) -> None:
    # The lease runs from the moment the step commits, not from the start of its transaction:
    # otherwise the sweeper would take the run from its healthy worker right after the step.
    run_id = harness.start("test.leases.long-step", Seen())
    harness.drive()  # the keeper is not running: only the step's commit extends the lease
    run = harness.run(run_id)
    assert run.status == "completed"
    work = next(step for step in run.steps if step.name == "work")
    ttl = timedelta(seconds=harness.executor.lease_ttl)
    assert work.finished_at - work.started_at >= timedelta(seconds=1.5)  # it outlasted the lease
    lease = Seen.model_validate(run.state).lease_expires_at
    assert lease is not None
    # finished_at is taken just before the commit: a lease from the commit ends after it plus
    # the TTL; one from the transaction's start (now()) would end ~0.5 s before the step did.
    assert lease >= work.finished_at + ttl, (lease, work.started_at, work.finished_at)


def test_a_thread_that_lost_a_run_does_not_stop_the_lease_of_the_thread_that_now_has_it(
    harness: Harness,
) -> None:
    # Both claims are this process's: the sweeper took the run from a thread whose commit had
    # let the lease lapse, and another thread claimed it. The first thread letting go of its
    # claim must not end the keeping of the second's.
    run_id = start(harness)
    first = claim(harness.database, run_id=run_id, epoch=0, owner="A", ttl=30)
    assert first is not None
    keeper = LeaseKeeper(harness.database, owner="A", ttl=30)
    keeper.hold(run_id, first[0].epoch)
    run_out_the_lease(harness, run_id)
    second = claim(harness.database, run_id=run_id, epoch=1, owner="A", ttl=1)
    assert second is not None
    keeper.hold(run_id, second[0].epoch)
    keeper.release(run_id, first[0].epoch)  # the first thread finds the run gone, and stops
    before = row(harness, run_id)["lease_expires_at"]
    keeper.extend()
    assert row(harness, run_id)["lease_expires_at"] > before
    assert not keeper.is_lost(run_id, second[0].epoch)
    keeper.stop()
