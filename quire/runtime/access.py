"""Who may see and move which run: decided here, for every route that reaches a run.

A run belongs to the principal that started it (`runtime_run.started_by`); runs Quire starts
itself (a document's memory, a memory's review) belong to nobody. The owner sees their run,
streams it, signals and cancels it. A program may open its runs to a role besides
(`Program.visible_to`: reviewers see every memory review). Administrators see every run of
their tenant. Everyone else gets "not found", never "forbidden": a run another person started
is not something the caller needs to know exists.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import false, or_
from sqlmodel import Session, col

from quire.core.errors import Forbidden
from quire.core.models import Role
from quire.core.tenancy import Caller
from quire.runtime.errors import RunNotFound
from quire.runtime.models import Run
from quire.runtime.programs import registry


def may_see(caller: Caller, run: Run) -> bool:
    if caller.allows(Role.admin) or run.started_by == caller.principal_id:
        return True
    role = registry.visible_to(run.program)
    return role is not None and caller.allows(role)


def may_move(caller: Caller, run: Run) -> bool:
    """Signal, cancel or send events to the run: its owner, or an administrator."""
    return caller.allows(Role.admin) or run.started_by == caller.principal_id


def visible_runs(caller: Caller) -> Any:
    """A WHERE clause for the runs `caller` may see."""
    if caller.allows(Role.admin):
        return col(Run.id).is_not(None)
    opened = [name for name, role in registry.openings().items() if caller.allows(role)]
    return or_(
        col(Run.started_by) == caller.principal_id,
        col(Run.program).in_(opened) if opened else false(),
    )


def visible_run(session: Session, *, run_id: uuid.UUID, caller: Caller) -> Run:
    """The run, if `caller` may see it; RunNotFound otherwise (the same as for no run at all)."""
    run = session.get(Run, run_id)
    if run is None or not may_see(caller, run):
        raise RunNotFound(f"no run {run_id}")
    return run


def movable_run(session: Session, *, run_id: uuid.UUID, caller: Caller) -> Run:
    """The run, if `caller` may move it: RunNotFound if they may not see it, else Forbidden."""
    run = visible_run(session, run_id=run_id, caller=caller)
    if not may_move(caller, run):
        raise Forbidden(
            f"run {run_id} was started by someone else; only they or an administrator may move it"
        )
    return run
