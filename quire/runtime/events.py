"""The run event log: append-only, ordered by id, what the SSE stream and the audit read."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from quire.runtime.models import RunEvent

APPEND_SQL = text(
    "INSERT INTO runtime_event (tenant_id, run_id, type, data, created_at) "
    "VALUES (:tenant_id, :run_id, :type, CAST(:data AS jsonb), now())"
)


def append_event(
    session: Session, *, tenant_id: uuid.UUID, run_id: uuid.UUID, type: str, data: Any = None
) -> None:
    from quire.core.db import dumps

    session.execute(APPEND_SQL, {"tenant_id": tenant_id, "run_id": run_id, "type": type, "data": dumps(data)})


def events_after(
    session: Session, *, run_id: uuid.UUID, after_id: int = 0, limit: int = 500
) -> list[RunEvent]:
    return list(
        session.exec(
            select(RunEvent)
            .where(RunEvent.run_id == run_id, col(RunEvent.id) > after_id)
            .order_by(col(RunEvent.id))
            .limit(limit)
        ).all()
    )
