"""The memory review console: the queue, one memory with its evidence, and the decisions.

Decisions go through `quire.memory.reviews.review`, as the API's do: they decide the version's
review task and wake its process; a worker then moves the version, a moment later.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from sqlmodel import Session

from quire.app.console.deps import ReviewerConsoleDep
from quire.app.console.errors import ConsoleError
from quire.app.console.evidence import EvidenceView, in_context
from quire.app.console.findings import findings_view, recommended
from quire.app.console.history import actor_names
from quire.app.console.pages import redirect, render, safe_next, sessions_of
from quire.app.console.session import ConsoleSession
from quire.app.errors import status_for
from quire.content import service as content
from quire.content.comparison import Piece, word_diff
from quire.core.deps import DatabaseDep
from quire.core.errors import QuireError
from quire.memory import reviews, service
from quire.memory.errors import SlotHasApprovedMemory
from quire.memory.findings import REGISTRY
from quire.memory.models import EventPublic, MemoryKind, MemoryVersionPublic, ReviewDecision, VersionState
from quire.memory.queue import (
    AWAITING,
    PAGE_SIZE,
    SORTS,
    QueueFilters,
    list_queue,
    neighbours,
    pending_decisions,
)
from quire.memory.rechecks import OPEN
from quire.runtime.routes import KickerDep

router = APIRouter(prefix="/console", include_in_schema=False)

QUEUE = "/console/memory"
BULK_LIMIT = 200
DOCUMENT_CHOICES = 200  # documents offered in the queue's filter, most recently changed first

# What each decision does once the worker applies it, for the notice after the form.
OUTCOMES = {
    "approve": "the memory moves to approved in a moment",
    "supersede": "the memory moves to approved in a moment and retires the one you named",
    "keep_both": "the memory moves to approved in a moment, beside the approved one of its slot",
    "reject": "the memory moves to rejected in a moment",
    "edit": "the edited text becomes a new, approved version in a moment",
    "merge": "it moves to merged in a moment and the other memory keeps the text you chose",
    "recertify": "the memory is in effect again in a moment",
    "withdraw": "the memory moves to withdrawn in a moment",
}
ACTIONS: dict[VersionState, tuple[str, ...]] = {
    VersionState.in_review: ("approve", "supersede", "keep_both", "reject", "edit", "merge"),
    VersionState.needs_recertification: ("recertify", "reject", "edit", "withdraw"),
    VersionState.approved: ("withdraw",),
}


@contextmanager
def as_page() -> Iterator[None]:
    """Quire's errors, shown as a console page with the API's status."""
    try:
        yield
    except QuireError as error:
        raise ConsoleError(str(error), status=status_for(error)) from None


def _short(text: str, size: int = 80) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


@router.get("/memory")
def queue_page(request: Request, console: ReviewerConsoleDep, database: DatabaseDep) -> HTMLResponse:
    filters = QueueFilters.parse(request.query_params)
    with database.tenant_session(console.caller.tenant_id) as session:
        rows, count = list_queue(session, filters=filters)
        collections = [name for name, _ in content.list_collections(session)]
        documents, _ = content.list_documents(session, limit=DOCUMENT_CHOICES)
        names = actor_names(
            session, [row.decided.actor for row in rows if row.decided] + [filters.decided_by]
        )
        mine = str(console.caller.principal_id)
        return render(
            request,
            "queue.html",
            session=console,
            rows=rows,
            count=count,
            filters=filters,
            collections=collections,
            documents=sorted(documents, key=lambda d: d.title.lower()),
            kinds=[k.value for k in MemoryKind],
            flags={finding.value: spec.label for finding, spec in REGISTRY.items()},
            sorts=SORTS,
            states=[s.value for s in VersionState],
            awaiting={s.value for s in AWAITING},
            open_states={s.value for s in OPEN},
            names=names,
            mine=mine,
            mine_url=f"{QUEUE}?{QueueFilters(state='', decided_by=mine).query_string()}",
            page_size=len(rows),
            page_limit=PAGE_SIZE,
        )


@router.get("/memory/{item_id}")
def item_page(
    item_id: uuid.UUID, request: Request, console: ReviewerConsoleDep, database: DatabaseDep
) -> HTMLResponse:
    filters = QueueFilters.parse(request.query_params)
    with database.tenant_session(console.caller.tenant_id) as session, as_page():
        detail = service.describe_item(session, item_id=item_id, caller=console.caller)
        latest = detail.latest
        evidence = in_context(session, latest.evidence) if latest else []
        pending = pending_decisions(session, [latest]) if latest else {}
        decision = pending.get(latest.id) if latest else None
        referenced = _referenced(session, latest.findings if latest else {})
        names = actor_names(
            session, [e.actor for e in detail.events] + [v.proposed_by for v in detail.versions]
        )
        options = service.decision_options(session, item_id=item_id, caller=console.caller)
        rivals = [
            Rival(
                version=v,
                evidence=in_context(session, v.evidence),
                diff=word_diff(v.text, latest.text).inline,
            )
            for v in options.slot
            if latest is not None
        ]
        linked = _linked(session, detail.events, console)
        is_open = latest is not None and latest.state in OPEN
        checks = findings_view(session, latest.findings if latest else {})
        advice = (
            recommended(session, latest.findings, ACTIONS.get(latest.state, ()))
            if latest is not None and is_open and not decision and ACTIONS.get(latest.state)
            else None
        )
        previous, following = neighbours(session, filters=filters, item_id=item_id)
        query = filters.query_string()
        next_url = f"/console/memory/{following}?{query}" if following else f"{QUEUE}?{query}"
        return render(
            request,
            "item.html",
            session=console,
            item=detail,
            latest=latest,
            evidence=evidence,
            pending=decision,
            outcome=OUTCOMES.get(decision or "", ""),
            actions=() if decision or latest is None else ACTIONS.get(latest.state, ()),
            referenced=referenced,
            rivals=rivals,
            merge_candidates=options.merge_into,
            linked=linked,
            links=LINKS,
            checks=checks,
            checks_current=is_open,
            advice=advice,
            names=names,
            previous_url=f"/console/memory/{previous}?{query}" if previous else None,
            next_url=next_url,
            queue_url=f"{QUEUE}?{query}",
            refresh=3 if decision else None,
        )


@dataclass
class Rival:
    """An approved memory of the slot, beside the proposal: its sources and what the proposal changes."""

    version: MemoryVersionPublic
    evidence: list[EvidenceView]
    diff: list[Piece]


# Event data that names another memory, and how the history says it.
LINKS = {
    "into": "merged into",
    "from_item": "merged in from",
    "merged_from_item": "text merged in from",
    "by_item": "superseded by",
}


def _linked(session: Session, events: list[EventPublic], console: ConsoleSession) -> dict[str, str]:
    """The texts of the other memories the history links to, by item id."""
    texts: dict[str, str] = {}
    for event in events:
        for key in LINKS:
            value = event.data.get(key)
            if not isinstance(value, str) or value in texts or value == str(event.item_id):
                continue
            try:
                other = service.get_item(session, item_id=uuid.UUID(value), caller=console.caller)
            except (ValueError, QuireError):
                continue
            current = (
                service.get_version(session, other.current_version_id) if other.current_version_id else None
            )
            texts[value] = current.text if current else value
    return texts


def _referenced(session: Session, findings: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The memories a finding names (duplicates, conflicts), by item id: their text and state."""
    found: dict[str, dict[str, str]] = {}
    for key in ("duplicate_of", "near_duplicate_of", "conflicts_with"):
        for entry in findings.get(key) or []:
            if not isinstance(entry, dict):
                continue
            try:
                version = service.get_version(session, uuid.UUID(str(entry.get("version_id"))))
            except ValueError:
                continue
            if version is not None:
                found[str(version.item_id)] = {"text": version.text, "state": version.state.value}
    return found


