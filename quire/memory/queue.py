"""Finding memories: by state, scope, kind, collection, source document, finding, words of their
text and who decided them, for the API's list and the reviewer's queue (oldest first, newest
first, or the most serious finding first), one implementation for both.

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

from sqlalchemy import and_, case, or_
from sqlalchemy import text as sql_text
from sqlmodel import Session, col, func, select

from quire.content.models import Document
from quire.core.models import Role
from quire.core.tenancy import Caller
from quire.memory.findings import FLAGS, SEVERITY
from quire.memory.models import (
    Evidence,
    MemoryEvent,
    MemoryItem,
    MemoryKind,
    MemoryScope,
    MemoryVersion,
    VersionState,
)
from quire.memory.titles import title
from quire.runtime.models import HumanTask, Run, RunStatus, Signal
from quire.runtime.process import EVENT_SIGNAL

AWAITING = (VersionState.in_review, VersionState.needs_recertification)
ENDED = (RunStatus.failed, RunStatus.cancelled)  # a review run that ends so decided nothing
PAGE_SIZE = 50
SORTS = {"": "oldest first", "newest": "newest first", "finding": "most serious finding first"}
MAX_TERMS = 10
# The audit events that record a person's decision on a version.
DECISIONS = ("memory.approved", "memory.rejected", "memory.edited", "memory.merged", "memory.withdrawn")


def _uuid_or_blank(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value))) if value else ""
    except ValueError:
        return ""


@dataclass(frozen=True)
class QueueFilters:
    state: str = VersionState.in_review.value  # "" for every state
    collection: str = ""
    kind: str = ""
    flag: str = ""
    offset: int = 0
    scope: str = ""
    document: str = ""  # a document id: memories whose evidence quotes it
    q: str = ""  # words the text must hold, each (case and accents as typed)
    sort: str = ""  # a key of SORTS
    decided_by: str = ""  # a principal id: memories that person decided

    @classmethod
    def parse(cls, params: Any) -> QueueFilters:
        """Filters from query parameters; values the queue does not know are dropped."""
        state = params.get("state", VersionState.in_review.value)
        kind = params.get("kind", "")
        flag = params.get("flag", "")
        sort = params.get("sort", "")
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
            document=_uuid_or_blank(params.get("document", "")),
            q=" ".join(str(params.get("q", "")).split())[:200],
            sort=sort if sort in SORTS else "",
            decided_by=_uuid_or_blank(params.get("decided_by", "")),
        )

    def query_string(self, **changes: Any) -> str:
        values = {
            "state": self.state,
            "collection": self.collection,
            "kind": self.kind,
            "flag": self.flag,
            "document": self.document,
            "q": self.q,
            "sort": self.sort,
            "decided_by": self.decided_by,
            "offset": self.offset,
            **changes,
        }
        kept = {k: v for k, v in values.items() if v not in ("", 0) or k == "state"}
        return urlencode(kept)


@dataclass(frozen=True)
class Decided:
    """The latest decision a person made on one of an item's versions."""

    actor: str  # a principal id
    event: str  # the audit event's type, "memory.rejected" say
    at: Any  # when

    @property
    def decision(self) -> str:
        return self.event.removeprefix("memory.")


@dataclass
class QueueRow:
    item: MemoryItem
    version: MemoryVersion
    flags: list[str]
    collections: list[str] = field(default_factory=list)
    pending: str | None = None  # a decision recorded, not yet applied by the worker
    decided: Decided | None = None

    @property
    def title(self) -> str:
        return title(self.version.text)


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
    if filters.document:
        quoting = select(Evidence.version_id).where(Evidence.document_id == uuid.UUID(filters.document))
        query = query.where(col(MemoryVersion.id).in_(quoting))
    for term in filters.q.split()[:MAX_TERMS]:
        escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(col(MemoryVersion.text).ilike(f"%{escaped}%", escape="\\"))
    if filters.decided_by:
        decided = select(MemoryEvent.item_id).where(
            MemoryEvent.actor == filters.decided_by, col(MemoryEvent.type).in_(DECISIONS)
        )
        query = query.where(col(MemoryItem.id).in_(decided))
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


def _ordered(query: Any, sort: str = "") -> Any:
    if sort == "newest":
        return query.order_by(col(MemoryVersion.created_at).desc(), col(MemoryVersion.id))
    if sort == "finding":
        severity = case(
            *[(col(MemoryVersion.findings).op("?")(f.value), rank) for rank, f in enumerate(SEVERITY)],
            else_=len(SEVERITY),
        )
        return query.order_by(severity, col(MemoryVersion.created_at), col(MemoryVersion.id))
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
    rows = session.exec(_ordered(query, filters.sort).offset(filters.offset).limit(limit)).all()
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
    decided = decisions(session, [row.item.id for row in result])
    for row in result:
        row.collections = sorted(collections.get(row.version.id, ()))
        row.pending = pending.get(row.version.id)
        row.decided = decided.get(row.item.id)
    return result, int(count)


def decisions(session: Session, item_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Decided]:
    """The latest decision a person made on each item, from the audit log."""
    if not item_ids:
        return {}
    rows = session.execute(
        sql_text(
            "SELECT DISTINCT ON (item_id) item_id, actor, type, created_at FROM memory_event "
            "WHERE item_id = ANY(:ids) AND type = ANY(:types) ORDER BY item_id, seq DESC"
        ),
        {"ids": list(item_ids), "types": list(DECISIONS)},
    ).all()
    return {row[0]: Decided(actor=row[1], event=row[2], at=row[3]) for row in rows}


def neighbours(
    session: Session, *, filters: QueueFilters, item_id: uuid.UUID, window: int = 1000
) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """The items before and after `item_id` in the queue, for moving through it one by one."""
    query = _ordered(filtered(filters), filters.sort).with_only_columns(col(MemoryItem.id)).limit(window)
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
