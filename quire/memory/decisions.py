"""Whether a review decision can succeed: checked when it is made, and again when its step runs.

A decision that cannot succeed is refused when the reviewer makes it, with the reason, instead
of being accepted and left to fail in the review run. The same functions run again inside the
run's step, because the world may change in between (the merge target withdrawn, another memory
approved in the slot); there a refusal fails the run and the memory goes back to the queue
(memory/recovery.py).

- **The slot.** Memories of one scope with one subject key fill one slot. A plain approve never
  retires another memory: when the slot already has an approved one, the reviewer chooses
  `supersede` (naming the memory it retires) or `keep_both` (two different facts). A newer
  version of the same memory replaces its predecessor: that is what proposing a version asks.
- **Merge.** The target must exist here, be approved (not in review), and belong where the
  proposal belongs: the same scope, and a shared collection when both quote documents. The
  reviewer keeps the target's text, the proposal's, or an edit; the proposal's evidence joins the
  kept text only when it is the proposal's own text, an edit (written from both), or the same
  text as the target's (an exact duplicate). Otherwise it stays with the closed proposal.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from quire.content.models import Document
from quire.memory.errors import MergeTargetInvalid, SlotHasApprovedMemory, SupersedeTargetInvalid
from quire.memory.findings import Findings
from quire.memory.models import Evidence, MemoryItem, MemoryScope, MemoryVersion, VersionState

LIVE_STATES = (VersionState.approved, VersionState.needs_recertification)
KEEP = ("target", "proposal", "edit")  # which text a merge keeps


def _short(text: str, size: int = 120) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def slot_rivals(session: Session, *, item: MemoryItem) -> list[tuple[MemoryItem, MemoryVersion]]:
    """The approved memories of other items in `item`'s slot (same scope, same subject key)."""
    if not item.subject_key:
        return []
    query = (
        select(MemoryItem, MemoryVersion)
        .join(MemoryVersion, col(MemoryVersion.item_id) == col(MemoryItem.id))
        .where(
            MemoryItem.id != item.id,
            MemoryItem.subject_key == item.subject_key,
            MemoryItem.scope == item.scope,
            col(MemoryItem.scope_ref) == item.scope_ref
            if item.scope_ref
            else col(MemoryItem.scope_ref).is_(None),
            col(MemoryVersion.state).in_(LIVE_STATES),
        )
        .order_by(col(MemoryVersion.approved_at), col(MemoryVersion.id))
    )
    return [(rival, version) for rival, version in session.exec(query).all()]


def slot_refusal(
    item: MemoryItem, rivals: Sequence[tuple[MemoryItem, MemoryVersion]]
) -> SlotHasApprovedMemory:
    """Why a plain approve is refused, naming the approved memories of the slot."""
    named = "; ".join(f"memory {rival.id}: “{_short(version.text)}”" for rival, version in rivals)
    first = rivals[0][0].id
    return SlotHasApprovedMemory(
        f"memory {item.id} shares its slot (“{item.subject_key}”) with an approved memory ({named}); "
        f'a plain approve retires nothing, so choose: `supersede` with "supersedes": "{first}" to '
        "retire it, or `keep_both` if they are different facts",
        existing=describe(rivals),
    )


def supersede_target(
    item: MemoryItem, rivals: Sequence[tuple[MemoryItem, MemoryVersion]], supersedes: uuid.UUID | None
) -> tuple[MemoryItem, MemoryVersion]:
    """The approved memory a `supersede` retires: the one it names, which must be in the slot."""
    if not rivals:
        raise SupersedeTargetInvalid(
            f"memory {item.id} has no approved memory in its slot to supersede: approve it instead"
        )
    if supersedes is None:
        ids = ", ".join(str(rival.id) for rival, _ in rivals)
        raise SupersedeTargetInvalid(
            f'`supersede` names the memory it retires ("supersedes"): the slot\'s approved one is {ids}'
        )
    for rival, version in rivals:
        if rival.id == supersedes:
            return rival, version
    raise SupersedeTargetInvalid(
        f"memory {supersedes} is not an approved memory of this slot (“{item.subject_key}”); "
        f"the slot's approved ones are {', '.join(str(rival.id) for rival, _ in rivals)}"
    )


