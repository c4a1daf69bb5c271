"""Finding memories: by state, scope, kind, collection and flag, for the API's list and the
reviewer's queue (oldest first), one implementation for both.

A collection filter matches memories scoped to the collection and memories whose evidence
quotes a document of the collection (what the extractor proposes is tenant-scoped, but comes
from one collection's documents). Callers below the reviewer role see only the scopes they may
read (`readable_scope_filter`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

from sqlalchemy import and_, or_
from sqlalchemy import text as sql_text
from sqlmodel import Session, col, func, select

from quire.content.models import Document
from quire.core.models import Role
from quire.core.tenancy import Caller
from quire.memory.findings import FLAGS
from quire.memory.models import Evidence, MemoryItem, MemoryKind, MemoryScope, MemoryVersion, VersionState
from quire.runtime.models import HumanTask, Run, RunStatus, Signal
from quire.runtime.process import EVENT_SIGNAL

AWAITING = (VersionState.in_review, VersionState.needs_recertification)
ENDED = (RunStatus.failed, RunStatus.cancelled)  # a review run that ends so decided nothing
PAGE_SIZE = 50


@dataclass(frozen=True)
class QueueFilters:
    state: str = VersionState.in_review.value  # "" for every state
    collection: str = ""
    kind: str = ""
    flag: str = ""
    offset: int = 0
    scope: str = ""

    @classmethod
    def parse(cls, params: Any) -> QueueFilters:
        """Filters from query parameters; values the queue does not know are dropped."""
        state = params.get("state", VersionState.in_review.value)
        kind = params.get("kind", "")
        flag = params.get("flag", "")
        try:
            offset = max(0, int(params.get("offset", 0)))
        except ValueError:
            offset = 0
        return cls(
            state=state if state in {s.value for s in VersionState} else "",
            collection=str(params.get("collection", ""))[:200],
            kind=kind if kind in {k.value for k in MemoryKind} else "",
            flag=flag if flag in FLAGS else "",
            offset=offset,
        )

    def query_string(self, **changes: Any) -> str:
        values = {
            "state": self.state,
            "collection": self.collection,
            "kind": self.kind,
            "flag": self.flag,
            "offset": self.offset,
            **changes,
        }
        kept = {k: v for k, v in values.items() if v not in ("", 0) or k == "state"}
        return urlencode(kept)


@dataclass
class QueueRow:
    item: MemoryItem
    version: MemoryVersion
    flags: list[str]
    collections: list[str] = field(default_factory=list)
    pending: str | None = None  # a decision recorded, not yet applied by the worker


def filtered(filters: QueueFilters, *, caller: Caller | None = None) -> Any:
    """Items with their newest version that match `filters` (and that `caller` may read)."""
    query = select(MemoryItem, MemoryVersion).join(
        MemoryVersion, col(MemoryVersion.id) == col(MemoryItem.current_version_id)
    )
    if caller is not None and not caller.allows(Role.reviewer):
        query = query.where(readable_scope_filter(caller))
    if filters.scope:
        query = query.where(MemoryItem.scope == MemoryScope(filters.scope))
    if filters.state:
        query = query.where(MemoryVersion.state == VersionState(filters.state))
    if filters.kind:
        query = query.where(MemoryItem.kind == MemoryKind(filters.kind))
    if filters.flag:
        query = query.where(sql_text("memory_version.findings ? :flag").bindparams(flag=filters.flag))
    if filters.collection:
        evidenced = (
            select(Evidence.version_id)
            .join(Document, col(Document.id) == col(Evidence.document_id))
            .where(Document.collection == filters.collection)
        )
        query = query.where(
            or_(
                and_(
                    col(MemoryItem.scope) == MemoryScope.collection,
                    col(MemoryItem.scope_ref) == filters.collection,
                ),
                col(MemoryVersion.id).in_(evidenced),
            )
        )
    return query


def _ordered(query: Any) -> Any:
    return query.order_by(col(MemoryVersion.created_at), col(MemoryVersion.id))


def readable_scope_filter(caller: Caller, *, agent: str | None = None) -> Any:
    """Items the caller may see: tenant and collection scope, their own, their agent's."""
    clauses = [
        col(MemoryItem.scope).in_([MemoryScope.tenant.value, MemoryScope.collection.value]),
        (col(MemoryItem.scope) == MemoryScope.user.value)
        & (col(MemoryItem.scope_ref) == str(caller.principal_id)),
    ]
    if agent:
        clauses.append(
            (col(MemoryItem.scope) == MemoryScope.agent.value) & (col(MemoryItem.scope_ref) == agent)
        )
    return or_(*clauses)