@router.post("/memory/{item_id}/decide")
def decide(
    item_id: uuid.UUID,
    request: Request,
    console: ReviewerConsoleDep,
    database: DatabaseDep,
    kicker: KickerDep,
    decision: Annotated[str, Form(max_length=20)] = "",
    csrf: Annotated[str, Form(max_length=500)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    text: Annotated[str, Form(max_length=5000)] = "",
    into: Annotated[str, Form(max_length=100)] = "",
    keep: Annotated[str, Form(max_length=20)] = "target",
    supersedes: Annotated[str, Form(max_length=100)] = "",
    version_id: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> RedirectResponse:
    sessions_of(request).check_csrf(console, csrf)
    back = f"/console/memory/{item_id}"
    try:
        # The merge form always carries its text box; only a merge that keeps an edit uses it.
        typed = text.strip() if decision != "merge" or keep == "edit" else ""
        body = ReviewDecision.model_validate(
            {
                "decision": decision,
                "reason": reason.strip() or None,
                "text": typed or None,
                "into": into.strip() or None,
                "keep": keep or "target",
                "supersedes": supersedes or None,
                "version_id": version_id or None,
            }
        )
    except (ValidationError, ValueError):
        return redirect(
            request, back, flash=f"Not recorded: the form for {decision!r} was malformed", kind="error"
        )
    with database.tenant_session(console.caller.tenant_id) as session:
        try:
            version = reviews.review(
                session, item_id=item_id, decision=body, caller=console.caller, kicker=kicker
            )
            session.commit()
        except QuireError as refused:
            session.rollback()
            return redirect(request, back, flash=f"Not recorded: {refused}", kind="error")
        text_ = version.text
    message = f"Decision recorded: {body.decision} “{_short(text_)}”; {OUTCOMES[body.decision]}."
    return redirect(request, safe_next(next, back), flash=message)


def _parse_target(value: str) -> tuple[uuid.UUID, uuid.UUID | None] | None:
    item, _, version = value.partition(":")
    try:
        return uuid.UUID(item), uuid.UUID(version) if version else None
    except ValueError:
        return None


@router.post("/memory/bulk")
def bulk_approve(
    request: Request,
    console: ReviewerConsoleDep,
    database: DatabaseDep,
    kicker: KickerDep,
    csrf: Annotated[str, Form(max_length=500)] = "",
    item: Annotated[list[str] | None, Form()] = None,
    only: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> RedirectResponse:
    """Approve the selected memories (or the one whose button was pressed), each on its own."""
    sessions_of(request).check_csrf(console, csrf)
    back = safe_next(next, QUEUE)
    chosen = [only] if only else list(item or [])
    targets = [t for t in (_parse_target(v) for v in chosen[:BULK_LIMIT]) if t is not None]
    if not targets:
        return redirect(request, back, flash="Nothing selected: tick memories first (x).", kind="error")
    approved, refused = 0, []
    choose: uuid.UUID | None = None  # an item whose approve needs the reviewer's choice
    for item_id, version_id in targets:
        with database.tenant_session(console.caller.tenant_id) as session:
            try:
                current = service.get_version(session, version_id) if version_id else None
                name = (
                    "recertify"
                    if current and current.state == VersionState.needs_recertification
                    else "approve"
                )
                reviews.review(
                    session,
                    item_id=item_id,
                    decision=ReviewDecision(decision=name, version_id=version_id),
                    caller=console.caller,
                    kicker=kicker,
                )
                session.commit()
                approved += 1
            except QuireError as error:
                session.rollback()
                refused.append(str(error))
                if isinstance(error, SlotHasApprovedMemory):
                    choose = item_id
    if only and choose is not None:
        # One approve from the queue (`a`) that needs a choice: go to it, not to an error.
        return redirect(
            request,
            f"/console/memory/{choose}",
            flash="Not approved yet: its slot already has an approved memory. "
            "Choose: supersede it (s) or keep both (b).",
            kind="error",
        )
    message = f"Decisions recorded: {approved} approved; the memories move to approved in a moment."
    if refused:
        message += f" {len(refused)} refused: " + "; ".join(_short(r, 160) for r in refused[:5])
    return redirect(request, back, flash=message, kind="error" if refused and not approved else "ok")


@router.post("/memory/bulk-reject")
def bulk_reject(
    request: Request,
    console: ReviewerConsoleDep,
    database: DatabaseDep,
    kicker: KickerDep,
    csrf: Annotated[str, Form(max_length=500)] = "",
    item: Annotated[list[str] | None, Form()] = None,
    reason: Annotated[str, Form(max_length=2000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> RedirectResponse:
    """Reject the selected memories with one reason (`memory.reviews.reject_many`)."""
    sessions_of(request).check_csrf(console, csrf)
    back = safe_next(next, QUEUE)
    targets = [t for t in (_parse_target(v) for v in list(item or [])[:BULK_LIMIT]) if t is not None]
    if not targets:
        return redirect(request, back, flash="Nothing selected: tick memories first (x).", kind="error")
    if not reason.strip():
        return redirect(request, back, flash="Not recorded: a rejection needs a reason.", kind="error")
    with database.tenant_session(console.caller.tenant_id) as session:
        try:
            outcome = reviews.reject_many(
                session,
                item_ids=[item_id for item_id, _ in targets],
                reason=reason,
                caller=console.caller,
                kicker=kicker,
            )
            session.commit()
        except QuireError as refused:
            session.rollback()
            return redirect(request, back, flash=f"Not recorded: {refused}", kind="error")
    message = (
        f"Decisions recorded: {len(outcome.rejected)} rejected (“{_short(reason.strip(), 60)}”); "
        "the memories move to rejected in a moment."
    )
    if outcome.refused:
        message += f" {len(outcome.refused)} refused: " + "; ".join(
            _short(r.reason, 160) for r in outcome.refused[:5]
        )
    kind = "error" if outcome.refused and not outcome.rejected else "ok"
    return redirect(request, back, flash=message, kind=kind)
