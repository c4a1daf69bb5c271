"""A reviewer's decisions on memories: one (`review`), several rejected at once (`reject_many`),
or a memory taken back (`withdraw`); each checked before anything is written, then delivered to
the version's review run (memory/lifecycle.py)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from quire.core.errors import Forbidden, QuireError
from quire.core.models import Role
from quire.core.tenancy import Caller
from quire.memory.decisions import (
    merge_target,
    slot_refusal,
    slot_rivals,
    supersede_target,
)
from quire.memory.errors import MemoryNotFound, ReasonRequired, ReviewRefused
from quire.memory.lifecycle import MEMORY_REVIEW, REVIEW_ROUTE
from quire.memory.models import (
    BulkRejection,
    Evidence,
    MemoryItem,
    MemoryVersion,
    RefusedItem,
    ReviewDecision,
    VersionState,
)
from quire.memory.recovery import needs_restart, restart_review
from quire.memory.review_guards import needs_reason
from quire.memory.review_state import separation_of_duties
from quire.memory.service import get_item
from quire.memory.support import unsupported
from quire.runtime.errors import InvalidEvent
from quire.runtime.kicks import Kicker
from quire.runtime.models import HumanTask, Run
from quire.runtime.process import Event, Instance, send_event
from quire.runtime.tasks import decide_task

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
        _check_support(
            decision, evidence, data, refusal="the evidence does not support the edited text", to="approve it"
        )
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
            _check_support(
                decision,
                quotes,
                data,
                refusal="the evidence of the two memories does not support the merged text",
                to="keep it",
            )


def _check_support(
    decision: ReviewDecision, quotes: Sequence[str | None], data: dict[str, Any], *, refusal: str, to: str
) -> None:
    """Refuse a reviewer's text that the quotes do not support, unless they override it with a
    reason; an override goes into the decision's data, so the audit shows it."""
    reason = unsupported(decision.text or "", quotes)
    if reason is None:
        return
    if not decision.override:
        raise ReviewRefused(f"{refusal}: {reason}; send `override` with your reason to {to} anyway")
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
