"""The review process's guards: pure functions of its state and an event, each saying why the
event is refused (or None), and the update an approval makes to the state."""

from __future__ import annotations

from datetime import datetime

from quire.memory.decisions import KEEP
from quire.memory.review_state import Review
from quire.runtime.process import Event


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
