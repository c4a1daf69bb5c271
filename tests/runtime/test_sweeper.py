"""The sweeper: it kicks runs whose timer is due, hands runs whose worker died to another, and
gives up on a run that keeps losing its worker, telling its parent why."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel
from sqlalchemy import text

from quire.runtime.context import RunContext
from quire.runtime.leases import claim
from quire.runtime.programs import program
from quire.runtime.sweeper import Sweeper
from tests.harness import Harness


class Idle(BaseModel):
    pass


@program("test.sweeper.idle")
def idle(ctx: RunContext, state: Idle) -> Idle:
    ctx.step("work", lambda: None)
    ctx.wait_for_signal("go")
    return state


class Family(BaseModel):
    outcome: dict[str, Any] | None = None


@program("test.sweeper.parent")
def parent(ctx: RunContext, state: Family) -> Family:
    child_id = ctx.start_child("test.sweeper.idle", Idle())
    state.outcome = ctx.wait_for_child(child_id)
    return state


def start(harness: Harness, program: str = "test.sweeper.idle") -> uuid.UUID:
    run_id = harness.start(program, Family() if program == "test.sweeper.parent" else Idle())
    harness.kicker.pending.clear()  # the tests decide who advances what
    return run_id


def column(harness: Harness, run_id: uuid.UUID, name: str) -> Any:
    with harness.database.system_session() as session:
        return session.execute(
            text(f"SELECT {name} FROM runtime_run WHERE id = :id"), {"id": run_id}
        ).scalar()


def update(harness: Harness, run_id: uuid.UUID, assignments: str) -> None:
    with harness.database.system_session() as session:
        session.execute(text(f"UPDATE runtime_run SET {assignments} WHERE id = :id"), {"id": run_id})
        session.commit()


def crash_holding(harness: Harness, run_id: uuid.UUID, owner: str) -> int:
    """A worker claims the run's current kick and dies: its lease runs out. Returns the epoch."""
    claimed = claim(
        harness.database, run_id=run_id, epoch=column(harness, run_id, "epoch"), owner=owner, ttl=30
    )
    assert claimed is not None, "the run was free to claim"
    update(harness, run_id, "lease_expires_at = now() - interval '1 second'")
    return claimed[0].epoch


def kicks(harness: Harness) -> list[tuple[uuid.UUID, int]]:
    pending = list(harness.kicker.pending)
    harness.kicker.pending.clear()
    return pending


def test_a_run_whose_timer_is_due_is_kicked_and_one_still_to_come_is_not(harness: Harness) -> None:
    due, later = start(harness), start(harness)
    update(harness, due, "status = 'sleeping', wake_at = now() - interval '1 second', kicked_at = NULL")
    update(harness, later, "status = 'sleeping', wake_at = now() + interval '1 hour', kicked_at = NULL")
    report = harness.sweeper.sweep_once()
    assert due in report.kicked and later not in report.kicked
    assert (due, 0) in kicks(harness)
    assert report.next_due is not None and report.next_due == column(harness, later, "wake_at")


def test_a_kicked_run_is_kicked_again_only_when_its_kick_looks_lost(harness: Harness) -> None:
    run_id = start(harness)
    update(harness, run_id, "status = 'sleeping', wake_at = now() - interval '1 second', kicked_at = NULL")
    assert run_id in harness.sweeper.sweep_once().kicked
    assert run_id not in harness.sweeper.sweep_once().kicked  # its kick is on its way
    impatient = Sweeper(harness.database, harness.kicker, redeliver_after=0)
    update(harness, run_id, "kicked_at = now() - interval '1 second'")
    assert run_id in impatient.sweep_once().kicked


def test_a_run_locked_by_another_sweeper_is_skipped_not_waited_for(harness: Harness) -> None:
    locked, free = start(harness), start(harness)
    for run_id in (locked, free):
        update(
            harness, run_id, "status = 'sleeping', wake_at = now() - interval '1 second', kicked_at = NULL"
        )
    with harness.database.system_session() as other:
        other.execute(text("SELECT 1 FROM runtime_run WHERE id = :id FOR UPDATE"), {"id": locked})
        report = harness.sweeper.sweep_once()
        other.rollback()
    assert free in report.kicked and locked not in report.kicked
    assert locked in harness.sweeper.sweep_once().kicked


def test_an_expired_lease_is_recovered_and_the_run_finishes_elsewhere(harness: Harness) -> None:
    run_id = start(harness)
    epoch = crash_holding(harness, run_id, owner="worker-that-died")
    report = harness.sweeper.sweep_once()
    assert run_id in report.recovered and run_id in report.kicked
    assert (column(harness, run_id, "status"), column(harness, run_id, "lease_owner")) == ("queued", None)
    assert column(harness, run_id, "recoveries") == 1
    assert (run_id, epoch) in kicks(harness)
    with harness.database.system_session() as session:
        recovered = session.execute(
            text("SELECT data FROM runtime_event WHERE run_id = :id AND type = 'run.recovered'"),
            {"id": run_id},
        ).scalar_one()
    assert recovered == {"lost_worker": "worker-that-died", "recoveries": 1}

    harness.executor.advance(run_id, epoch)  # another worker takes it from the kick
    run = harness.run(run_id)
    assert run.status == "waiting" and run.recoveries == 0  # a completed step resets the count


def test_a_run_that_keeps_losing_its_worker_fails_with_the_reason(harness: Harness) -> None:
    sweeper = Sweeper(harness.database, harness.kicker, max_recoveries=2)
    run_id = start(harness)
    for lost in range(1, 3):
        crash_holding(harness, run_id, owner=f"worker-{lost}")
        assert run_id in sweeper.sweep_once().recovered
        assert run_id in [kicked for kicked, _ in kicks(harness)]
    crash_holding(harness, run_id, owner="worker-3")
    report = sweeper.sweep_once()
    assert run_id in report.failed and run_id not in report.kicked
    run = harness.run(run_id)
    assert run.status == "failed" and run.finished_at is not None
    assert run.error == "its worker was lost 3 times in a row at step 0; giving up"
    assert harness.events(run_id)[-1] == "run.failed"
    assert run_id not in [kicked for kicked, _ in kicks(harness)]


def test_a_child_that_keeps_losing_its_worker_tells_its_parent(harness: Harness) -> None:
    parent_id = start(harness, "test.sweeper.parent")
    harness.kicker.kick(parent_id, 0, program="test.sweeper.parent")
    harness.executor.advance(*harness.kicker.pending.popleft())  # starts the child, then waits for it
    (child_id, _) = harness.kicker.pending.popleft()
    assert harness.run(parent_id).status == "waiting"

    crash_holding(harness, child_id, owner="worker-that-died")
    report = Sweeper(harness.database, harness.kicker, max_recoveries=0).sweep_once()
    assert child_id in report.failed
    assert [run_id for run_id, _ in harness.kicker.pending] == [parent_id]  # woken by the news
    harness.drive()
    parent_run = harness.run(parent_id)
    assert parent_run.status == "completed"
    assert parent_run.state == {
        "outcome": {
            "status": "failed",
            "state": None,
            "error": "its worker was lost 1 times in a row at step 0; giving up",
        }
    }
