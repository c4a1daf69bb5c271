"""Proposing a memory: its evidence checked against what it cites, a new version of a new or
existing item, and the version's review run started (memory/lifecycle.py)."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, func, select

from quire.content.models import Document, Element
from quire.content.models import Version as DocumentVersion
from quire.core.errors import Forbidden
from quire.core.tenancy import Caller
from quire.memory import audit
from quire.memory.errors import MemoryNotFound, MissingEvidence
from quire.memory.lifecycle import MEMORY_REVIEW, start_review_run
from quire.memory.models import (
    Evidence,
    EvidenceIn,
    MemoryItem,
    MemoryProposal,
    MemoryScope,
    MemoryVersion,
    VersionState,
)
from quire.memory.quotes import find_quote
from quire.memory.review_state import Review, separation_of_duties
from quire.memory.service import get_item
from quire.runtime.kicks import Kicker
from quire.runtime.models import Run, Step


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def content_hash(text: str) -> str:
    return hashlib.sha256(normalise(text).lower().encode()).hexdigest()


def resolve_evidence(
    session: Session, evidence: Sequence[EvidenceIn], *, tenant_id: uuid.UUID
) -> list[Evidence]:
    """Check each piece of evidence against what it cites; a quote must be found, exactly."""
    if not evidence:
        raise MissingEvidence("a memory needs evidence: a quoted passage of a document, or a run step")
    resolved = []
    for item in evidence:
        if item.document_id is not None:
            resolved.append(_document_evidence(session, item, tenant_id))
        elif item.run_id is not None:
            run = session.get(Run, item.run_id)
            if run is None:
                raise MissingEvidence(f"run {item.run_id} does not exist")
            if item.step_seq is not None and session.get(Step, (item.run_id, item.step_seq)) is None:
                raise MissingEvidence(f"run {item.run_id} has no step {item.step_seq}")
            resolved.append(
                Evidence(
                    tenant_id=tenant_id,
                    run_id=item.run_id,
                    step_seq=item.step_seq,
                    quote=item.quote,
                    note=item.note,
                )
            )
        else:
            raise MissingEvidence("each piece of evidence names a document_id or a run_id")
    return resolved


def _document_evidence(session: Session, item: EvidenceIn, tenant_id: uuid.UUID) -> Evidence:
    document = session.get(Document, item.document_id)
    if document is None:
        raise MissingEvidence(f"document {item.document_id} does not exist")
    if item.version_number is not None:
        version = session.exec(
            select(DocumentVersion).where(
                DocumentVersion.document_id == document.id, DocumentVersion.number == item.version_number
            )
        ).first()
    else:
        version = (
            session.get(DocumentVersion, document.latest_version_id) if document.latest_version_id else None
        )
    if version is None:
        raise MissingEvidence(f"document {item.document_id} has no such (indexed) version")
    quote = normalise(item.quote or "")
    if not quote:
        raise MissingEvidence("document evidence needs the quoted passage")
    query = select(Element).where(Element.version_id == version.id).order_by(col(Element.ord))
    if item.element_id is not None:
        query = query.where(Element.element_id == item.element_id)
    for element in session.exec(query):
        found = find_quote(element.text, quote)
        if found is not None:
            start, end = found
            return Evidence(
                tenant_id=tenant_id,
                document_id=document.id,
                document_version_id=version.id,
                element_id=element.element_id,
                char_start=start,
                char_end=end,
                quote=element.text[start:end],
                note=item.note,
            )
    where = f"element {item.element_id}" if item.element_id else f"version {version.number}"
    raise MissingEvidence(f"the quote was not found in {where} of document {document.id}")


def create_version(
    session: Session,
    *,
    item: MemoryItem,
    text: str,
    data: dict[str, Any],
    valid_from: Any,
    valid_to: Any,
    confidence: float,
    extractor: str,
    extractor_version: str,
    proposed_by: str,
    evidence: list[Evidence],
    kicker: Kicker | None,
    pre_approved_by: str | None = None,
    edited_from: uuid.UUID | None = None,
    origin: dict[str, str] | None = None,
) -> MemoryVersion:
    """A new version of `item`, its evidence, an audit event, and its review process.

    `origin` says in the audit where its text comes from besides an edit (a merge's ids)."""
    number = (
        session.exec(select(func.max(MemoryVersion.number)).where(MemoryVersion.item_id == item.id)).one()
        or 0
    ) + 1
    version = MemoryVersion(
        tenant_id=item.tenant_id,
        item_id=item.id,
        number=number,
        text=normalise(text),
        data=data,
        valid_from=valid_from,
        valid_to=valid_to,
        confidence=confidence,
        extractor=extractor,
        extractor_version=extractor_version,
        content_hash=content_hash(text),
        proposed_by=proposed_by,
    )
    session.add(version)
    session.flush()
    for piece in evidence:
        piece.version_id = version.id
        session.add(piece)
    item.current_version_id = version.id
    session.add(item)
    audit.record(
        session,
        tenant_id=item.tenant_id,
        type="memory.proposed",
        actor=proposed_by,
        item_id=item.id,
        version_id=version.id,
        data={
            "to": VersionState.proposed.value,
            "text": version.text,
            "extractor": extractor,
            "evidence": len(evidence),
            **({"edited_from": str(edited_from)} if edited_from else {}),
            **(origin or {}),
        },
    )
    review = Review(
        version_id=version.id,
        item_id=item.id,
        valid_to=valid_to,
        pre_approved_by=pre_approved_by,
        proposed_by=proposed_by,
        separation_of_duties=separation_of_duties(session),
    )
    start_review_run(session, version=version, state=MEMORY_REVIEW.start(review), kicker=kicker)
    return version


def propose(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    proposal: MemoryProposal,
    proposed_by: str,
    kicker: Kicker | None,
    extractor: str = "manual",
    extractor_version: str = "1",
    caller: Caller | None = None,
) -> tuple[MemoryItem, MemoryVersion]:
    """Propose a memory (a new item, or a new version of `proposal.item_id`); it enters review.

    From a `caller` (a person), every check of scope and permission comes before anything is
    written: a new version only of a memory they may read, a user-scoped memory only their own.
    """
    if proposal.scope != MemoryScope.tenant and not proposal.scope_ref:
        raise MissingEvidence(f"a {proposal.scope.value}-scoped memory needs scope_ref")
    item: MemoryItem | None = None
    if proposal.item_id is not None:
        item = (
            get_item(session, item_id=proposal.item_id, caller=caller)
            if caller is not None
            else session.get(MemoryItem, proposal.item_id)
        )
        if item is None:
            raise MemoryNotFound(f"no memory {proposal.item_id}")
        if caller is not None and not _may_write(caller, item.scope, item.scope_ref):
            raise MemoryNotFound(f"no memory {proposal.item_id}")
    elif caller is not None and not _may_write(caller, proposal.scope, proposal.scope_ref):
        raise Forbidden(
            f"a {proposal.scope.value}-scoped memory may be proposed only for yourself "
            f"(scope_ref {caller.principal_id})"
        )
    evidence = resolve_evidence(session, proposal.evidence, tenant_id=tenant_id)
    if item is None:
        item = MemoryItem(
            tenant_id=tenant_id,
            kind=proposal.kind,
            scope=proposal.scope,
            scope_ref=proposal.scope_ref if proposal.scope != MemoryScope.tenant else None,
            subject_key=normalise(proposal.subject_key).lower() if proposal.subject_key else None,
        )
        session.add(item)
        session.flush()
    from quire.core.models import utcnow

    version = create_version(
        session,
        item=item,
        text=proposal.text,
        data=proposal.data,
        valid_from=proposal.valid_from or utcnow(),
        valid_to=proposal.valid_to,
        confidence=proposal.confidence,
        extractor=extractor,
        extractor_version=extractor_version,
        proposed_by=proposed_by,
        evidence=evidence,
        kicker=kicker,
    )
    return item, version


def _may_write(caller: Caller, scope: MemoryScope | str, scope_ref: str | None) -> bool:
    """A user-scoped memory is its user's own: nobody proposes into another person's."""
    return MemoryScope(scope) != MemoryScope.user or scope_ref == str(caller.principal_id)
