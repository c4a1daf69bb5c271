"""Human tasks: opened by runs, decided by people through the API or the console."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, text
from sqlmodel import Session, col, func, select

from quire.core.errors import Forbidden
from quire.core.models import Role
from quire.core.pages import Keyset, Page, read_page
from quire.core.tenancy import Caller
from quire.runtime.errors import InvalidEvent, RunFinished, TaskAlreadyDecided, TaskNotFound
from quire.runtime.events import RunEventType, append_event
from quire.runtime.kicks import Kicker
from quire.runtime.models import TERMINAL, HumanTask
from quire.runtime.signals import deliver_signal, lock_run


def open_task(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    run_id: uuid.UUID,
    seq: int,
    title: str,
    role: Role,
    payload: Any = None,
    options: list[str] | None = None,
    due: timedelta | None = None,
    escalate_to: Role | None = None,
    assignee: uuid.UUID | None = None,
    signal_name: str | None = None,
    decided_through: str | None = None,
) -> uuid.UUID:
    task_id = uuid.uuid4()
    session.add(
        HumanTask(
            id=task_id,
            tenant_id=tenant_id,
            run_id=run_id,
            seq=seq,
            title=title,
            role=role.value,
            assignee=assignee,
            payload=payload,
            options=options,
            signal_name=signal_name or f"task:{task_id}",
            decided_through=decided_through,
            due_at=datetime.now(UTC) + due if due else None,
            escalate_to=escalate_to.value if escalate_to else None,
        )
    )
    session.flush()
    append_event(
        session,
        tenant_id=tenant_id,
        run_id=run_id,
        type=RunEventType.task_created,
        data={"task_id": task_id, "title": title, "role": role.value},
    )
    return task_id


def escalate_task(session: Session, *, task_id: uuid.UUID, role: Role, due: timedelta | None = None) -> bool:
    task = session.get(HumanTask, task_id, with_for_update=True)
    if task is None or task.status != "open" or task.escalated_at is not None:
        return False
    previous = task.role
    task.role = role.value
    task.escalated_at = datetime.now(UTC)
    task.due_at = task.escalated_at + due if due else None
    session.add(task)
    append_event(
        session,
        tenant_id=task.tenant_id,
        run_id=task.run_id,
        type=RunEventType.task_escalated,
        data={"task_id": task_id, "from": previous, "to": role.value},
    )
    return True


def list_tasks(
    session: Session,
    *,
    caller: Caller,
    status: str | None = "open",
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[HumanTask], int]:
    """The tasks the caller may decide: those assigned to them, and the unassigned ones of their
    role or a weaker one (every task of the tenant for administrators)."""
    query = select(HumanTask).where(may_decide(caller))
    count_query = select(func.count()).select_from(HumanTask).where(may_decide(caller))
    if status:
        query = query.where(HumanTask.status == status)
        count_query = count_query.where(HumanTask.status == status)
    rows = session.exec(query.order_by(col(HumanTask.created_at)).offset(offset).limit(limit)).all()
    return list(rows), int(session.exec(count_query).one())


# Tasks oldest first, as a queue is worked; a page's cursor is its last task's (created_at, id).
TASK_PAGES = Keyset((col(HumanTask.created_at), col(HumanTask.id)), descending=False)


def page_tasks(
    session: Session,
    *,
    caller: Caller,
    status: str | None = "open",
    cursor: str | None = None,
    limit: int = 50,
) -> Page[HumanTask]:
    """A page of the tasks `list_tasks` lists, after `cursor`."""
    query = select(HumanTask).where(may_decide(caller))
    if status:
        query = query.where(HumanTask.status == status)
    return read_page(session, query, keyset=TASK_PAGES, cursor=cursor, limit=limit)


def may_decide(caller: Caller) -> Any:
    """A WHERE clause for the tasks `caller` sees and may decide."""
    if caller.allows(Role.admin):
        return col(HumanTask.id).is_not(None)
    roles = [role.value for role in Role if caller.role.allows(role)]
    return or_(
        col(HumanTask.assignee) == caller.principal_id,
        col(HumanTask.assignee).is_(None) & col(HumanTask.role).in_(roles),
    )


def decide_task(
    session: Session,
    *,
    task_id: uuid.UUID,
    caller: Caller,
    decision: str,
    comment: str | None = None,
    data: Any = None,
    kicker: Kicker | None,
    through: str | None = None,
) -> HumanTask:
    """Record a person's decision and wake the run that waits for it.

    A task whose domain decides it through a route of its own (`decided_through`, where that
    domain's checks live) is decided only from there: `through` names it.
    """
    task = session.get(HumanTask, task_id)
    if task is None or not _visible(session, task, caller):
        raise TaskNotFound(f"no task {task_id}")
    if task.decided_through is not None and through != task.decided_through:
        raise Forbidden(f"task {task_id} is decided through {task.decided_through}, where its checks are")
    # The run's row first, then the task's: the same order the run itself locks them in.
    _, run_status, _ = lock_run(session, task.run_id)
    session.refresh(task, with_for_update=True)
    if task.status != "open":
        raise TaskAlreadyDecided(f"task {task_id} is {task.status} already")
    if run_status in TERMINAL:
        raise RunFinished(f"the run behind task {task_id} has {run_status.value}")
    if not caller.role.allows(Role(task.role)):
        raise Forbidden(f"this task is for the {task.role} role; the key's role is {caller.role.value}")
    if task.assignee is not None and task.assignee != caller.principal_id and caller.role != Role.admin:
        raise Forbidden("this task is assigned to someone else")
    if task.options and decision not in task.options:
        raise InvalidEvent(f"decision {decision!r} is not one of {', '.join(task.options)}")
    task.status = "decided"
    task.decision = {"decision": decision, "comment": comment, "data": data}
    task.decided_by = caller.principal_id
    task.decided_at = datetime.now(UTC)
    session.add(task)
    session.flush()
    append_event(
        session,
        tenant_id=task.tenant_id,
        run_id=task.run_id,
        type=RunEventType.task_decided,
        data={
            "task_id": task_id,
            "decision": decision,
            "by": caller.principal_id,
            "comment": comment,
        },
    )
    deliver_signal(
        session,
        sender=caller,
        run_id=task.run_id,
        name=task.signal_name,
        key=f"decision:{task_id}",
        payload={
            "task_id": str(task_id),
            "decision": decision,
            "comment": comment,
            "data": data,
            "decided_by": str(caller.principal_id),
        },
        kicker=kicker,
    )
    return task


def _visible(session: Session, task: HumanTask, caller: Caller) -> bool:
    row = session.exec(select(HumanTask.id).where(HumanTask.id == task.id, may_decide(caller))).first()
    return row is not None


def tasks_of_run(session: Session, *, run_id: uuid.UUID) -> list[HumanTask]:
    """Every human task of the run, decided or not, oldest first."""
    return list(
        session.exec(
            select(HumanTask).where(HumanTask.run_id == run_id).order_by(col(HumanTask.created_at))
        ).all()
    )


def open_tasks_of_runs(session: Session, run_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[HumanTask]]:
    """The open tasks of each of these runs, oldest first (runs with none are left out)."""
    found: dict[uuid.UUID, list[HumanTask]] = {}
    if not run_ids:
        return found
    query = (
        select(HumanTask)
        .where(col(HumanTask.run_id).in_(run_ids), HumanTask.status == "open")
        .order_by(col(HumanTask.created_at))
    )
    for task in session.exec(query).all():
        found.setdefault(task.run_id, []).append(task)
    return found


def expire_task(session: Session, *, task_id: uuid.UUID) -> None:
    """Close a task nobody decided in time: its run has moved on without an answer."""
    session.execute(
        text("UPDATE runtime_task SET status = 'cancelled' WHERE id = :id AND status = 'open'"),
        {"id": task_id},
    )
