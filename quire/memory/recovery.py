"""A review run that fails does not strand its memory: the memory is decidable again.

A decision that passed its checks can still fail in the run's step (the world changed in
between, or a bug). The run then ends `failed` while its version stays in review with its task
decided: the console would wait for that decision for ever, and any new decision would meet a
run that takes no more signals. Instead such a version counts as awaiting a decision again (the
queue and its page show why the last one failed), and the next decision starts a fresh review
run from the version's state; the audit log records the restart with the failure's reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlmodel import Session, col, select

from quire.memory import audit
from quire.memory.errors import DecisionNoLongerApplies
from quire.memory.lifecycle import start_review_run
from quire.memory.models import MemoryItem, MemoryVersion
from quire.memory.queue import AWAITING, ENDED, Reviewable
from quire.runtime.kicks import Kicker
from quire.runtime.models import Run
from quire.runtime.process import Instance


def failed_reviews(session: Session, versions: Sequence[Reviewable]) -> dict[uuid.UUID, str]:
    """Versions still awaiting a decision whose review run ended without one, with the reason."""
    runs = {v.run_id: v.id for v in versions if v.run_id is not None and v.state in AWAITING}
    if not runs:
        return {}
    rows = session.exec(select(Run).where(col(Run.id).in_(list(runs)), col(Run.status).in_(ENDED))).all()
    return {runs[run.id]: in_words(run) for run in rows}


def in_words(run: Run) -> str:
    """Why a review run ended, as a reviewer reads it: a decision that no longer applied says so
    in its own words, without the runtime's wrapping; anything else as the run recorded it."""
    if not run.error:
        return f"its review run was {run.status.value}"
    wrapped = f"{DecisionNoLongerApplies.__name__}: "
    if run.error_code == DecisionNoLongerApplies.code and wrapped in run.error:
        return run.error.split(wrapped, 1)[1]
    return run.error


def needs_restart(version: MemoryVersion, run: Run) -> bool:
    return run.status in ENDED and version.state in AWAITING


def restart_review(
    session: Session, *, item: MemoryItem, version: MemoryVersion, run: Run, actor: str, kicker: Kicker | None
) -> Run:
    """A fresh review run for `version`, in the state its failed run left it, waiting for a person."""
    previous = Instance.model_validate(run.state or run.input)
    # An edit's copy approved by its timer would try again at once: after a failure, a person decides.
    data = {**previous.data, "pre_approved_by": None}
    state = Instance(current=version.state.value, data=data)
    fresh = start_review_run(session, version=version, state=state, kicker=kicker, after=run)
    audit.record(
        session,
        tenant_id=version.tenant_id,
        type="memory.review_restarted",
        actor=actor,
        item_id=item.id,
        version_id=version.id,
        reason=f"the last decision could not be applied: {in_words(run)}",
        data={"failed_run": str(run.id), "run": str(fresh.id)},
    )
    session.flush()
    return fresh
