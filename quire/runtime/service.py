"""The runtime's public face: start runs, look at them, signal and cancel them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import text
from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from quire.core.db import TenantSession, dumps
from quire.core.errors import Forbidden
from quire.core.pages import Keyset, Page, read_page
from quire.core.tenancy import Caller
from quire.core.tracing import current_traceparent
from quire.runtime import access
from quire.runtime.errors import (
    IdempotencyMismatch,
    InvalidState,
    RunFinished,
    RunNotFound,
    RunNotRetryable,
)
from quire.runtime.events import RunEventType, append_event
from quire.runtime.history import COMPENSATION_SEQ
from quire.runtime.idempotency import request_hash as hash_of_request
from quire.runtime.kicks import Kicker
from quire.runtime.models import (
    TERMINAL,
    HumanTask,
    Owner,
    Run,
    RunPublic,
    RunStatus,
    RunSummary,
    Signal,
    SignalPublic,
    Step,
    StepPublic,
    TaskPublic,
)
from quire.runtime.programs import registry
from quire.runtime.signals import deliver_signal, is_internal, lock_run

INSERT_RUN_SQL = text(
    """
    INSERT INTO runtime_run (id, tenant_id, program, program_version, input, status, wake_at,
                             kicked_at, epoch, next_seq, attempt, recoveries, cancel_requested,
                             idempotency_key, request_hash, parent_id, trace_parent, started_by,
                             started_role, deadline_at, created_at, updated_at)
    VALUES (:id, :tenant_id, :program, :version, CAST(:input AS jsonb), 'queued', now(), now(),
            0, 0, 0, 0, false, :key, :request_hash, :parent_id, :trace_parent, :started_by,
            :started_role, now() + make_interval(secs => CAST(:deadline_seconds AS double precision)),
            now(), now())
    ON CONFLICT (tenant_id, program, idempotency_key) DO NOTHING
    RETURNING id
    """
)

DESCENDANTS_SQL = text(
    """
    WITH RECURSIVE tree AS (
        SELECT id FROM runtime_run WHERE parent_id = :run_id
        UNION
        SELECT r.id FROM runtime_run r JOIN tree ON r.parent_id = tree.id
    )
    UPDATE runtime_run SET cancel_requested = true, updated_at = now()
    WHERE id IN (SELECT id FROM tree) AND status NOT IN ('completed', 'failed', 'cancelled')
    RETURNING id, tenant_id, status
    """
)


def create_run(
    session: Session,
    *,
    program: str,
    state: BaseModel | dict[str, Any],
    kicker: Kicker | None,
    version: int | None = None,
    idempotency_key: str | None = None,
    parent_id: uuid.UUID | None = None,
    tenant_id: uuid.UUID | None = None,
    owner: Owner | Caller | None = None,
    deadline_seconds: float | None = None,
    request_hash: str | None = None,
) -> tuple[Run, bool]:
    """Start a run of `program` (its latest version unless told); return it and whether it is new.

    `owner` is who starts it, as authenticated: the run is theirs (see runtime/access.py) and
    acts with their role; None is Quire itself. An idempotency key is the program's and is bound
    to the request (runtime/idempotency.py): `request_hash`, by default the hash of the state and
    the owner. The same key and request again return the first run; the same key with another
    request raises IdempotencyMismatch. `deadline_seconds` is a wall-clock deadline from now:
    past it, the sweeper stops the run wherever it is (failed, `deadline_exceeded`), even while
    parked.
    """
    definition = registry.get(program, version)
    try:
        data = state if isinstance(state, BaseModel) else definition.load_state(state)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'state'}: {item['msg']}"
            for item in error.errors()
        )
        raise InvalidState(f"the state does not fit program {definition.name!r}: {problems}") from None
    tenant = tenant_id or (session.tenant_id if isinstance(session, TenantSession) else None)
    if tenant is None:
        raise ValueError("create_run needs a TenantSession or a tenant_id")
    run_id = uuid.uuid4()
    dumped = definition.dump_state(data)
    if idempotency_key is not None and request_hash is None:
        request: dict[str, Any] = {"state": dumped, "owner": owner.principal_id if owner else None}
        if deadline_seconds is not None:
            request["deadline_seconds"] = deadline_seconds
        request_hash = hash_of_request(request)
    inserted = session.execute(
        INSERT_RUN_SQL,
        {
            "id": run_id,
            "tenant_id": tenant,
            "program": definition.name,
            "version": definition.version,
            "input": dumps(dumped),
            "key": idempotency_key,
            "request_hash": request_hash if idempotency_key is not None else None,
            "parent_id": parent_id,
            "trace_parent": current_traceparent(),
            "started_by": owner.principal_id if owner else None,
            "started_role": owner.role.value if owner else None,
            "deadline_seconds": deadline_seconds,
        },
    ).first()
    if inserted is None:
        existing = session.exec(
            select(Run).where(
                Run.tenant_id == tenant,
                Run.program == definition.name,
                Run.idempotency_key == idempotency_key,
            )
        ).one()
        # Runs started before keys were bound to requests have no hash: they match any request.
        if existing.request_hash is not None and existing.request_hash != request_hash:
            raise IdempotencyMismatch(
                f"idempotency key {idempotency_key!r} was used before for another request (another "
                "state, question, option or caller); send a new key for a new request"
            )
        return existing, False
    append_event(
        session,
        tenant_id=tenant,
        run_id=run_id,
        type=RunEventType.run_created,
        data={"program": definition.name, "version": definition.version, "parent_id": parent_id},
    )
    if kicker is not None:
        kicker.kick(run_id, 0, program=definition.name, session=session)
    run = session.get(Run, run_id)
    assert run is not None
    return run, True


def get_run(session: Session, *, run_id: uuid.UUID, caller: Caller | None = None) -> Run:
    """The run; with a `caller`, only if they may see it (runtime/access.py)."""
    if caller is not None:
        return access.visible_run(session, run_id=run_id, caller=caller)
    run = session.get(Run, run_id)
    if run is None:
        raise RunNotFound(f"no run {run_id}")
    return run


def describe_run(session: Session, *, run_id: uuid.UUID, caller: Caller | None = None) -> RunPublic:
    """A run with its steps, open tasks, unconsumed signals and children."""
    run = get_run(session, run_id=run_id, caller=caller)
    steps = session.exec(select(Step).where(Step.run_id == run_id).order_by(col(Step.seq))).all()
    tasks = session.exec(
        select(HumanTask).where(HumanTask.run_id == run_id, HumanTask.status == "open")
    ).all()
    signals = session.exec(
        select(Signal)
        .where(Signal.run_id == run_id, col(Signal.consumed_seq).is_(None))
        .order_by(col(Signal.created_at))
    ).all()
    children = session.exec(select(Run).where(Run.parent_id == run_id).order_by(col(Run.created_at))).all()
    if caller is not None:
        children = [child for child in children if access.may_see(caller, child)]
    return RunPublic(
        **RunSummary.model_validate(run).model_dump(),
        input=run.input,
        state=run.state,
        wake_at=run.wake_at,
        waiting_for=run.waiting_for,
        cancel_requested=run.cancel_requested,
        cancel_reason=run.cancel_reason,
        deadline_at=run.deadline_at,
        worked_seconds=round(run.worked_seconds, 3),
        attempt=run.attempt,
        recoveries=run.recoveries,
        steps=[StepPublic.model_validate(step) for step in steps],
        open_tasks=[TaskPublic.model_validate(task) for task in tasks],
        pending_signals=[SignalPublic.model_validate(signal) for signal in signals],
        children=[RunSummary.model_validate(child) for child in children],
    )


def list_runs(
    session: Session,
    *,
    caller: Caller | None = None,
    status: RunStatus | None = None,
    program: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
    exclude_programs: Sequence[str] = (),
) -> tuple[list[Run], int]:
    """Runs, newest first; with a `caller`, those they may see. `since` (at or after) and `until`
    (before) bound their creation; runs of `exclude_programs` are left out. The count is of every
    run the filters keep, on any page."""
    query = _runs(
        caller=caller,
        status=status,
        program=program,
        since=since,
        until=until,
        exclude_programs=exclude_programs,
    )
    count = select(func.count()).select_from(query.subquery())
    rows = session.exec(query.order_by(*RUN_PAGES.order_by()).offset(offset).limit(limit)).all()
    return list(rows), int(session.exec(count).one())


# Runs newest first; a page's cursor is its last run's (created_at, id).
RUN_PAGES = Keyset((col(Run.created_at), col(Run.id)))


def page_runs(
    session: Session,
    *,
    caller: Caller | None = None,
    status: RunStatus | None = None,
    program: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[Run]:
    """A page of the runs `list_runs` lists, after `cursor`."""
    query = _runs(caller=caller, status=status, program=program, since=since, until=until)
    return read_page(session, query, keyset=RUN_PAGES, cursor=cursor, limit=limit)


def _runs(
    *,
    caller: Caller | None,
    status: RunStatus | None,
    program: str | None,
    since: datetime | None,
    until: datetime | None,
    exclude_programs: Sequence[str] = (),
) -> SelectOfScalar[Run]:
    filters = []
    if caller is not None:
        filters.append(access.visible_runs(caller))
    if status is not None:
        filters.append(col(Run.status) == status)
    if program is not None:
        filters.append(col(Run.program) == program)
    if exclude_programs:
        filters.append(col(Run.program).not_in(list(exclude_programs)))
    if since is not None:
        filters.append(col(Run.created_at) >= since)
    if until is not None:
        filters.append(col(Run.created_at) < until)
    return select(Run).where(*filters)


def send_signal(
    session: Session,
    *,
    run_id: uuid.UUID,
    name: str,
    payload: Any = None,
    key: str | None = None,
    kicker: Kicker | None,
    sender: Caller | None = None,
) -> bool:
    """Signal a run (idempotent by `key`); False if this key was delivered before.

    From a `sender` (a person, through the API): only to a run they may move, and never a
    signal that the runtime delivers itself (a process's events, tasks' decisions).
    """
    if sender is not None:
        access.movable_run(session, run_id=run_id, caller=sender)
        if is_internal(name):
            raise Forbidden(
                f"signal {name!r} is the runtime's own: a process's events go to "
                "/v1/runs/{id}/events and a task's decision to /v1/tasks/{id}/decision"
            )
    return deliver_signal(
        session, run_id=run_id, name=name, key=key, payload=payload, kicker=kicker, sender=sender
    )


def cancel_descendants(session: Session, *, run_id: uuid.UUID, kicker: Kicker | None) -> list[uuid.UUID]:
    """Ask every live descendant of `run_id` to stop, waking the parked ones so they do."""
    cancelled = []
    for child_id, tenant_id, status in session.execute(DESCENDANTS_SQL, {"run_id": run_id}).all():
        cancelled.append(child_id)
        append_event(
            session,
            tenant_id=tenant_id,
            run_id=child_id,
            type=RunEventType.run_cancel_requested,
            data={"by": "parent", "parent_id": run_id},
        )
        if status != RunStatus.running:
            _wake_for_cancel(session, child_id, kicker)
    return cancelled


def cancel_run(
    session: Session,
    *,
    run_id: uuid.UUID,
    kicker: Kicker | None,
    reason: str | None = None,
    caller: Caller | None = None,
) -> Run:
    """Ask a run and its descendants to stop; each stops at its next step boundary.

    With a `caller`, only a run they may move (its owner, or an administrator)."""
    if caller is not None:
        access.movable_run(session, run_id=run_id, caller=caller)
    tenant_id, status, _ = lock_run(session, run_id)
    if status in TERMINAL:
        raise RunFinished(f"run {run_id} has {status.value} already")
    session.execute(
        text("UPDATE runtime_run SET cancel_requested = true, updated_at = now() WHERE id = :id"),
        {"id": run_id},
    )
    append_event(
        session,
        tenant_id=tenant_id,
        run_id=run_id,
        type=RunEventType.run_cancel_requested,
        data={"reason": reason, "by": caller.principal_id if caller else None},
    )
    if status != RunStatus.running:
        _wake_for_cancel(session, run_id, kicker)
    cancel_descendants(session, run_id=run_id, kicker=kicker)
    session.flush()
    run = get_run(session, run_id=run_id)
    session.refresh(run)
    return run


def _wake_for_cancel(session: Session, run_id: uuid.UUID, kicker: Kicker | None) -> None:
    row = session.execute(
        text(
            "UPDATE runtime_run SET status = 'queued', wake_at = now(), kicked_at = now() "
            "WHERE id = :id AND status IN ('queued', 'waiting', 'sleeping', 'throttled', 'blocked') "
            "RETURNING epoch, program"
        ),
        {"id": run_id},
    ).first()
    if row is not None and kicker is not None:
        kicker.kick(run_id, int(row[0]), program=row[1], session=session)


def programs_of(session: Session, *, caller: Caller) -> list[str]:
    """The programs of the runs `caller` may see (for a filter)."""
    return sorted(session.exec(select(Run.program).where(access.visible_runs(caller)).distinct()).all())


def step_result(session: Session, *, run_id: uuid.UUID, seq: int) -> Any:
    """What step `seq` of the run recorded (None if it has not completed)."""
    step = session.get(Step, (run_id, seq))
    return step.result if step is not None else None


RETRYABLE = frozenset({RunStatus.failed, RunStatus.cancelled, RunStatus.blocked})

# The failures the run ended on: those after its last completed step. A failure the program
# went past (a tool's error the model was told of) is part of its history and stays.
FORGET_FAILED_STEPS_SQL = text(
    """
    DELETE FROM runtime_step WHERE run_id = :id AND status = 'failed'
      AND seq > COALESCE((SELECT max(seq) FROM runtime_step
                          WHERE run_id = :id AND status = 'completed'), -1)
    RETURNING seq, name, error, error_code
    """
)

REOPEN_SQL = text(
    """
    UPDATE runtime_run SET
        status = 'queued', wake_at = now(), kicked_at = now(), error = NULL, error_code = NULL,
        finished_at = NULL, cancel_requested = false, cancel_reason = NULL, waiting_for = NULL,
        attempt = 0, recoveries = 0, lease_owner = NULL, lease_expires_at = NULL,
        deadline_at = now() + make_interval(secs => CAST(:deadline_seconds AS double precision)),
        updated_at = now()
    WHERE id = :id
    RETURNING epoch, program
    """
)


def retry_run(
    session: Session,
    *,
    run_id: uuid.UUID,
    kicker: Kicker | None,
    caller: Caller | None = None,
    deadline_seconds: float | None = None,
) -> Run:
    """Resume a failed, cancelled or blocked run from where it stopped, keeping every step it
    recorded (as Temporal's reset and DBOS's fork do): only its failed steps run again.

    The failed steps' records are removed (the `run.retried` event keeps what they said), the
    run is queued, and its program replays its history up to them. A run whose cancel hook ran
    cannot be retried (what it undid stays undone), nor a child (its parent has moved on).
    A new `deadline_seconds` may be given; the old deadline does not carry over."""
    run = (
        access.movable_run(session, run_id=run_id, caller=caller)
        if caller
        else get_run(session, run_id=run_id)
    )
    tenant_id, status, _ = lock_run(session, run_id)
    if status not in RETRYABLE:
        raise RunNotRetryable(
            f"run {run_id} is {status.value}; only failed, cancelled or blocked runs can be retried"
        )
    if run.parent_id is not None:
        raise RunNotRetryable(f"run {run_id} is a child of run {run.parent_id}; retry that one")
    compensated = session.execute(
        text("SELECT 1 FROM runtime_step WHERE run_id = :id AND seq >= :first LIMIT 1"),
        {"id": run_id, "first": COMPENSATION_SEQ},
    ).first()
    if compensated is not None:
        raise RunNotRetryable(
            f"run {run_id} ran its cancel hook; what it undid stays undone, so start a new run"
        )
    forgotten = [
        {"seq": seq, "name": name, "error": error, "code": code}
        for seq, name, error, code in session.execute(FORGET_FAILED_STEPS_SQL, {"id": run_id})
    ]
    epoch, program = session.execute(REOPEN_SQL, {"id": run_id, "deadline_seconds": deadline_seconds}).one()
    append_event(
        session,
        tenant_id=tenant_id,
        run_id=run_id,
        type=RunEventType.run_retried,
        data={
            "was": status.value,
            "error": run.error,
            "code": run.error_code,
            "steps_again": forgotten,
            "by": caller.principal_id if caller else None,
        },
    )
    if kicker is not None:
        kicker.kick(run_id, int(epoch), program=program, session=session)
    session.flush()
    session.refresh(run)
    return run
