"""What each transition of the memory review process does: each action runs as a durable step,
moving the version (`review_state.move_version`) and whatever else the decision changes."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlmodel import Session, col, select

from quire.core.models import utcnow
from quire.memory import audit
from quire.memory.decisions import (
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
from quire.memory.review_state import Review, end_version, load_review, move_version, separation_of_duties
from quire.runtime.context import RunContext
from quire.runtime.process import Event

# The search index of approved versions (recall reads it).
INDEX_NAME = "memory"
RECERTIFY_AFTER: dict[MemoryKind, timedelta | None] = {
    MemoryKind.fact: timedelta(days=365),
    MemoryKind.procedure: timedelta(days=180),
    MemoryKind.preference: None,
    MemoryKind.episode: None,
}


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


def check(ctx: RunContext, review: Review, event: Event) -> dict[str, Any]:
    from quire.content.environment import content_of
    from quire.memory.checks import run_checks

    version, item = load_review(ctx.session, review)
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

    _, item = load_review(ctx.session, review)
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
        end_version(version, item)
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
    from quire.memory.proposals import create_version

    separated = separation_of_duties(ctx.session)
    _, item = load_review(ctx.session, review)
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
    from quire.memory.proposals import create_version

    session = ctx.session
    proposal, item = load_review(session, review)
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
