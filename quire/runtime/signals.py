"""Delivering signals to runs, and waking a parked run, in the sender's transaction.

The sender locks the run's row before it inserts the signal, and a run that is about to park
locks the same row before it looks for signals: whichever comes second sees what the first did,
so a signal is never left unseen by a run that then waits forever.

A signal records who sent it, as authenticated (`sender`; None is Quire itself), never as a
payload says. Some names belong to the runtime: a process's events, human tasks' decisions and
children's ends arrive through the routes that check them, never as a plain signal.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from quire.core.db import dumps
from quire.core.tenancy import Caller
from quire.runtime.errors import RunFinished, RunNotFound
from quire.runtime.events import RunEventType, append_event
from quire.runtime.kicks import Kicker
from quire.runtime.models import TERMINAL, RunStatus

LOCK_RUN_SQL = text("SELECT tenant_id, status, epoch FROM runtime_run WHERE id = :run_id FOR UPDATE")

# Signals that only the runtime itself delivers, after the checks of the route that owns them.
INTERNAL_NAMES = frozenset({"event"})  # a process's events: POST /v1/runs/{id}/events
INTERNAL_PREFIXES = ("task:", "child:")  # human tasks' decisions; children's ends


def is_internal(name: str) -> bool:
    return name in INTERNAL_NAMES or name.startswith(INTERNAL_PREFIXES)


INSERT_SIGNAL_SQL = text(
    """
    INSERT INTO runtime_signal (id, tenant_id, run_id, name, key, payload, sender_id, sender_role,
                                created_at)
    VALUES (:id, :tenant_id, :run_id, :name, :key, CAST(:payload AS jsonb), :sender_id, :sender_role,
            now())
    ON CONFLICT (run_id, key) DO NOTHING
    RETURNING id
    """
)

WAKE_SQL = text(
    """
    UPDATE runtime_run SET status = 'queued', wake_at = now(), kicked_at = now(), updated_at = now()
    WHERE id = :run_id AND status IN ('waiting', 'sleeping', 'throttled')
    RETURNING epoch, program
    """
)


def lock_run(session: Session, run_id: uuid.UUID) -> tuple[uuid.UUID, RunStatus, int]:
    row = session.execute(LOCK_RUN_SQL, {"run_id": run_id}).first()
    if row is None:
        raise RunNotFound(f"no run {run_id}")
    return row[0], RunStatus(row[1]), int(row[2])


def wake(session: Session, *, run_id: uuid.UUID, kicker: Kicker | None) -> bool:
    """Move a parked run to the queue and kick it; False if it was not parked."""
    row = session.execute(WAKE_SQL, {"run_id": run_id}).first()
    if row is None:
        return False
    if kicker is not None:
        kicker.kick(run_id, int(row[0]), program=row[1], session=session)
    return True


def deliver_signal(
    session: Session,
    *,
    run_id: uuid.UUID,
    name: str,
    key: str | None = None,
    payload: Any = None,
    kicker: Kicker | None,
    wake_sleeping: bool = False,
    sender: Caller | None = None,
) -> bool:
    """Store a signal for `run_id` and wake the run if it waits; False if `key` was seen before.

    `sender` is the authenticated principal it comes from; None means Quire itself.
    """
    tenant_id, status, _ = lock_run(session, run_id)
    if status in TERMINAL:
        raise RunFinished(f"run {run_id} has {status.value}; it takes no more signals")
    signal_id = uuid.uuid4()
    inserted = session.execute(
        INSERT_SIGNAL_SQL,
        {
            "id": signal_id,
            "tenant_id": tenant_id,
            "run_id": run_id,
            "name": name,
            "key": key or str(signal_id),
            "payload": dumps(payload),
            "sender_id": sender.principal_id if sender else None,
            "sender_role": sender.role.value if sender else None,
        },
    ).first()
    if inserted is None:
        return False
    append_event(
        session,
        tenant_id=tenant_id,
        run_id=run_id,
        type=RunEventType.signal_received,
        data={"name": name, "key": key, "by": sender.principal_id if sender else None},
    )
    if status == RunStatus.waiting or (wake_sleeping and status in (RunStatus.sleeping,)):
        wake(session, run_id=run_id, kicker=kicker)
    return True
