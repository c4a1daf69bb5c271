"""One attempt at a step, and what follows it; the one place the runtime does this.

An attempt runs the step's function in a transaction of its own, with the step in the log
context and a span of its own. Then one of three things: its result commits with the step's
record (`Done`); its error, when no other attempt may follow, commits as the step's record
(`FailedForGood`); or the run must park before the next attempt (`TryAgain`: back-off after a
failure, or the wait a throttled service asked for). Parking never happens in here: `ctx.step`
parks at once, `ctx.parallel` once the step's siblings are done (see `steps.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from quire.core.db import TenantSession
from quire.core.logcontext import log_context
from quire.core.models import utcnow
from quire.core.tracing import span
from quire.runtime.calls import call_out
from quire.runtime.errors import (
    Cancelled,
    HandOver,
    LeaseLost,
    NonRetryable,
    RetryAfter,
    StepFailed,
    Suspend,
)
from quire.runtime.events import RunEventType
from quire.runtime.models import RunStatus, StepKind
from quire.runtime.results import encode_result
from quire.runtime.retry import RetryPolicy

if TYPE_CHECKING:
    from quire.runtime.context import RunContext

STEP_RETRYING = RunEventType.step_retrying
STEP_THROTTLED = RunEventType.step_throttled


@dataclass(frozen=True)
class Done:
    result: Any


@dataclass(frozen=True)
class FailedForGood:
    failure: StepFailed


@dataclass(frozen=True)
class TryAgain:
    """Nothing was recorded: the step runs again after `delay` seconds, the run parked meanwhile."""

    seq: int
    name: str
    failed_attempts: int
    error: BaseException
    delay: float

    @property
    def throttled(self) -> bool:
        return isinstance(self.error, RetryAfter)


Outcome = Done | FailedForGood | TryAgain


def describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def attempt(
    ctx: RunContext,
    *,
    seq: int,
    name: str,
    function: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    retry: RetryPolicy,
    io: bool = False,
) -> Outcome:
    """Try step `seq` once; commit what it ended with unless another attempt is due.

    An ordinary step runs inside the transaction that records it (`ctx.session`). An `io` step
    calls out (a model, a remote tool): it runs with no transaction open, in a call the run can
    abandon (`calls.py`), and its record is written in a transaction opened when it is back."""
    number = ctx.history.failed_attempts(seq) + 1
    started = utcnow()
    if io:
        try:
            result = _run(ctx, seq, name, number, lambda: call_out(ctx, seq, number, function, args, kwargs))
            encoded = encode_result(function, result)
        except (LeaseLost, Suspend, Cancelled, HandOver):
            raise
        except Exception as error:
            again = _try_again(seq, name, number, error, retry)
            if again is not None:
                return again
            with ctx.executor.database.tenant_session(ctx.tenant_id) as session:
                return _fail(ctx, session, seq, name, number, started, error)
        with ctx.executor.database.tenant_session(ctx.tenant_id) as session:
            return _done(ctx, session, seq, name, number, started, result, encoded)
    with (
        ctx.executor.database.tenant_session(ctx.tenant_id) as session,
        ctx.inside_step(session, seq, number),
    ):
        try:
            result = _run(ctx, seq, name, number, lambda: function(*args, **kwargs))
            encoded = encode_result(function, result)
        except (LeaseLost, Suspend, Cancelled, HandOver):
            raise
        except Exception as error:
            session.rollback()
            again = _try_again(seq, name, number, error, retry)
            if again is not None:
                return again
            return _fail(ctx, session, seq, name, number, started, error)
        return _done(ctx, session, seq, name, number, started, result, encoded)


def _run(ctx: RunContext, seq: int, name: str, number: int, call: Callable[[], Any]) -> Any:
    with log_context(step=f"{seq}:{name}"), span(f"step {name}", seq=seq, attempt=number):
        return call()


def _try_again(seq: int, name: str, number: int, error: Exception, retry: RetryPolicy) -> TryAgain | None:
    """The next attempt, if one may follow; None when the step has failed for good."""
    if isinstance(error, RetryAfter):  # not the step's fault: the attempt does not count
        return TryAgain(seq, name, number - 1, error, error.seconds)
    if not isinstance(error, NonRetryable) and number < retry.max_attempts:
        return TryAgain(seq, name, number, error, retry.delay(number))
    return None


def _fail(
    ctx: RunContext,
    session: TenantSession,
    seq: int,
    name: str,
    number: int,
    started: datetime,
    error: Exception,
) -> FailedForGood:
    code = error_code_of(error)
    _record(ctx, session, seq, name, number, started, error=describe(error), error_code=code)
    failure = StepFailed(name, describe(error), code)
    failure.__cause__ = error
    return FailedForGood(failure)


def _done(
    ctx: RunContext,
    session: TenantSession,
    seq: int,
    name: str,
    number: int,
    started: datetime,
    result: Any,
    encoded: str,
) -> Done:
    _record(ctx, session, seq, name, number, started, result=encoded)
    return Done(result)


def _record(
    ctx: RunContext,
    session: TenantSession,
    seq: int,
    name: str,
    number: int,
    started: datetime,
    *,
    result: str | None = None,
    error: str | None = None,
    error_code: str | None = None,
) -> None:
    """Commit the step's record: its result, or the error it failed with for good."""
    ctx.journal.record_step(
        session,
        seq=seq,
        name=name,
        kind=StepKind.step,
        attempt=number,
        result=result,
        started=started,
        error=error,
        error_code=error_code,
    )
    session.commit()


def error_code_of(error: BaseException) -> str:
    """The stable code of what a step raised: a Quire error's own, else `step_failed`."""
    code = getattr(error, "code", None)
    return code if isinstance(code, str) and code else "step_failed"


def park_until_next_attempt(ctx: RunContext, pending: Sequence[TryAgain]) -> NoReturn:
    """Park the run until every step in `pending` may be tried again, holding no worker.

    The longest wait decides when the run wakes, and whether it is `throttled` (a service asked
    for the wait) or `sleeping` (back-off). Each step's failed attempts are kept in
    `waiting_for`, so its retries stay bounded across parks.
    """
    decisive = max(pending, key=lambda again: (again.delay, again.throttled))
    wake_at = utcnow() + timedelta(seconds=decisive.delay)
    kind = "throttled" if decisive.throttled else "retry"
    with ctx.journal.locked() as session:
        for again in pending:
            if again is not decisive:
                ctx.journal.emit(_event_type(again), _event_data(again))
        ctx.journal.park(
            session,
            status=RunStatus.throttled if decisive.throttled else RunStatus.sleeping,
            wake_at=wake_at,
            waiting_for={
                "kind": kind,
                "seq": decisive.seq,
                "step": decisive.name,
                "until": wake_at.isoformat(),
                "attempts": {str(again.seq): again.failed_attempts for again in pending},
            },
            attempt=decisive.failed_attempts,
            event=(_event_type(decisive), _event_data(decisive)),
        )


def _event_type(again: TryAgain) -> str:
    return STEP_THROTTLED if again.throttled else STEP_RETRYING


def _event_data(again: TryAgain) -> dict[str, Any]:
    return {
        "seq": again.seq,
        "name": again.name,
        "attempt": again.failed_attempts,
        "error": describe(again.error),
        "delay_s": round(again.delay, 3),
    }
