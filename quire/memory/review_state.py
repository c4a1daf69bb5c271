"""The review process's typed state, and the move every one of its transitions makes: the
version's row, the hash-chained audit log and the checks of other open versions, in the caller's
transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session, select

from quire.core.models import Tenant, utcnow
from quire.memory import audit
from quire.memory.models import MemoryItem, MemoryVersion, VersionState
from quire.memory.rechecks import after_move
from quire.runtime.process import Event


class Review(BaseModel):
    """The typed state of one version's review process."""

    version_id: uuid.UUID
    item_id: uuid.UUID
    valid_to: datetime | None = None
    recertify_at: datetime | None = None
    pre_approved_by: str | None = None  # without separation of duties, an edit approves its copy
    decided_by: str | None = None
    proposed_by: str | None = None  # who proposed (or edited) this version
    separation_of_duties: bool = False  # the tenant's setting when it was proposed


def load_review(session: Session, review: Review) -> tuple[MemoryVersion, MemoryItem]:
    version = session.get(MemoryVersion, review.version_id, with_for_update=True)
    item = session.get(MemoryItem, review.item_id, with_for_update=True)
    if version is None or item is None:
        raise LookupError(f"memory version {review.version_id} is gone")
    return version, item


def move_version(
    session: Session,
    review: Review,
    event: Event,
    to: VersionState,
    *,
    reason: str | None = None,
    **data: Any,
) -> tuple[MemoryVersion, MemoryItem]:
    """Move the version to `to` in the caller's transaction: its row, the audit log, and the
    checks of the open versions the move may change (what every transition's action does)."""
    version, item = load_review(session, review)
    before = version.state
    version.state = to
    if reason is not None:
        version.state_reason = reason
    session.add(version)
    audit.record(
        session,
        tenant_id=version.tenant_id,
        type=f"memory.{to.value}",
        actor=event.actor or "system",
        item_id=item.id,
        version_id=version.id,
        reason=reason,
        data={"from": before.value, "to": to.value, "event": event.name, **data},
    )
    after_move(session, version=version, before=before)  # others' checks may read differently now
    return version, item


def end_version(version: MemoryVersion, item: MemoryItem) -> None:
    version.ended_at = utcnow()
    if item.approved_version_id == version.id:
        item.approved_version_id = None
    item.updated_at = utcnow()


def separation_of_duties(session: Session) -> bool:
    """The tenant's setting: whether nobody may approve a memory they proposed or edited."""
    tenant = session.exec(select(Tenant)).first()  # a tenant session sees its own tenant only
    return True if tenant is None else bool(tenant.separation_of_duties)
