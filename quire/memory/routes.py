"""HTTP API of governed memory: propose, list, inspect, review, withdraw, recall, audit."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from quire.content.environment import ContentDep
from quire.core.accepted import StatusLink
from quire.core.deps import ContributorDep, ReaderDep, ReviewerDep, TenantSessionDep
from quire.core.pages import DEFAULT_LIMIT, CursorQuery, LimitQuery
from quire.memory import proposals, reviews, service
from quire.memory.models import (
    AuditReport,
    BulkReject,
    BulkRejection,
    MemoriesPublic,
    MemoryDetail,
    MemoryKind,
    MemoryProposal,
    MemoryScope,
    MemoryVersionPublic,
    RecallResults,
    ReviewDecision,
    VersionState,
    WithdrawalAccepted,
)
from quire.memory.queue import QueueFilters
from quire.memory.recall import Reader, recall
from quire.runtime.routes import KickerDep

router = APIRouter(prefix="/v1/memories", tags=["memory"])


@router.post(
    "",
    status_code=202,
    responses={404: {"description": "`item_id` names no memory the caller may write a version of"}},
)
def propose_memory(
    body: MemoryProposal, caller: ContributorDep, session: TenantSessionDep, kicker: KickerDep
) -> MemoryDetail:
    """Propose a memory with its evidence; it is checked, then waits for a reviewer."""
    item, _ = proposals.propose(
        session,
        tenant_id=caller.tenant_id,
        proposal=body,
        proposed_by=str(caller.principal_id),
        kicker=kicker,
        caller=caller,
    )
    session.commit()
    return service.describe_item(session, item_id=item.id, caller=caller)


@router.get("")
def list_memories(
    caller: ReaderDep,
    session: TenantSessionDep,
    state: VersionState | None = None,
    scope: MemoryScope | None = None,
    kind: MemoryKind | None = None,
    collection: str | None = None,
    flag: Annotated[
        str | None, Query(description="A finding: injection, secrets, duplicate_of, source_changed …")
    ] = None,
    document: Annotated[uuid.UUID | None, Query(description="Memories quoting this document.")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Words the text holds, each.")] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> MemoriesPublic:
    """Memories with their newest version, newest first."""
    filters = QueueFilters(
        state=state.value if state else "",
        scope=scope.value if scope else "",
        kind=kind.value if kind else "",
        collection=collection or "",
        flag=flag or "",
        document=str(document) if document else "",
        q=" ".join((q or "").split()),
    )
    page = service.page_items(session, caller=caller, filters=filters, cursor=cursor, limit=limit)
    return MemoriesPublic(
        data=[service.item_public(session, item, version) for item, version in page.rows],
        count=page.count,
        next_cursor=page.next_cursor,
    )


@router.get("/search")
def search_memories(
    caller: ReaderDep,
    session: TenantSessionDep,
    environment: ContentDep,
    q: Annotated[str, Query(min_length=1, max_length=2000)],
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    as_of: Annotated[datetime | None, Query(description="Recall as of this moment (ISO 8601).")] = None,
    collection: Annotated[list[str] | None, Query()] = None,
    agent: str | None = None,
) -> RecallResults:
    """Approved memories in effect (now, or at `as_of`) in the caller's scopes, with their evidence."""
    return recall(
        session,
        query=q,
        reader=Reader(principal_id=caller.principal_id, agent=agent, collections=tuple(collection or ())),
        embedder=environment.embedder,
        k=k,
        as_of=as_of,
        dense_weight=environment.recall_dense_weight,
    )


@router.get("/audit")
def list_audit_events(
    caller: ReviewerDep,
    session: TenantSessionDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> AuditReport:
    """The tenant's memory event log, oldest first, and whether its whole hash chain verifies."""
    return service.audit_report(session, cursor=cursor, limit=limit)


@router.post(
    "/reject",
    responses={
        404: {"description": "one of `items` names no memory the caller may see; nothing is decided"},
        422: {"description": "the reason is empty (`reason_required`); nothing is decided"},
    },
)
def reject_memories(
    body: BulkReject, caller: ReviewerDep, session: TenantSessionDep, kicker: KickerDep
) -> BulkRejection:
    """Reject several memories with one reason; 404 (nothing decided) if one is not found. Each
    rejection that does not fit its memory's state is listed under `refused`; the others apply
    a moment later, as a single rejection does."""
    outcome = reviews.reject_many(
        session, item_ids=body.items, reason=body.reason, caller=caller, kicker=kicker
    )
    session.commit()
    return outcome


@router.get("/{item_id}")
def get_memory(item_id: uuid.UUID, caller: ReaderDep, session: TenantSessionDep) -> MemoryDetail:
    """A memory with all its versions, their evidence, and its events."""
    return service.describe_item(session, item_id=item_id, caller=caller)


@router.post("/{item_id}/review", status_code=202)
def review_memory(
    item_id: uuid.UUID,
    body: ReviewDecision,
    caller: ReviewerDep,
    session: TenantSessionDep,
    kicker: KickerDep,
) -> MemoryVersionPublic:
    """Approve, reject (with a reason), edit then approve, merge or supersede; 409 if it does not fit."""
    version = reviews.review(session, item_id=item_id, decision=body, caller=caller, kicker=kicker)
    session.commit()
    return service.version_public(session, version)


@router.delete("/{item_id}", status_code=202)
def withdraw_memory(
    item_id: uuid.UUID,
    caller: ReviewerDep,
    session: TenantSessionDep,
    kicker: KickerDep,
    reason: Annotated[str, Query(min_length=1, max_length=2000)],
) -> WithdrawalAccepted:
    """Take a memory back, with a reason; it stays in the audit log. Asynchronous: 202, and the
    memory's state (links.status) shows `withdrawn` once its review process has applied it."""
    version = reviews.withdraw(session, item_id=item_id, reason=reason, caller=caller, kicker=kicker)
    session.commit()
    return WithdrawalAccepted(
        memory_id=item_id, version_id=version.id, links=StatusLink(status=f"/v1/memories/{item_id}")
    )
