"""`ctx.step`, `ctx.parallel` and `ctx.patched`: what a program does once per run.

Each asks for the next seq of the run's history and returns what was recorded there; only a
seq without a record does new work, through `attempts.attempt`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from quire.core.models import utcnow
from quire.runtime.attempts import (
    Done,
    FailedForGood,
    Outcome,
    TryAgain,
    attempt,
    park_until_next_attempt,
)
from quire.runtime.errors import StepFailed
from quire.runtime.models import StepKind
from quire.runtime.retry import RetryPolicy

if TYPE_CHECKING:
    from quire.runtime.context import RunContext

T = TypeVar("T")

Call = tuple[str, Callable[..., Any], tuple[Any, ...]]


def step(
    ctx: RunContext,
    name: str,
    function: Callable[..., T],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    *,
    retry: RetryPolicy,
    io: bool = False,
) -> T:
    """See RunContext.step."""
    seq = ctx.history.allocate(name, StepKind.step)
    recorded = ctx.history.recorded(seq)
    if recorded is not None:
        replayed: T = ctx.history.replay(recorded, function)
        return replayed
    ctx.before_new_work()
    outcome = attempt(
        ctx, seq=seq, name=name, function=function, args=args, kwargs=kwargs, retry=retry, io=io
    )
    if isinstance(outcome, TryAgain):
        park_until_next_attempt(ctx, [outcome])
    ctx.count_steps(1)
    if isinstance(outcome, FailedForGood):
        raise outcome.failure
    result: T = outcome.result
    return result


def parallel(
    ctx: RunContext,
    calls: Sequence[Call],
    *,
    retry: RetryPolicy | Sequence[RetryPolicy],
    max_workers: int,
    io: Sequence[bool] = (),
) -> list[Any]:
    """See RunContext.parallel."""
    policies = [retry] * len(calls) if isinstance(retry, RetryPolicy) else list(retry)
    seqs = [ctx.history.allocate(name, StepKind.step) for name, _, _ in calls]
    results: list[Any] = [None] * len(calls)
    missing = []
    for index, (seq, (_, function, _)) in enumerate(zip(seqs, calls, strict=True)):
        recorded = ctx.history.recorded(seq)
        if recorded is None:
            missing.append(index)
            continue
        try:
            results[index] = ctx.history.replay(recorded, function)
        except StepFailed as failure:
            results[index] = failure
    if not missing:
        return results
    ctx.before_new_work()
    with ThreadPoolExecutor(max_workers=min(max_workers, len(missing))) as pool:
        futures = {
            index: pool.submit(
                # A thread starts with an empty context: give each the run's log context and
                # trace, as `ctx.step` has them.
                contextvars.copy_context().run,
                _attempt_call,
                ctx,
                seqs[index],
                calls[index],
                policies[index],
                bool(io[index]) if index < len(io) else False,
            )
            for index in missing
        }
    outcomes = {index: future.result() for index, future in futures.items()}  # LeaseLost etc. raise here
    ctx.count_steps(len(missing))
    pending: list[TryAgain] = []
    for index, outcome in outcomes.items():
        if isinstance(outcome, Done):
            results[index] = outcome.result
        elif isinstance(outcome, FailedForGood):
            results[index] = outcome.failure
        else:
            pending.append(outcome)
    if pending:
        # A step here cannot park the run the moment it fails, as `ctx.step` does: its siblings
        # are still running, and parking hands the run back, so their records could not commit.
        # The run parks once all of them are done; on waking, only the steps without a record
        # run again.
        park_until_next_attempt(ctx, pending)
    return results


def _attempt_call(ctx: RunContext, seq: int, call: Call, retry: RetryPolicy, io: bool) -> Outcome:
    name, function, args = call
    return attempt(ctx, seq=seq, name=name, function=function, args=args, kwargs={}, retry=retry, io=io)


def patched(ctx: RunContext, name: str) -> bool:
    """See RunContext.patched."""
    seq = ctx.history.seq
    marker = f"patch:{name}"
    recorded = ctx.history.recorded(seq)
    if recorded is not None and recorded.kind == StepKind.patch and recorded.name == marker:
        ctx.history.seq += 1
        return True
    if seq < ctx.history.reached:
        return False  # old code went past this point without the change
    ctx.history.seq += 1
    started = utcnow()
    with ctx.journal.locked() as session:
        ctx.journal.record_step(
            session, seq=seq, name=marker, kind=StepKind.patch, attempt=1, result="true", started=started
        )
        session.commit()
    return True
