"""The life of a memory version, as a process on the runtime.

    proposed ─check→ checked ─submit→ in_review ─approve/supersede→ approved
                                          │ reject → rejected     edit → edited (an edited copy is approved)
                                          │ merge → merged (its evidence joins an existing memory)
    approved ─superseded→ superseded   (a newer version of the same slot was approved)
             ─expire→ expired          (valid_to passed)
             ─recertify_due→ needs_recertification ─recertify→ approved
             ─source_lost→ retracted ─reopen→ in_review   (its quoted source is gone)
             ─withdraw→ withdrawn      (a reviewer took it back)

Every transition's action is a durable step that updates the version's row and appends to the
hash-chained audit log in the same transaction. Decisions come from people through the review
task of `in_review` and `needs_recertification`, decided only through the memory routes
(`memory.service.review`, where the evidence is checked); each decision needs the reviewer role
whatever route delivers it, and the guards check that it makes sense. With separation of duties
(a tenant setting, on by default) nobody approves a version they proposed or edited.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session, col, select

from quire.core.models import Role, utcnow
from quire.memory import audit
from quire.memory.models import Evidence, MemoryItem, MemoryKind, MemoryVersion, VersionState
from quire.memory.rechecks import after_move
from quire.runtime.context import RunContext
from quire.runtime.process import Event, HumanTaskSpec, Process, Timer, Transition

NAME = "memory-review"
INDEX_NAME = "memory"
REVIEW_ROUTE = "POST /v1/memories/{item_id}/review"
RECERTIFY_AFTER: dict[MemoryKind, timedelta | None] = {
    MemoryKind.fact: timedelta(days=365),
    MemoryKind.procedure: timedelta(days=180),
    MemoryKind.preference: None,
    MemoryKind.episode: None,
}
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


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


def _load(session: Session, review: Review) -> tuple[MemoryVersion, MemoryItem]:
    version = session.get(MemoryVersion, review.version_id, with_for_update=True)
    item = session.get(MemoryItem, review.item_id, with_for_update=True)
    if version is None or item is None:
        raise LookupError(f"memory version {review.version_id} is gone")
    return version, item


def _move(
    ctx: RunContext,
    review: Review,
    event: Event,
    to: VersionState,
    *,
    reason: str | None = None,
    **data: Any,
) -> tuple[MemoryVersion, MemoryItem]:
    session = ctx.session
    version, item = _load(session, review)
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


def _end(version: MemoryVersion, item: MemoryItem) -> None:
    version.ended_at = utcnow()
    if item.approved_version_id == version.id:
        item.approved_version_id = None
    item.updated_at = utcnow()


# Actions: each runs as a durable step.


def check(ctx: RunContext, review: Review, event: Event) -> dict[str, Any]:
    from quire.content.environment import content_of
    from quire.memory.checks import run_checks

    version, item = _load(ctx.session, review)
    if version.embedding is None:
        version.embedding = content_of(ctx.services).embedder.embed_one(version.text)
        ctx.session.add(version)
        ctx.session.flush()
    # After the tenant's other memory moves: a memory approved at this moment is seen here, or
    # sees this version when it checks again the ones it affects (memory/rechecks.py).
    audit.serialise(ctx.session, tenant_id=version.tenant_id)
    findings = run_checks(ctx.session, version=version, item=item)
    version.findings = findings
    _move(ctx, review, event, VersionState.checked, findings=sorted(findings))
    return findings


def submit(ctx: RunContext, review: Review, event: Event) -> None:
    reason = "its source changed; please review it again" if event.name == "reopen" else None
    _move(ctx, review, event, VersionState.in_review, reason=reason)


def approve(ctx: RunContext, review: Review, event: Event) -> dict[str, Any]:
    from quire.core.search.postings import index_items

    approver = review.pre_approved_by or event.actor
    event = event.model_copy(update={"actor": approver})
    version, item = _move(ctx, review, event, VersionState.approved, reason=event.data.get("comment"))
    now = utcnow()
    version.approved_at = now
    version.ended_at = None
    if approver and approver not in ("timer", "system"):
        try:
            version.approved_by = uuid.UUID(approver)
        except ValueError:
            version.approved_by = None
    interval = RECERTIFY_AFTER.get(MemoryKind(item.kind))
    version.recertify_at = now + interval if interval else None
    superseded = _supersede_others(ctx, version, item)
    item.approved_version_id = version.id
    item.updated_at = now
    ctx.session.add_all([version, item])
    if event.name != "recertify":
        index_items(
            ctx.session,
            tenant_id=version.tenant_id,
            index_name=INDEX_NAME,
            items=[(version.id, version.text)],
        )
    return {
        "recertify_at": version.recertify_at.isoformat() if version.recertify_at else None,
        "superseded": superseded,
    }


def _supersede_others(ctx: RunContext, version: MemoryVersion, item: MemoryItem) -> list[str]:
    """Tell the processes of the versions this one replaces (its item's, and its slot's)."""
    from quire.runtime.signals import deliver_signal

    query = (
        select(MemoryVersion)
        .join(MemoryItem, col(MemoryItem.id) == col(MemoryVersion.item_id))
        .where(col(MemoryVersion.state).in_([VersionState.approved, VersionState.needs_recertification]))
        .where(MemoryVersion.id != version.id)
    )
    if item.subject_key:
        query = query.where(
            MemoryItem.scope == item.scope,
            MemoryItem.scope_ref == item.scope_ref if item.scope_ref else col(MemoryItem.scope_ref).is_(None),
            (col(MemoryItem.subject_key) == item.subject_key) | (col(MemoryItem.id) == item.id),
        )
    else:
        query = query.where(MemoryItem.id == item.id)
    replaced = []
    for old in ctx.session.exec(query).all():
        if old.run_id is None:
            continue
        deliver_signal(
            ctx.session,
            run_id=old.run_id,
            name="event",
            key=f"superseded-by:{version.id}",
            payload=Event(name="superseded", actor="system", data={"by": str(version.id)}).model_dump(
                mode="json"
            ),
            kicker=ctx.executor.kicker,
        )
        replaced.append(str(old.id))
    return replaced


def reject(ctx: RunContext, review: Review, event: Event) -> None:
    _move(
        ctx,
        review,
        event,
        VersionState.rejected,
        reason=event.data.get("comment") or event.data.get("reason"),
    )


def end_as(state: VersionState) -> Any:
    def action(ctx: RunContext, review: Review, event: Event) -> None:
        reason = {
            VersionState.superseded: "a newer version of the same memory was approved",
            VersionState.expired: "its validity ended",
            VersionState.retracted: event.data.get("reason") or "its source is gone",
            VersionState.withdrawn: event.data.get("comment") or event.data.get("reason") or "withdrawn",
        }.get(state)
        version, item = _move(
            ctx, review, event, state, reason=reason, **{k: v for k, v in event.data.items() if k == "by"}
        )
        _end(version, item)
        ctx.session.add_all([version, item])

    action.__name__ = f"end_as_{state.value}"
    return action


def needs_recertification(ctx: RunContext, review: Review, event: Event) -> None:
    version, item = _move(
        ctx, review, event, VersionState.needs_recertification, reason="due for re-certification"
    )
    if item.approved_version_id == version.id:
        item.approved_version_id = None
        ctx.session.add(item)


def edit(ctx: RunContext, review: Review, event: Event) -> str:
    """Approve an edited copy: a new version with the reviewer's text and the same evidence."""
    from quire.memory.service import create_version

    separated = separation_of_duties(ctx.session)
    override = event.data.get("override")
    version, item = _move(
        ctx,
        review,
        event,
        VersionState.edited,
        reason="edited; the edit waits for another reviewer" if separated else "approved as edited",
        **({"override": override} if override else {}),
    )
    evidence = ctx.session.exec(select(Evidence).where(Evidence.version_id == version.id)).all()
    copy = create_version(
        ctx.session,
        item=item,
        text=str(event.data["text"]),
        data=version.data,
        valid_from=version.valid_from,
        valid_to=version.valid_to,
        confidence=version.confidence,
        extractor="reviewer-edit",
        extractor_version="1",
        proposed_by=event.actor or "reviewer",
        evidence=[
            Evidence(
                tenant_id=e.tenant_id,
                document_id=e.document_id,
                document_version_id=e.document_version_id,
                element_id=e.element_id,
                char_start=e.char_start,
                char_end=e.char_end,
                quote=e.quote,
                run_id=e.run_id,
                step_seq=e.step_seq,
                note=e.note,
            )
            for e in evidence
        ],
        kicker=ctx.executor.kicker,
        pre_approved_by=None if separated else event.actor,
        edited_from=version.id,
    )
    return str(copy.id)