def list_queue(
    session: Session, *, filters: QueueFilters, limit: int = PAGE_SIZE
) -> tuple[list[QueueRow], int]:
    """One page of the queue, and how many memories match in all."""
    query = filtered(filters)
    count = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(_ordered(query).offset(filters.offset).limit(limit)).all()
    result = [
        QueueRow(item=item, version=version, flags=[f for f in FLAGS if f in (version.findings or {})])
        for item, version in rows
    ]
    version_ids = [row.version.id for row in result]
    collections: dict[uuid.UUID, set[str]] = {}
    if version_ids:
        for version_id, collection in session.exec(
            select(Evidence.version_id, Document.collection)
            .join(Document, col(Document.id) == col(Evidence.document_id))
            .where(col(Evidence.version_id).in_(version_ids))
        ).all():
            if version_id is not None:
                collections.setdefault(version_id, set()).add(collection)
    pending = pending_decisions(session, [row.version for row in result])
    for row in result:
        row.collections = sorted(collections.get(row.version.id, ()))
        row.pending = pending.get(row.version.id)
    return result, int(count)


def neighbours(
    session: Session, *, filters: QueueFilters, item_id: uuid.UUID, window: int = 1000
) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """The items before and after `item_id` in the queue, for moving through it one by one."""
    query = _ordered(filtered(filters)).with_only_columns(col(MemoryItem.id)).limit(window)
    ids = [row[0] for row in session.execute(query)]
    if item_id not in ids:
        return None, ids[0] if ids else None
    at = ids.index(item_id)
    return (ids[at - 1] if at > 0 else None), (ids[at + 1] if at + 1 < len(ids) else None)


class Reviewable(Protocol):
    id: uuid.UUID
    run_id: uuid.UUID | None
    state: VersionState


def pending_decisions(session: Session, versions: Sequence[Reviewable]) -> dict[uuid.UUID, str]:
    """Versions whose review task is decided while the version still waits for that decision.

    The decision wakes the review process; until a worker advances it the version keeps its
    state, and the console says so instead of offering the decision again. A run that ended
    (failed) is waiting for nothing: its version is decidable again (memory/recovery.py).
    """
    runs = {v.run_id: v.id for v in versions if v.run_id is not None and v.state in AWAITING}
    if not runs:
        return {}
    latest: dict[uuid.UUID, HumanTask] = {}
    for task in session.exec(
        select(HumanTask)
        .join(Run, col(Run.id) == col(HumanTask.run_id))
        .where(col(HumanTask.run_id).in_(list(runs)), col(Run.status).not_in(ENDED))
        .order_by(col(HumanTask.created_at))
    ).all():
        latest[task.run_id] = task
    found = {}
    for run_id, task in latest.items():
        if task.status != "open" and isinstance(task.decision, dict):
            found[runs[run_id]] = str(task.decision.get("decision"))
    # A decision sent as an event (a withdrawal, or the first decision of a restarted review,
    # whose task does not exist yet) waits as a person's signal the run has not taken.
    for run_id, payload in session.exec(
        select(Signal.run_id, Signal.payload)
        .join(Run, col(Run.id) == col(Signal.run_id))
        .where(
            col(Signal.run_id).in_(list(runs)),
            Signal.name == EVENT_SIGNAL,
            col(Signal.consumed_seq).is_(None),
            col(Signal.sender_id).is_not(None),
            col(Run.status).not_in(ENDED),
        )
        .order_by(col(Signal.created_at))
    ).all():
        if isinstance(payload, dict) and payload.get("name"):
            found.setdefault(runs[run_id], str(payload["name"]))
    return found
