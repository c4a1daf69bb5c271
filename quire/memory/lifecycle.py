"""The life of a memory version, as a process on the runtime.

    proposed ─check→ checked ─submit→ in_review ─approve/supersede/keep_both→ approved
                                          │ reject → rejected     edit → edited (an edited copy is approved)
                                          │ merge → merged (into an approved memory, keeping the chosen text)
    approved ─superseded→ superseded   (a newer version of it, or one chosen to supersede it, was approved)
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

A plain approve retires nothing but the memory's own earlier version: when another memory of the
slot is approved, the reviewer chooses `supersede` (naming it) or `keep_both`. What a decision
needs (memory/decisions.py) is checked when it is made and again in its step; a step that finds
it no longer holds fails the run, and the memory is decidable again (memory/recovery.py).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session, col, select

from quire.core.models import Role, utcnow
from quire.memory import audit
from quire.memory.decisions import (
    KEEP,
    LIVE_STATES,
    copy_evidence,
    evidence_of,
    merge_target,
    proposal_evidence_moves,
    slot_refusal,
    slot_rivals,
    supersede_target,
)
from quire.memory.errors import DecisionNoLongerApplies, MergeTargetInvalid, SupersedeTargetInvalid
from quire.memory.models import MemoryItem, MemoryKind, MemoryVersion, VersionState
from quire.memory.rechecks import after_move
from quire.runtime.context import RunContext
from quire.runtime.kicks import Kicker
from quire.runtime.models import Run
from quire.runtime.process import Event, HumanTaskSpec, Instance, Process, Timer, Transition
from quire.runtime.service import create_run

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
    return move_version(ctx.session, review, event, to, reason=reason, **data)


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
    """Approve (also supersede, keep both, recertify); only `supersede` retires another memory."""
    from quire.core.search.postings import index_items

    _, item = _load(ctx.session, review)
    retire = _slot_memories_to_retire(ctx.session, item, event)
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
    superseded = _supersede_others(ctx, version, item, retire)
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


def _slot_memories_to_retire(session: Session, item: MemoryItem, event: Event) -> list[MemoryVersion]:
    """The other memory a `supersede` retires; refuses a person's plain approve when the slot
    gained an approved memory after the decision was checked (the reviewer must choose)."""
    rivals = slot_rivals(session, item=item)
    if event.name == "supersede":
        named = event.data.get("supersedes")
        try:
            _, retired = supersede_target(item, rivals, uuid.UUID(str(named)) if named else None)
        except SupersedeTargetInvalid as gone:
            raise DecisionNoLongerApplies(f"since the supersede was decided, {gone}") from None
        return [retired]
    if event.name == "approve" and event.actor not in ("timer", "system") and rivals:
        raise DecisionNoLongerApplies(f"since the approve was decided, {slot_refusal(item, rivals)}")
    return []


def _supersede_others(
    ctx: RunContext, version: MemoryVersion, item: MemoryItem, retire: list[MemoryVersion]
) -> list[str]:
    """Tell the processes of the versions this one replaces: its item's earlier ones, and the
    slot's memories the reviewer chose to retire."""
    from quire.runtime.signals import deliver_signal

    same_item = ctx.session.exec(
        select(MemoryVersion).where(
            MemoryVersion.item_id == item.id,
            MemoryVersion.id != version.id,
            col(MemoryVersion.state).in_(LIVE_STATES),
        )
    ).all()
    replaced = []
    for old in [*same_item, *retire]:
        if old.run_id is None:
            continue
        deliver_signal(
            ctx.session,
            run_id=old.run_id,
            name="event",
            key=f"superseded-by:{version.id}",
            payload=Event(
                name="superseded", actor="system", data={"by": str(version.id), "by_item": str(item.id)}
            ).model_dump(mode="json"),
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
        by_other = event.data.get("by_item") not in (None, str(review.item_id))
        reason = {
            VersionState.superseded: "a reviewer approved another memory of its slot to supersede it"
            if by_other
            else "a newer version of the same memory was approved",
            VersionState.expired: "its validity ended",
            VersionState.retracted: event.data.get("reason") or "its source is gone",
            VersionState.withdrawn: event.data.get("comment") or event.data.get("reason") or "withdrawn",
        }.get(state)
        version, item = _move(
            ctx,
            review,
            event,
            state,
            reason=reason,
            **{k: v for k, v in event.data.items() if k in ("by", "by_item")},
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
    _, item = _load(ctx.session, review)
    # Approving the copy at once would put it beside the slot's approved memory unasked: it
    # waits in review, where the reviewer chooses supersede or keep both.
    crowded = bool(slot_rivals(ctx.session, item=item))
    override = event.data.get("override")
    version, item = _move(
        ctx,
        review,
        event,
        VersionState.edited,
        reason="edited; the edit waits for another reviewer"
        if separated
        else "edited; the slot has an approved memory, so the edit waits for supersede or keep both"
        if crowded
        else "approved as edited",
        **({"override": override} if override else {}),
    )
    evidence = evidence_of(ctx.session, version.id)
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
        evidence=copy_evidence(evidence),
        kicker=ctx.executor.kicker,
        pre_approved_by=None if separated or crowded else event.actor,
        edited_from=version.id,
    )
    return str(copy.id)


def merge(ctx: RunContext, review: Review, event: Event) -> str:
    """Close this proposal into an approved memory, keeping the text the reviewer chose.

    Keeping the target's text, the proposal's evidence joins it only for an exact duplicate;
    keeping the proposal's text or an edit, the target gets a new version with that text (and
    its evidence: the proposal's, and for an edit the target's too), approved by this decision
    (an edit by someone else, with separation of duties). Returns the version that holds the text.
    """
    from quire.memory.service import create_version

    session = ctx.session
    proposal, item = _load(session, review)
    into = uuid.UUID(str(event.data["into"]))
    keep = str(event.data.get("keep") or "target")
    try:
        target, kept = merge_target(session, item=item, version=proposal, into=into)
    except MergeTargetInvalid as gone:
        raise DecisionNoLongerApplies(f"since the merge was decided, {gone}") from None
    if keep == "proposal" and proposal.content_hash == kept.content_hash:
        keep = "target"  # the same text: no new version for it
    _move(
        ctx,
        review,
        event,
        VersionState.merged,
        reason=f"merged into memory {into}",
        into=str(into),
        into_version=str(kept.id),
        keep=keep,
    )
    moved = copy_evidence(evidence_of(session, proposal.id))
    link = {"from_item": str(item.id), "from_version": str(proposal.id), "keep": keep}
    if keep == "target":
        if not proposal_evidence_moves(keep=keep, target=kept, proposal=proposal):
            return str(kept.id)
        for piece in moved:
            piece.version_id = kept.id
            session.add(piece)
        audit.record(
            session,
            tenant_id=proposal.tenant_id,
            type="memory.evidence_added",
            actor=event.actor or "reviewer",
            item_id=target.id,
            version_id=kept.id,
            data=link,
        )
        return str(kept.id)
    edited = keep == "edit"
    separated = edited and separation_of_duties(session)
    source = kept if edited else proposal
    copy = create_version(
        session,
        item=target,
        text=str(event.data["text"]) if edited else proposal.text,
        data=source.data,
        valid_from=source.valid_from,
        valid_to=source.valid_to,
        confidence=source.confidence,
        extractor="reviewer-merge",
        extractor_version="1",
        # The person whose words these are: nobody approves their own (separation of duties).
        proposed_by=(event.actor or "reviewer") if edited else proposal.proposed_by,
        evidence=moved + (copy_evidence(evidence_of(session, kept.id)) if edited else []),
        kicker=ctx.executor.kicker,
        pre_approved_by=None if separated else event.actor,
        origin={"merged_from": str(proposal.id), "merged_from_item": str(item.id), "keep": keep},
    )
    return str(copy.id)


# Guards: pure functions of the review state and the event.


def not_the_proposer(review: Review, event: Event) -> str | None:
    """Separation of duties: an approval by whoever proposed or edited the version is refused."""
    if review.separation_of_duties and review.proposed_by and event.actor == review.proposed_by:
        return "separation of duties: nobody approves a memory they proposed or edited"
    return None


def merge_guard(review: Review, event: Event) -> str | None:
    return needs_target(review, event) or needs_kept_text(review, event) or not_the_proposer(review, event)


def needs_kept_text(review: Review, event: Event) -> str | None:
    keep = event.data.get("keep") or "target"
    if keep not in KEEP:
        return (
            f"a merge keeps the target's text, the proposal's, or an edit ({', '.join(KEEP)}), not {keep!r}"
        )
    if keep == "edit" and not str(event.data.get("text") or "").strip():
        return "a merge that keeps an edited text needs the text"
    return None


def needs_named_memory(review: Review, event: Event) -> str | None:
    if event.data.get("supersedes"):
        return None
    return "a supersede names the approved memory it retires (supersedes)"


def supersede_guard(review: Review, event: Event) -> str | None:
    return needs_named_memory(review, event) or not_the_proposer(review, event)


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


REVIEW_OPTIONS = ("approve", "supersede", "keep_both", "reject", "edit", "merge")
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
            guard=supersede_guard,
            action=approve,
            update=set_recertification,
            role=Role.reviewer,
        ),
        Transition(
            REVIEWED,
            "keep_both",
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


def start_review_run(
    session: Session,
    *,
    version: MemoryVersion,
    state: Instance,
    kicker: Kicker | None,
    after: Run | None = None,
) -> Run:
    """Start the review run of `version` from `state` and link the version to it: its first run,
    or a fresh one `after` a run that failed (memory/recovery.py)."""
    key = f"memory-review:{version.id}" + (f":after:{after.id}" if after is not None else "")
    run, _ = create_run(
        session, program=MEMORY_REVIEW.program_name, state=state, kicker=kicker, idempotency_key=key
    )
    version.run_id = run.id
    session.add(version)
    session.flush()
    return run