def merge(ctx: RunContext, review: Review, event: Event) -> str:
    """Give this proposal's evidence to the memory it duplicates, then close it."""
    into = uuid.UUID(str(event.data["into"]))
    target_item = ctx.session.get(MemoryItem, into)
    if target_item is None or target_item.approved_version_id is None:
        raise LookupError(f"memory {into} has no approved version to merge into")
    version, _ = _move(
        ctx, review, event, VersionState.merged, reason=f"merged into memory {into}", into=str(into)
    )
    for evidence in ctx.session.exec(select(Evidence).where(Evidence.version_id == version.id)).all():
        ctx.session.add(
            Evidence(
                tenant_id=evidence.tenant_id,
                version_id=target_item.approved_version_id,
                document_id=evidence.document_id,
                document_version_id=evidence.document_version_id,
                element_id=evidence.element_id,
                char_start=evidence.char_start,
                char_end=evidence.char_end,
                quote=evidence.quote,
                run_id=evidence.run_id,
                step_seq=evidence.step_seq,
                note=f"merged from version {version.id}",
            )
        )
    audit.record(
        ctx.session,
        tenant_id=version.tenant_id,
        type="memory.evidence_added",
        actor=event.actor or "reviewer",
        item_id=target_item.id,
        version_id=target_item.approved_version_id,
        data={"from_version": str(version.id)},
    )
    return str(target_item.approved_version_id)


