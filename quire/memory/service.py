"""The memory layer's reading face: list, page, inspect and describe memories, the decisions a
version in review may take, the audit report, and counts of versions by state. Proposing is in
`proposals`, deciding in `reviews`."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlmodel import Session, col, func, select

from quire.core.models import Role
from quire.core.pages import Keyset, Page, page_of, read_page
from quire.core.tenancy import Caller
from quire.memory import audit
from quire.memory.decisions import (
    merge_candidates,
    slot_rivals,
)
from quire.memory.errors import MemoryNotFound
from quire.memory.models import (
    AuditReport,
    DecisionOptions,
    EventPublic,
    Evidence,
    EvidencePublic,
    MemoryDetail,
    MemoryEvent,
    MemoryItem,
    MemoryPublic,
    MemoryScope,
    MemoryVersion,
    MemoryVersionPublic,
    VersionState,
)
from quire.memory.queue import QueueFilters, filtered, readable_scope_filter
from quire.memory.recovery import failed_reviews


def list_items(
    session: Session,
    *,
    caller: Caller,
    state: VersionState | None = None,
    scope: MemoryScope | None = None,
    kind: str | None = None,
    collection: str | None = None,
    flag: str | None = None,
    document: uuid.UUID | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[tuple[MemoryItem, MemoryVersion]], int]:
    """Items with their newest version, the most recently changed first; reviewers see every
    scope, others what they may read (memory/queue.py holds the filters)."""
    filters = QueueFilters(
        state=state.value if state else "",
        scope=scope.value if scope else "",
        kind=kind or "",
        collection=collection or "",
        flag=flag or "",
        document=str(document) if document else "",
        q=" ".join((q or "").split()),
    )
    query = filtered(filters, caller=caller)
    count = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(MemoryItem.updated_at).desc()).offset(offset).limit(limit)).all()
    return [(item, version) for item, version in rows], int(count)


# The API's pages of memories: newest first by creation, which no review moves.
ITEM_PAGES = Keyset((col(MemoryItem.created_at), col(MemoryItem.id)))


def page_items(
    session: Session, *, caller: Caller, filters: QueueFilters, cursor: str | None = None, limit: int = 50
) -> Page[tuple[MemoryItem, MemoryVersion]]:
    """A page of items with their newest version, newest first, after `cursor`."""
    return read_page(session, filtered(filters, caller=caller), keyset=ITEM_PAGES, cursor=cursor, limit=limit)


def get_version(session: Session, version_id: uuid.UUID) -> MemoryVersion | None:
    return session.get(MemoryVersion, version_id)


def version_public(session: Session, version: MemoryVersion) -> MemoryVersionPublic:
    evidence = session.exec(
        select(Evidence).where(Evidence.version_id == version.id).order_by(col(Evidence.added_at))
    ).all()
    return MemoryVersionPublic.model_validate(version).model_copy(
        update={
            "evidence": [EvidencePublic.model_validate(e) for e in evidence],
            "review_error": failed_reviews(session, [version]).get(version.id),
        }
    )


def item_public(session: Session, item: MemoryItem, latest: MemoryVersion | None) -> MemoryPublic:
    return MemoryPublic(
        id=item.id,
        kind=item.kind,
        scope=item.scope,
        scope_ref=item.scope_ref,
        subject_key=item.subject_key,
        approved_version_id=item.approved_version_id,
        current_version_id=item.current_version_id,
        created_at=item.created_at,
        updated_at=item.updated_at,
        latest=version_public(session, latest) if latest else None,
    )


def get_item(session: Session, *, item_id: uuid.UUID, caller: Caller) -> MemoryItem:
    query = select(MemoryItem).where(MemoryItem.id == item_id)
    if not caller.allows(Role.reviewer):
        query = query.where(readable_scope_filter(caller))
    item = session.exec(query).first()
    if item is None:
        raise MemoryNotFound(f"no memory {item_id}")
    return item


def describe_item(session: Session, *, item_id: uuid.UUID, caller: Caller) -> MemoryDetail:
    item = get_item(session, item_id=item_id, caller=caller)
    versions = session.exec(
        select(MemoryVersion).where(MemoryVersion.item_id == item_id).order_by(col(MemoryVersion.number))
    ).all()
    events = session.exec(
        select(MemoryEvent).where(MemoryEvent.item_id == item_id).order_by(col(MemoryEvent.seq))
    ).all()
    latest = versions[-1] if versions else None
    return MemoryDetail(
        **item_public(session, item, latest).model_dump(exclude={"latest"}),
        latest=version_public(session, latest) if latest else None,
        versions=[version_public(session, v) for v in versions],
        events=[EventPublic.model_validate(e) for e in events],
    )


def decision_options(session: Session, *, item_id: uuid.UUID, caller: Caller) -> DecisionOptions:
    """For the item's newest version, if it is in review: the approved memories of its slot and
    the memories it may merge into (nothing else is offered: it would be refused)."""
    item = get_item(session, item_id=item_id, caller=caller)
    version = session.get(MemoryVersion, item.current_version_id) if item.current_version_id else None
    if version is None or version.state != VersionState.in_review:
        return DecisionOptions()
    return DecisionOptions(
        slot=[version_public(session, v) for _, v in slot_rivals(session, item=item)],
        merge_into=[
            version_public(session, v) for _, v in merge_candidates(session, item=item, version=version)
        ],
    )


def audit_report(session: Session, *, cursor: str | None = None, limit: int = 500) -> AuditReport:
    """A page of the tenant's memory events, oldest first, and whether the whole chain verifies."""
    everything = audit.tenant_events(session)
    verification = audit.verify(everything)
    page = page_of(everything, key=lambda event: (event.seq,), types=(int,), cursor=cursor, limit=limit)
    return AuditReport(
        data=[EventPublic.model_validate(e) for e in page.rows],
        count=page.count,
        next_cursor=page.next_cursor,
        verified=verification.ok,
        broken_at=verification.broken_at,
        message=verification.message,
    )


def unchecked_versions(session: Session) -> tuple[int, int]:
    """(versions not yet through their checks, versions in all): how far proposing has got."""
    unchecked, total = session.execute(
        text("SELECT count(*) FILTER (WHERE state IN ('proposed', 'checked')), count(*) FROM memory_version")
    ).one()
    return int(unchecked), int(total)


def count_in_state(session: Session, version_ids: list[uuid.UUID], state: VersionState) -> int:
    """How many of these versions are in `state`."""
    if not version_ids:
        return 0
    count = session.execute(
        text("SELECT count(*) FROM memory_version WHERE id = ANY(:ids) AND state = :state"),
        {"ids": version_ids, "state": state.value},
    ).scalar_one()
    return int(count)
