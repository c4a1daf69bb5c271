"""The memory layer's public face: propose with evidence, list, inspect, review, withdraw, audit."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, func, select

from quire.content.models import Document, Element
from quire.content.models import Version as DocumentVersion
from quire.core.errors import Forbidden, QuireError
from quire.core.models import Role
from quire.core.pages import Keyset, Page, page_of, read_page
from quire.core.tenancy import Caller
from quire.memory import audit
from quire.memory.decisions import (
    merge_candidates,
    merge_target,
    slot_refusal,
    slot_rivals,
    supersede_target,
)
from quire.memory.errors import MemoryNotFound, MissingEvidence, ReasonRequired, ReviewRefused
from quire.memory.lifecycle import (
    MEMORY_REVIEW,
    REVIEW_ROUTE,
    Review,
    needs_reason,
    separation_of_duties,
    start_review_run,
)
from quire.memory.models import (
    AuditReport,
    BulkRejection,
    DecisionOptions,
    EventPublic,
    Evidence,
    EvidenceIn,
    EvidencePublic,
    ItemDetail,
    ItemPublic,
    MemoryEvent,
    MemoryItem,
    MemoryProposal,
    MemoryScope,
    MemoryVersion,
    MemoryVersionPublic,
    RefusedItem,
    ReviewDecision,
    VersionState,
)
from quire.memory.queue import QueueFilters, filtered, readable_scope_filter
from quire.memory.quotes import find_quote
from quire.memory.recovery import failed_reviews, needs_restart, restart_review
from quire.memory.support import unsupported
from quire.runtime.errors import InvalidEvent
from quire.runtime.kicks import Kicker
from quire.runtime.models import HumanTask, Run, Step
from quire.runtime.process import Event, Instance, send_event
from quire.runtime.tasks import decide_task


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


def item_public(session: Session, item: MemoryItem, latest: MemoryVersion | None) -> ItemPublic:
    return ItemPublic(
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


def describe_item(session: Session, *, item_id: uuid.UUID, caller: Caller) -> ItemDetail:
    item = get_item(session, item_id=item_id, caller=caller)
    versions = session.exec(
        select(MemoryVersion).where(MemoryVersion.item_id == item_id).order_by(col(MemoryVersion.number))
    ).all()
    events = session.exec(
        select(MemoryEvent).where(MemoryEvent.item_id == item_id).order_by(col(MemoryEvent.seq))
    ).all()
    latest = versions[-1] if versions else None
    return ItemDetail(
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


APPROVALS = frozenset({"approve", "supersede", "keep_both", "recertify", "merge"})
# Decisions the review process refuses without a reason; refused here first, as an invalid value
# (422), not as a conflict with the memory's state.
NEEDS_REASON = frozenset(t.event for t in MEMORY_REVIEW.transitions if t.guard is needs_reason)


def review(
    session: Session, *, item_id: uuid.UUID, decision: ReviewDecision, caller: Caller, kicker: Kicker | None
) -> MemoryVersion:
    """Decide on a memory version; refused, with the reason, when the decision does not fit.

    Every check comes before anything is written: the version's state, separation of duties
    (nobody approves what they proposed or edited), for an edit that the evidence supports the
    new text unless the reviewer overrides that with a reason (the audit records it), and what
    the decision needs to succeed (memory/decisions.py): a slot without another approved memory
    for a plain approve, the slot's approved memory named by a supersede, an approved merge
    target of the same scope and collection. A version whose review run failed is decidable
    again: its decision starts a fresh run (memory/recovery.py).
    """
    item = get_item(session, item_id=item_id, caller=caller)
    if decision.decision in NEEDS_REASON and not (decision.reason or "").strip():
        raise ReasonRequired(
            f"a {'rejection' if decision.decision == 'reject' else decision.decision} needs a reason"
        )
    version = session.get(MemoryVersion, decision.version_id or item.current_version_id)
    if version is None or version.item_id != item.id or version.run_id is None:
        raise MemoryNotFound(f"memory {item_id} has no version {decision.version_id}")
    run = session.get(Run, version.run_id)
    assert run is not None
    data: dict[str, Any] = {}
    if decision.text:
        data["text"] = decision.text
    if decision.into:
        data["into"] = str(decision.into)
        data["keep"] = decision.keep
    if decision.supersedes:
        data["supersedes"] = str(decision.supersedes)
    if (
        decision.decision in APPROVALS
        and version.proposed_by == str(caller.principal_id)
        and separation_of_duties(session)
    ):
        raise ReviewRefused(
            f"separation of duties: you proposed or edited version {version.number} of memory {item_id}, "
            "so another reviewer decides it"
        )
    if decision.decision == "edit" and decision.text:
        evidence = session.exec(select(Evidence.quote).where(Evidence.version_id == version.id)).all()
        reason = unsupported(decision.text, evidence)
        if reason is not None and not decision.override:
            raise ReviewRefused(
                f"the evidence does not support the edited text: {reason}; send `override` with your "
                "reason to approve it anyway"
            )
        if reason is not None:
            data["override"] = {"reason": decision.override, "unsupported": reason}
    if version.state == VersionState.in_review:
        _check_outcome(session, item=item, version=version, decision=decision, data=data)
    event = Event(
        name=decision.decision, data={"comment": decision.reason, **data}, actor=str(caller.principal_id)
    )
    instance = Instance.model_validate(run.state or run.input)
    try:
        MEMORY_REVIEW.decide(instance, event, sender=caller.role)
    except InvalidEvent as refused:
        raise ReviewRefused(
            f"version {version.number} of memory {item_id} is {version.state.value}: {refused}"
        ) from None
    if needs_restart(version, run):
        run = restart_review(
            session, item=item, version=version, run=run, actor=str(caller.principal_id), kicker=kicker
        )
    task = session.exec(
        select(HumanTask)
        .where(HumanTask.run_id == run.id, HumanTask.status == "open")
        .order_by(col(HumanTask.created_at).desc())
    ).first()
    if task is not None and decision.decision in (task.options or []):
        decide_task(
            session,
            task_id=task.id,
            caller=caller,
            decision=decision.decision,
            comment=decision.reason,
            data=data or None,
            kicker=kicker,
            through=REVIEW_ROUTE,
        )
    else:
        send_event(
            session,
            run_id=run.id,
            event=event,
            kicker=kicker,
            key=f"{decision.decision}:{uuid.uuid4()}",
            sender=caller,
        )
    return version


def _check_outcome(
    session: Session,
    *,
    item: MemoryItem,
    version: MemoryVersion,
    decision: ReviewDecision,
    data: dict[str, Any],
) -> None:
    """Refuse, with the reason, a decision on a version in review that could not succeed."""
    if decision.decision in ("approve", "supersede"):
        rivals = slot_rivals(session, item=item)
        if decision.decision == "approve" and rivals:
            raise slot_refusal(item, rivals)
        if decision.decision == "supersede":
            supersede_target(item, rivals, decision.supersedes)
    if decision.decision == "merge" and decision.into is not None:
        _, kept = merge_target(session, item=item, version=version, into=decision.into)
        if decision.keep == "edit" and decision.text:
            quotes = session.exec(
                select(Evidence.quote).where(col(Evidence.version_id).in_([version.id, kept.id]))
            ).all()
            reason = unsupported(decision.text, quotes)
            if reason is not None and not decision.override:
                raise ReviewRefused(
                    f"the evidence of the two memories does not support the merged text: {reason}; "
                    "send `override` with your reason to keep it anyway"
                )
            if reason is not None:
                data["override"] = {"reason": decision.override, "unsupported": reason}


def reject_many(
    session: Session,
    *,
    item_ids: Sequence[uuid.UUID],
    reason: str,
    caller: Caller,
    kicker: Kicker | None,
) -> BulkRejection:
    """Reject several memories with one reason, each exactly as one rejection (`review`) is.

    The caller needs the role the process gives a rejection, and every memory named must be one
    they may see, before anything is decided; a rejection that does not fit one memory's state
    is reported for it while the others are recorded.
    """
    needed = _role_of("reject")
    if not caller.allows(needed):
        raise Forbidden(f"rejecting memories needs the {needed.value} role")
    if not reason.strip():
        raise ReasonRequired("a rejection needs a reason")
    items = [get_item(session, item_id=item_id, caller=caller) for item_id in dict.fromkeys(item_ids)]
    rejected: list[uuid.UUID] = []
    refused: list[RefusedItem] = []
    for item in items:
        try:
            with session.begin_nested():
                review(
                    session,
                    item_id=item.id,
                    decision=ReviewDecision(decision="reject", reason=reason.strip()),
                    caller=caller,
                    kicker=kicker,
                )
            rejected.append(item.id)
        except QuireError as error:
            refused.append(RefusedItem(item_id=item.id, reason=str(error)))
    return BulkRejection(rejected=rejected, refused=refused)


def _role_of(decision: str) -> Role:
    """The role the review process lets make `decision` (the engine checks it again)."""
    roles = [t.role for t in MEMORY_REVIEW.transitions if t.event == decision and t.role is not None]
    return max(roles, key=lambda role: role.rank) if roles else Role.admin


def withdraw(
    session: Session, *, item_id: uuid.UUID, reason: str, caller: Caller, kicker: Kicker | None
) -> MemoryVersion:
    """Take back a memory (its version in effect, or the one in review), with a reason."""
    item = get_item(session, item_id=item_id, caller=caller)
    target = item.approved_version_id or item.current_version_id
    return review(
        session,
        item_id=item_id,
        caller=caller,
        kicker=kicker,
        decision=ReviewDecision(decision="withdraw", reason=reason, version_id=target),
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
