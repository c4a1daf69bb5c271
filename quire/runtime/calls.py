"""Calls out of a worker (model providers, remote tools) that a run can walk away from.

A step marked `io=True` runs its function in a thread of its own while the step's thread
watches: if the run is cancelled, moved to another worker, or this worker is stopping, the step's
thread stops waiting at once and the call is abandoned. Nothing it returns later is recorded
(the record is written by the step's thread, which has gone), so nothing after the interruption
is paid for by the run. A streaming call notices within one chunk (`abandoned()`) and closes its
response; a call waiting for a whole response ends at its own timeout, in the background.

No database transaction is open while the call is out: the step reads what it needs first
(`ctx.transaction()`), and its record is written once the call is back.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from quire.runtime.errors import Cancelled, HandOver, LeaseLost
from quire.runtime.history import COMPENSATION_SEQ

if TYPE_CHECKING:
    from quire.runtime.context import RunContext

# How often a waiting step asks the database whether its run was cancelled or moved.
POLL_SECONDS = 1.0

_abandoned: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "quire_call_abandoned", default=None
)

RUN_STANDING = text("SELECT cancel_requested, epoch FROM runtime_run WHERE id = :run_id")


def abandoned() -> bool:
    """True inside a call out whose run has walked away from it: stop, nothing will be kept."""
    event = _abandoned.get()
    return event is not None and event.is_set()


def call_out(
    ctx: RunContext,
    seq: int,
    attempt: int,
    function: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
) -> Any:
    """`function(*args, **kwargs)` in a thread of its own, given up on when the run must stop."""
    outcome: dict[str, Any] = {}
    done = threading.Event()
    walked_away = threading.Event()
    context = contextvars.copy_context()  # the run's log context and trace, as the step has them

    def run() -> None:
        _abandoned.set(walked_away)
        try:
            with ctx.inside_step(None, seq, attempt):
                outcome["result"] = function(*args, **kwargs)
        except BaseException as error:  # handed to the step's thread, which decides
            outcome["error"] = error
        finally:
            done.set()

    thread = threading.Thread(target=context.run, args=(run,), name=f"quire-call-{seq}", daemon=True)
    thread.start()
    next_look = time.monotonic() + POLL_SECONDS
    try:
        while not done.wait(0.05):
            if ctx.executor.handing_over.is_set():
                raise HandOver()
            if time.monotonic() >= next_look:
                _check_standing(ctx, compensating=seq >= COMPENSATION_SEQ)
                next_look = time.monotonic() + POLL_SECONDS
    except BaseException:
        walked_away.set()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _check_standing(ctx: RunContext, *, compensating: bool) -> None:
    """Raise Cancelled if the run was asked to stop (compensation runs on regardless), LeaseLost
    if another worker has it."""
    with ctx.executor.database.tenant_session(ctx.tenant_id) as session:
        row = session.execute(RUN_STANDING, {"run_id": ctx.run_id}).first()
        session.rollback()
    if row is None or int(row[1]) != ctx.run.epoch or ctx.executor.leases.is_lost(ctx.run_id, ctx.run.epoch):
        raise LeaseLost(ctx.run_id)
    if row[0] and not compensating:
        ctx.journal.cancel_requested = True
        raise Cancelled()
