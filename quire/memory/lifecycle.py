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
(`memory.reviews.review`, where the evidence is checked); each decision needs the reviewer role
whatever route delivers it, and the guards check that it makes sense. With separation of duties
(a tenant setting, on by default) nobody approves a version they proposed or edited.

A plain approve retires nothing but the memory's own earlier version: when another memory of the
slot is approved, the reviewer chooses `supersede` (naming it) or `keep_both`. What a decision
needs (memory/decisions.py) is checked when it is made and again in its step; a step that finds
it no longer holds fails the run, and the memory is decidable again (memory/recovery.py).

This module is the transition table; the state and the move every action makes are in
`review_state`, the actions in `review_actions`, the guards in `review_guards`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from quire.core.models import Role
from quire.memory.models import MemoryVersion, VersionState
from quire.memory.review_actions import (
    approve,
    check,
    edit,
    end_as,
    merge,
    needs_recertification,
    reject,
    submit,
)
from quire.memory.review_guards import (
    merge_guard,
    needs_reason,
    needs_text,
    not_the_proposer,
    set_recertification,
    supersede_guard,
)
from quire.memory.review_state import Review
from quire.runtime.kicks import Kicker
from quire.runtime.models import Run
from quire.runtime.process import HumanTaskSpec, Instance, Process, Timer, Transition
from quire.runtime.service import create_run

NAME = "memory-review"
REVIEW_ROUTE = "POST /v1/memories/{item_id}/review"
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)

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