# Guards: pure functions of the review state and the event.


def not_the_proposer(review: Review, event: Event) -> str | None:
    """Separation of duties: an approval by whoever proposed or edited the version is refused."""
    if review.separation_of_duties and review.proposed_by and event.actor == review.proposed_by:
        return "separation of duties: nobody approves a memory they proposed or edited"
    return None


def merge_guard(review: Review, event: Event) -> str | None:
    return needs_target(review, event) or not_the_proposer(review, event)


def needs_reason(review: Review, event: Event) -> str | None:
    return None if (event.data.get("comment") or event.data.get("reason")) else "a rejection needs a reason"


def needs_text(review: Review, event: Event) -> str | None:
    return None if str(event.data.get("text") or "").strip() else "an edit needs the new text"


def needs_target(review: Review, event: Event) -> str | None:
    return None if event.data.get("into") else "a merge needs the memory to merge into"


def set_recertification(review: Review, event: Event) -> Review:
    result = event.result if isinstance(event.result, dict) else {}
    stamp = result.get("recertify_at")
    return review.model_copy(
        update={
            "recertify_at": datetime.fromisoformat(stamp) if stamp else None,
            "decided_by": event.actor,
        }
    )


REVIEW_OPTIONS = ("approve", "supersede", "reject", "edit", "merge")
REVIEWED = ("in_review",)
LIVE = ("approved", "needs_recertification")

MEMORY_REVIEW: Process[Review] = Process(
    name=NAME,
    version=1,
    state_type=Review,
    states=[s.value for s in VersionState],
    initial="proposed",
    final=["rejected", "merged", "edited", "superseded", "expired", "withdrawn"],
    transitions=[
        # Quire's own moves (no role: no person may fire them).
        Transition("proposed", "check", "checked", action=check),
        Transition("checked", "submit", "in_review", action=submit),
        Transition(LIVE, "superseded", "superseded", action=end_as(VersionState.superseded)),
        Transition(LIVE, "expire", "expired", action=end_as(VersionState.expired)),
        Transition("approved", "recertify_due", "needs_recertification", action=needs_recertification),
        Transition(LIVE, "source_lost", "retracted", action=end_as(VersionState.retracted)),
        Transition("retracted", "reopen", "in_review", action=submit),
        # A reviewer's decisions.
        Transition(
            REVIEWED,
            "approve",
            "approved",
            guard=not_the_proposer,
            action=approve,
            update=set_recertification,
            role=Role.reviewer,
        ),
        Transition(
            REVIEWED,
            "supersede",
            "approved",
            guard=not_the_proposer,
            action=approve,
            update=set_recertification,
            role=Role.reviewer,
        ),
        Transition(REVIEWED, "reject", "rejected", guard=needs_reason, action=reject, role=Role.reviewer),
        Transition(REVIEWED, "edit", "edited", guard=needs_text, action=edit, role=Role.reviewer),
        Transition(REVIEWED, "merge", "merged", guard=merge_guard, action=merge, role=Role.reviewer),
        Transition(
            "needs_recertification",
            "recertify",
            "approved",
            guard=not_the_proposer,
            action=approve,
            update=set_recertification,
            role=Role.reviewer,
        ),
        Transition(
            "needs_recertification",
            "reject",
            "rejected",
            guard=needs_reason,
            action=reject,
            role=Role.reviewer,
        ),
        Transition(
            "needs_recertification", "edit", "edited", guard=needs_text, action=edit, role=Role.reviewer
        ),
        Transition(
            ("in_review", "approved", "needs_recertification"),
            "withdraw",
            "withdrawn",
            action=end_as(VersionState.withdrawn),
            role=Role.reviewer,
        ),
    ],
    tasks={
        "in_review": HumanTaskSpec(
            "Review a proposed memory",
            options=REVIEW_OPTIONS,
            role=Role.reviewer,
            decided_through=REVIEW_ROUTE,
        ),
        "needs_recertification": HumanTaskSpec(
            "Re-certify a memory",
            options=("recertify", "reject", "edit"),
            role=Role.reviewer,
            decided_through=REVIEW_ROUTE,
        ),
    },
    timers={
        "proposed": [Timer("check", after=timedelta(0))],
        "checked": [Timer("submit", after=timedelta(0))],
        "in_review": [Timer("approve", at=lambda r: LONG_AGO if r.pre_approved_by else None)],
        "approved": [
            Timer("expire", at=lambda r: r.valid_to),
            Timer("recertify_due", at=lambda r: r.recertify_at),
        ],
        "needs_recertification": [Timer("expire", at=lambda r: r.valid_to)],
        "retracted": [Timer("reopen", after=timedelta(0))],
    },
    external_events=False,  # decisions come through the memory routes, where evidence is checked
    startable=False,
    visible_to=Role.reviewer,
).register()


def separation_of_duties(session: Session) -> bool:
    """The tenant's setting: whether nobody may approve a memory they proposed or edited."""
    from quire.core.models import Tenant

    tenant = session.exec(select(Tenant)).first()  # a tenant session sees its own tenant only
    return True if tenant is None else bool(tenant.separation_of_duties)