def collections_of(session: Session, *, item: MemoryItem, version: MemoryVersion) -> set[str]:
    """The collections a memory belongs to: its scope's, and those of the documents it quotes."""
    found = {item.scope_ref} if item.scope == MemoryScope.collection and item.scope_ref else set()
    rows = session.exec(
        select(Document.collection)
        .join(Evidence, col(Evidence.document_id) == col(Document.id))
        .where(Evidence.version_id == version.id)
    ).all()
    return found | {str(name) for name in rows}


def _where(item: MemoryItem) -> str:
    return item.scope.value + (f" {item.scope_ref}" if item.scope_ref else "")


def merge_target(
    session: Session, *, item: MemoryItem, version: MemoryVersion, into: uuid.UUID
) -> tuple[MemoryItem, MemoryVersion]:
    """The memory `version` may merge into, with its approved version; MergeTargetInvalid says
    why not."""
    if into == item.id:
        raise MergeTargetInvalid("a memory cannot be merged into itself")
    target = session.get(MemoryItem, into)
    if target is None:
        raise MergeTargetInvalid(f"there is no memory {into} to merge into")
    approved = session.get(MemoryVersion, target.approved_version_id) if target.approved_version_id else None
    if approved is None or approved.state != VersionState.approved:
        current = session.get(MemoryVersion, target.current_version_id) if target.current_version_id else None
        state = current.state.value.replace("_", " ") if current else "without a version"
        raise MergeTargetInvalid(
            f"memory {into} is {state}, not approved: a proposal merges only into an approved memory "
            "(decide that one first, or approve, edit or reject this one)"
        )
    if (target.scope, target.scope_ref) != (item.scope, item.scope_ref):
        raise MergeTargetInvalid(
            f"memory {into} has scope {_where(target)}, this proposal {_where(item)}: "
            "a merge stays within one scope"
        )
    mine = collections_of(session, item=item, version=version)
    theirs = collections_of(session, item=target, version=approved)
    if mine and theirs and not mine & theirs:
        raise MergeTargetInvalid(
            f"memory {into} comes from collection {', '.join(sorted(theirs))}, this proposal from "
            f"{', '.join(sorted(mine))}: a merge stays within one collection"
        )
    return target, approved


def merge_candidates(
    session: Session, *, item: MemoryItem, version: MemoryVersion
) -> list[tuple[MemoryItem, MemoryVersion]]:
    """The memories the checks found this one duplicates that it may merge into (approved, same
    scope and collection), most similar first."""
    findings = Findings.of(version.findings)
    candidates: list[tuple[MemoryItem, MemoryVersion]] = []
    seen: set[uuid.UUID] = set()
    for reference in (findings.duplicate_of or []) + (findings.near_duplicate_of or []):
        if reference.item_id in seen:
            continue
        seen.add(reference.item_id)
        try:
            candidates.append(merge_target(session, item=item, version=version, into=reference.item_id))
        except MergeTargetInvalid:
            continue
    return candidates


def proposal_evidence_moves(*, keep: str, target: MemoryVersion, proposal: MemoryVersion) -> bool:
    """Whether the proposal's evidence joins the kept text (see the module's docstring)."""
    return keep != "target" or target.content_hash == proposal.content_hash


def copy_evidence(pieces: Sequence[Evidence], *, note: str | None = None) -> list[Evidence]:
    """Unattached copies of evidence, for another version (the originals stay where they are)."""
    return [
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
            note=note or e.note,
        )
        for e in pieces
    ]


def evidence_of(session: Session, version_id: uuid.UUID) -> list[Evidence]:
    return list(session.exec(select(Evidence).where(Evidence.version_id == version_id)).all())


def describe(rivals: Sequence[tuple[MemoryItem, MemoryVersion]]) -> list[dict[str, Any]]:
    """The slot's approved memories as an API error names them."""
    return [{"item_id": str(r.id), "version_id": str(v.id), "text": v.text} for r, v in rivals]
