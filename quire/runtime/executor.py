"""Advancing one run by one bounded slice: claim it, replay its program, store the outcome."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from quire.core.db import Database
from quire.core.logcontext import log_context
from quire.core.models import utcnow
from quire.core.tracing import span_from
from quire.runtime.context import RunContext
from quire.runtime.errors import (
    DEADLINE_EXCEEDED,
    INTERNAL,
    REPLAY_MISMATCH,
    Cancelled,
    HandOver,
    LeaseLost,
    NonDeterminism,
    ProgramNotFound,
    RunFailed,
    RunFinished,
    StepFailed,
    Suspend,
)
from quire.runtime.events import RunEventType
from quire.runtime.kicks import Kicker
from quire.runtime.leases import LeaseKeeper, claim
from quire.runtime.models import RunStatus
from quire.runtime.programs import Program, Registry, registry
from quire.runtime.signals import deliver_signal

logger = logging.getLogger(__name__)

MISSING_PROGRAM_RETRY_SECONDS = 30.0


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def is_infrastructure_error(error: BaseException) -> bool:
    """Errors of the database connection itself: the run is fine, this worker is not."""
    if isinstance(error, OperationalError | psycopg.OperationalError | psycopg.InterfaceError):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


@dataclass(frozen=True)
class Outcome:
    run_id: uuid.UUID
    status: RunStatus | None  # None: the slice ended without a final status (parked, lost)


class Executor:
    """Runs programs for the worker process it lives in."""

    def __init__(
        self,
        database: Database,
        kicker: Kicker,
        *,
        owner: str | None = None,
        lease_ttl: float = 6.0,
        slice_steps: int = 200,
        slice_seconds: float = 30.0,
        programs: Registry = registry,
        services: Any = None,
    ) -> None:
        """`services` is what the process's programs use (`ctx.services`): the runtime does not
        look inside; `quire.app.services.Services` in a Quire process, whatever a test builds."""
        self.database = database
        self.kicker = kicker
        self.owner = owner or default_owner()
        self.lease_ttl = lease_ttl
        self.slice_steps = slice_steps
        self.slice_seconds = slice_seconds
        self.programs = programs
        self.services = services
        self.leases = LeaseKeeper(database, owner=self.owner, ttl=lease_ttl)
        # Set when the process is stopping: runs go back to the queue at their next step, and
        # calls out in flight are abandoned at once (see `hand_over`).
        self.handing_over = threading.Event()

    def start(self) -> None:
        self.leases.start()

    def stop(self) -> None:
        self.leases.stop()

    def hand_over(self) -> None:
        """Give every run this process holds back to the queue, at once for runs waiting on a
        call out and at the next step for the others; a worker that is stopping calls this first.

        A handed-over run is queued and kicked for another worker without counting as a
        recovery; a call abandoned here may still answer, but nothing records it (fencing)."""
        self.handing_over.set()

    def advance(self, run_id: uuid.UUID, epoch: int) -> Outcome | None:
        """Move `run_id` forward if the kick is current; None when there was nothing to do."""
        if self.handing_over.is_set():
            # A stopping worker takes no new work: the kick goes back for another worker (after
            # a pause, so that this one's consumer, about to stop, does not spin on it).
            time.sleep(0.2)
            self.kicker.resend(run_id, epoch)
            return None
        claimed = claim(self.database, run_id=run_id, epoch=epoch, owner=self.owner, ttl=self.lease_ttl)
        if claimed is None:
            return None
        run, history = claimed
        self.leases.hold(run.id, run.epoch)
        ctx = RunContext(self, run, history)
        try:
            with (
                log_context(run_id=run.id, tenant_id=run.tenant_id),
                span_from(run.trace_parent, f"run {run.program}", run_id=str(run.id), epoch=run.epoch),
            ):
                return Outcome(run.id, self._execute(ctx))
        except LeaseLost:
            logger.warning(
                "lost the lease on run %s (epoch %s): another worker has it; this one stops",
                run.id,
                run.epoch,
            )
            return Outcome(run.id, None)
        except Exception as error:
            if not is_infrastructure_error(error):
                raise
            # The lease runs out and the sweeper hands the run to a worker that can reach the
            # database; nothing about the run itself failed.
            logger.warning("database trouble while advancing run %s: %s", run.id, error)
            return Outcome(run.id, None)
        finally:
            self.leases.release(run.id, run.epoch)

    def _execute(self, ctx: RunContext) -> RunStatus | None:
        run = ctx.run
        try:
            program = self.programs.get(run.program, run.program_version)
        except ProgramNotFound as missing:
            self._postpone(ctx, str(missing))
            return None
        state: Any = program.load_state(run.input)
        try:
            if ctx.cancel_requested:
                raise Cancelled()
            if self.handing_over.is_set():
                raise HandOver()
            result = program.function(ctx, state)
            return self._finish(ctx, RunStatus.completed, state=program.dump_state(result))
        except Suspend:
            return None
        except HandOver:
            self._hand_over(ctx)
            return None
        except Cancelled:
            # Compensation works from the newest state the run published, not its input.
            latest = program.load_state(run.state) if run.state else state
            return self._cancel(ctx, program, latest)
        except RunFailed as failure:
            dumped = program.dump_state(failure.state) if failure.state is not None else None
            return self._finish(ctx, RunStatus.failed, state=dumped, error=failure.message, code=failure.code)
        except StepFailed as failure:
            return self._finish(ctx, RunStatus.failed, error=str(failure), code=failure.error_code)
        except NonDeterminism as mismatch:
            self._block(ctx, str(mismatch))
            return None
        except LeaseLost:
            raise
        except Exception as error:
            if is_infrastructure_error(error):
                raise
            logger.exception("run %s (%s) failed outside a step", run.id, run.program)
            return self._finish(
                ctx, RunStatus.failed, error=f"{type(error).__name__}: {error}", code=INTERNAL
            )

    def _cancel(self, ctx: RunContext, program: Program, state: Any) -> RunStatus | None:
        if program.on_cancel is not None:
            ctx.enter_compensation()
            try:
                program.on_cancel(ctx, state)
            except Suspend:
                ctx.journal.cancel_requested = True
                return None
            except (StepFailed, NonDeterminism) as error:
                return self._finish(
                    ctx,
                    RunStatus.failed,
                    error=f"cancelled, but compensation failed: {error}",
                    code="compensation_failed",
                )
        if ctx.run.cancel_reason == DEADLINE_EXCEEDED or self._deadline_passed(ctx):
            return self._finish(
                ctx,
                RunStatus.failed,
                error="the run's deadline passed before it ended",
                code=DEADLINE_EXCEEDED,
            )
        return self._finish(ctx, RunStatus.cancelled, error="cancelled on request")

    def _deadline_passed(self, ctx: RunContext) -> bool:
        """Whether the sweeper asked this run to stop for its deadline (after it was claimed)."""
        with self.database.tenant_session(ctx.tenant_id) as session:
            reason = session.execute(
                text("SELECT cancel_reason FROM runtime_run WHERE id = :id"), {"id": ctx.run_id}
            ).scalar()
            session.rollback()
        return bool(reason == DEADLINE_EXCEEDED)

    def _block(self, ctx: RunContext, mismatch: str) -> None:
        """The program no longer matches the run's history: park the run `blocked`, with the
        mismatch shown, until someone deploys a fix and retries it (or cancels it)."""
        logger.error("run %s is blocked: %s", ctx.run_id, mismatch)
        with ctx.journal.locked() as session, contextlib.suppress(Suspend):
            ctx.journal.park(
                session,
                status=RunStatus.blocked,
                wake_at=None,
                waiting_for={"kind": "blocked", "reason": mismatch},
                event=(RunEventType.run_blocked, {"error": mismatch, "code": REPLAY_MISMATCH}),
                error=mismatch,
                error_code=REPLAY_MISMATCH,
            )

    def _hand_over(self, ctx: RunContext) -> None:
        """Queue the run for another worker now; not a recovery (this worker is not lost)."""
        with ctx.journal.locked() as session, contextlib.suppress(Suspend):
            ctx.journal.park(
                session,
                status=RunStatus.queued,
                wake_at=utcnow(),
                waiting_for={"kind": "handed_over", **ctx.history.attempts_to_carry()},
                attempt=ctx.run.attempt,
                event=(RunEventType.run_handed_over, {"worker": self.owner}),
                kick=True,
            )
        logger.info("run %s handed over: this worker is stopping", ctx.run_id)

    def _finish(
        self,
        ctx: RunContext,
        status: RunStatus,
        *,
        state: dict[str, Any] | None = None,
        error: str | None = None,
        code: str | None = None,
    ) -> RunStatus:
        from quire.runtime.service import cancel_descendants

        if state is not None:
            ctx.publish(state)
        with ctx.journal.locked() as session:
            parent_id = ctx.journal.finish(session, status=status, error=error, error_code=code)
            if status != RunStatus.completed:
                cancel_descendants(session, run_id=ctx.run_id, kicker=self.kicker)
            if parent_id is not None:
                # The parent may have ended first (it was cancelled, say).
                with contextlib.suppress(RunFinished):
                    deliver_signal(
                        session,
                        run_id=parent_id,
                        name=f"child:{ctx.run_id}",
                        key=f"child-end:{ctx.run_id}",
                        payload={
                            "status": status.value,
                            "state": state,
                            "error": error,
                            **({"code": code} if code else {}),
                        },
                        kicker=self.kicker,
                    )
            session.commit()
        logger.info("run %s %s%s", ctx.run_id, status.value, f": {error}" if error else "")
        return status

    def _postpone(self, ctx: RunContext, reason: str) -> None:
        """No program for this run here (a rolling deploy?): let another or a later worker try."""
        logger.warning("run %s: %s; trying again later", ctx.run_id, reason)
        from datetime import timedelta

        wake_at = utcnow() + timedelta(seconds=MISSING_PROGRAM_RETRY_SECONDS)
        with ctx.journal.locked() as session, contextlib.suppress(Suspend):
            ctx.journal.park(
                session,
                status=RunStatus.sleeping,
                wake_at=wake_at,
                waiting_for={
                    "kind": "program",
                    "reason": reason,
                    "until": wake_at.isoformat(),
                    **ctx.history.attempts_to_carry(),
                },
                attempt=ctx.run.attempt,
                event=(RunEventType.run_program_missing, {"reason": reason}),
            )
