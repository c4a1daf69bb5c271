"""Children, cancellation with compensation, and human tasks with escalation."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from pydantic import BaseModel

from quire.core.models import Role
from quire.core.tenancy import Caller
from quire.runtime.context import RunContext
from quire.runtime.errors import TaskAlreadyDecided
from quire.runtime.programs import program
from quire.runtime.service import cancel_run
from quire.runtime.tasks import decide_task, list_tasks
from tests.harness import Harness

compensated: list[str] = []


class Family(BaseModel):
    children: int = 2
    results: list[str] = []


class Child(BaseModel):
    name: str = ""


def undo_child(ctx: RunContext, state: Child) -> None:
    ctx.step("undo", lambda: compensated.append(state.name))


@program("test.child", on_cancel=undo_child)
def child(ctx: RunContext, state: Child) -> Child:
    ctx.step("work", lambda: None)
    ctx.wait_for_signal("finish")
    return state


@program("test.parent")
def parent(ctx: RunContext, state: Family) -> Family:
    ids = [ctx.start_child("test.child", Child(name=f"c{i}")) for i in range(state.children)]
    for child_id in ids:
        outcome = ctx.wait_for_child(child_id)
        state.results.append(outcome["status"])
    return state


def test_a_parent_waits_for_its_children(harness: Harness) -> None:
    run_id = harness.start("test.parent", Family())
    harness.drive()
    parent_run = harness.run(run_id)
    assert parent_run.status == "waiting" and len(parent_run.children) == 2
    for kid in parent_run.children:
        harness.signal(kid.id, "finish")
    harness.drive()
    assert harness.run(run_id).state == {"children": 2, "results": ["completed", "completed"]}


def test_cancelling_a_run_cancels_its_children_and_runs_their_compensation(
    harness: Harness,
) -> None:
    compensated.clear()
    run_id = harness.start("test.parent", Family())
    harness.drive()
    kids = [kid.id for kid in harness.run(run_id).children]
    with harness.database.tenant_session(harness.tenant_id) as session:
        cancel_run(session, run_id=run_id, kicker=harness.kicker, reason="test")
        session.commit()
    harness.drive()
    assert harness.run(run_id).status == "cancelled"
    assert [harness.run(kid).status for kid in kids] == ["cancelled", "cancelled"]
    assert sorted(compensated) == ["c0", "c1"]
    assert "run.cancelled" in harness.events(kids[0])


class Approval(BaseModel):
    decision: str | None = None
    by: str | None = None


@program("test.approval")
def approval(ctx: RunContext, state: Approval) -> Approval:
    answer = ctx.human_task(
        "Approve the refund",
        role=Role.reviewer,
        payload={"amount": 120},
        options=["approve", "reject"],
        due=timedelta(seconds=0.5),
        escalate_to=Role.admin,
    )
    state.decision, state.by = answer["decision"], answer["decided_by"]
    return state


def caller(harness: Harness, role: Role) -> Caller:
    import uuid

    return Caller(principal_id=uuid.uuid4(), tenant_id=harness.tenant_id, name=role.value, role=role)


def test_a_human_task_holds_no_worker_and_resumes_the_run_when_decided(harness: Harness) -> None:
    run_id = harness.start("test.approval", Approval())
    harness.drive()
    run = harness.run(run_id)
    assert run.status == "waiting" and len(run.open_tasks) == 1
    task = run.open_tasks[0]
    reviewer = caller(harness, Role.reviewer)
    with harness.database.tenant_session(harness.tenant_id) as session:
        tasks, count = list_tasks(session, caller=reviewer)
        assert [t.id for t in tasks] == [task.id] and count == 1
        tasks, _ = list_tasks(session, caller=caller(harness, Role.contributor))
        assert tasks == []
        decide_task(session, task_id=task.id, caller=reviewer, decision="approve", kicker=harness.kicker)
        session.commit()
    with (
        harness.database.tenant_session(harness.tenant_id) as session,
        pytest.raises(TaskAlreadyDecided),
    ):
        decide_task(session, task_id=task.id, caller=reviewer, decision="reject", kicker=harness.kicker)
    harness.drive()
    run = harness.run(run_id)
    assert run.status == "completed"
    assert run.state == {"decision": "approve", "by": str(reviewer.principal_id)}


def test_an_undecided_task_escalates_when_due(harness: Harness) -> None:
    run_id = harness.start("test.approval", Approval())
    harness.drive()
    time.sleep(0.6)
    harness.drive(until=1.5)
    run = harness.run(run_id)
    assert run.status == "waiting"
    assert run.open_tasks[0].role == "admin" and run.open_tasks[0].escalated_at is not None
    assert "task.escalated" in harness.events(run_id)
    from quire.runtime.errors import TaskNotFound

    # Escalated to administrators, the task is no longer the reviewers' to see or decide.
    with harness.database.tenant_session(harness.tenant_id) as session, pytest.raises(TaskNotFound):
        decide_task(
            session,
            task_id=run.open_tasks[0].id,
            caller=caller(harness, Role.reviewer),
            decision="approve",
            kicker=harness.kicker,
        )
    with harness.database.tenant_session(harness.tenant_id) as session:
        decide_task(
            session,
            task_id=run.open_tasks[0].id,
            caller=caller(harness, Role.admin),
            decision="reject",
            kicker=harness.kicker,
        )
        session.commit()
    harness.drive()
    state = harness.run(run_id).state
    assert state is not None and state["decision"] == "reject"
