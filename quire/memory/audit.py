"""The memory audit log: append-only, hash-chained per tenant, verifiable, replayable.

Each event stores the hash of the one before it and its own hash over its content, so changing,
deleting or reordering any row breaks the chain from that row on. The application role may only
insert and read these rows (see the migration).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from quire.core.db import dumps
from quire.core.models import utcnow
from quire.memory.models import MemoryEvent

GENESIS = "0" * 64


def event_hash(prev_hash: str, event: MemoryEvent) -> str:
    body = {
        "seq": event.seq,
        "tenant_id": str(event.tenant_id),
        "item_id": str(event.item_id) if event.item_id else None,
        "version_id": str(event.version_id) if event.version_id else None,
        "type": event.type,
        "actor": event.actor,
        "reason": event.reason,
        "data": json.loads(dumps(event.data)),
        # In UTC, as it was written: read back, a timestamp comes in the session's time zone.
        "created_at": event.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def serialise(session: Session, *, tenant_id: uuid.UUID) -> None:
    """Wait for the tenant's other memory moves to commit, and keep them waiting until this
    transaction does: every move records an event, so this is the order of the chain."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('quire-memory-audit'), hashtext(:tenant))"),
        {"tenant": str(tenant_id)},
    )


def record(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    type: str,
    actor: str,
    item_id: uuid.UUID | None = None,
    version_id: uuid.UUID | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> MemoryEvent:
    """Append an event in the caller's transaction (serialised per tenant to keep one chain)."""
    serialise(session, tenant_id=tenant_id)
    last = session.execute(
        text("SELECT seq, hash FROM memory_event WHERE tenant_id = :t ORDER BY seq DESC LIMIT 1"),
        {"t": tenant_id},
    ).first()
    seq, prev_hash = (int(last[0]) + 1, last[1]) if last else (1, GENESIS)
    event = MemoryEvent(
        tenant_id=tenant_id,
        seq=seq,
        item_id=item_id,
        version_id=version_id,
        type=type,
        actor=actor,
        reason=reason,
        data=json.loads(dumps(data or {})),
        created_at=utcnow(),
        prev_hash=prev_hash,
        hash="",
    )
    event.hash = event_hash(prev_hash, event)
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    broken_at: int | None
    message: str


def verify(events: Sequence[MemoryEvent]) -> Verification:
    """Recompute the chain over a tenant's events in order of seq."""
    prev_hash = GENESIS
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq:
            return Verification(False, expected_seq - 1, expected_seq, f"event {expected_seq} is missing")
        if event.prev_hash != prev_hash:
            return Verification(
                False, expected_seq - 1, event.seq, f"event {event.seq} does not follow {event.seq - 1}"
            )
        if event_hash(prev_hash, event) != event.hash:
            return Verification(
                False, expected_seq - 1, event.seq, f"event {event.seq} was altered after it was written"
            )
        prev_hash = event.hash
    return Verification(True, len(events), None, f"all {len(events)} events verify")


def tenant_events(session: Session, *, since_seq: int = 0, limit: int | None = None) -> list[MemoryEvent]:
    query = select(MemoryEvent).where(col(MemoryEvent.seq) > since_seq).order_by(col(MemoryEvent.seq))
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query).all())


@dataclass
class Replayed:
    """What the audit log says each version is, and which version each item has in effect."""

    version_states: dict[uuid.UUID, str]
    approved: dict[uuid.UUID, uuid.UUID | None]


def replay(events: Sequence[MemoryEvent]) -> Replayed:
    """Rebuild the current state of every item and version from the log alone."""
    states: dict[uuid.UUID, str] = {}
    approved: dict[uuid.UUID, uuid.UUID | None] = {}
    for event in events:
        to_state = event.data.get("to")
        if event.version_id is not None and isinstance(to_state, str):
            states[event.version_id] = to_state
            if event.item_id is not None:
                if to_state == "approved":
                    approved[event.item_id] = event.version_id
                elif approved.get(event.item_id) == event.version_id:
                    approved[event.item_id] = None
    return Replayed(version_states=states, approved=approved)
