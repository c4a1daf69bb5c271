"""Waits that hold no worker: timers, signals, human tasks and children.

A wait that is not over parks the run (its status, `wake_at` and what it waits for) and ends
the slice; the sweeper or the signal's sender kicks the run when it is over, and the program
replays to the same wait, which now finds it over and records so. A wait's deadline is fixed
the first time the run parks on it, so replays do not move it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from quire.core.db import dumps
from quire.core.models import Role, utcnow
from quire.runtime import sql
from quire.runtime.events import RunEventType
from quire.runtime.models import RunStatus, StepKind
from quire.runtime.results import Received
from quire.runtime.service import create_run
from quire.runtime.tasks import escalate_task, expire_task, open_task

if TYPE_CHECKING:
    from quire.runtime.context import RunContext


def seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def sleep(ctx: RunContext, duration: float | timedelta) -> None:
    """See RunContext.sleep."""
    until = ctx.history.deadline(ctx.history.seq, "sleep", seconds(duration))
    sleep_until(ctx, until if until is not None else utcnow())


def sleep_until(ctx: RunContext, moment: datetime) -> None:
    """See RunContext.sleep_until."""
    seq = ctx.history.allocate("sleep", StepKind.sleep)
    if ctx.history.recorded(seq) is not None:
        return
    ctx.before_new_work(counts=False)
    parked_on = ctx.history.parked_on
    if parked_on.get("seq") == seq and parked_on.get("kind") == "sleep":
        moment = datetime.fromisoformat(parked_on["until"])
    started = utcnow()
    with ctx.journal.locked() as session:
        if utcnow() >= moment:
            ctx.journal.record_step(
                session,
                seq=seq,
                name="sleep",
                kind=StepKind.sleep,
                attempt=1,
                result=dumps({"until": moment}),
                started=started,
            )
            session.commit()
            return
        ctx.journal.park(
            session,
            status=RunStatus.sleeping,
            wake_at=moment,
            waiting_for={"kind": "sleep", "seq": seq, "until": moment.isoformat()},
            event=(RunEventType.run_sleeping, {"until": moment.isoformat(), "seq": seq}),
        )


def receive(ctx: RunContext, name: str, *, timeout: float | timedelta | None) -> Received | None:
    """See RunContext.receive."""
    step_name = f"signal:{name}"
    seq = ctx.history.allocate(step_name, StepKind.signal)
    recorded = ctx.history.recorded(seq)
    if recorded is not None:
        return Received.from_record(recorded.result or {})
    ctx.before_new_work(counts=False)
    deadline = ctx.history.deadline(seq, "signal", None if timeout is None else seconds(timeout))
    started = utcnow()
    # The run's row is locked before looking: a sender locks it before inserting, so a signal
    # cannot slip in between "none yet" and "parked".
    with ctx.journal.locked() as session:
        signal = session.execute(sql.NEXT_SIGNAL, {"run_id": ctx.run_id, "name": name}).first()
        received: Received | None = None
        if signal is not None:
            session.execute(sql.CONSUME_SIGNAL, {"id": signal[0], "seq": seq})
            received = Received(payload=signal[1], sender_id=signal[2], sender_role=signal[3])
            record = received.record()
        elif deadline is not None and utcnow() >= deadline:
            record = Received.timed_out_record()
        else:
            waiting: dict[str, Any] = {"kind": "signal", "name": name, "seq": seq}
            if deadline is not None:
                waiting["until"] = deadline.isoformat()
            ctx.journal.park(
                session,
                status=RunStatus.waiting,
                wake_at=deadline,
                waiting_for=waiting,
                event=(RunEventType.run_waiting, {"signal": name, "until": waiting.get("until")}),
            )
        ctx.journal.record_step(
            session,
            seq=seq,
            name=step_name,
            kind=StepKind.signal,
            attempt=1,
            result=dumps(record),
            started=started,
        )
        session.commit()
        return received


def human_task(
    ctx: RunContext,
    title: str,
    *,
    role: Role,
    payload: Any,
    options: list[str] | None,
    due: timedelta | None,
    escalate_to: Role | None,
    assignee: uuid.UUID | None,
    give_up: bool = False,
) -> dict[str, Any]:
    """See RunContext.human_task."""
    task_id = create_task(
        ctx,
        title,
        role=role,
        payload=payload,
        options=options,
        due=due,
        escalate_to=escalate_to,
        assignee=assignee,
    )
    signal = f"task:{task_id}"
    decision = ctx.wait_for_signal(signal, timeout=due) if due else ctx.wait_for_signal(signal)
    if decision is None:  # due passed undecided
        if give_up and escalate_to is None:
            ctx.step("expire", lambda: expire_task(ctx.session, task_id=task_id))
            return {"decision": None, "expired": True, "task_id": str(task_id)}
        if escalate_to is not None:
            ctx.step(
                "escalate", lambda: escalate_task(ctx.session, task_id=task_id, role=escalate_to, due=due)
            )
        decision = ctx.wait_for_signal(signal)
    return dict(decision or {})


def create_task(
    ctx: RunContext,
    title: str,
    *,
    role: Role,
    payload: Any,
    options: list[str] | None,
    due: timedelta | None,
    escalate_to: Role | None,
    assignee: uuid.UUID | None,
    signal_name: str | None = None,
    decided_through: str | None = None,
) -> uuid.UUID:
    """See RunContext.create_task."""

    def create() -> uuid.UUID:
        return open_task(
            ctx.session,
            tenant_id=ctx.tenant_id,
            run_id=ctx.run_id,
            seq=ctx.current_seq or 0,
            title=title,
            role=role,
            payload=payload,
            options=options,
            due=due,
            escalate_to=escalate_to,
            assignee=assignee,
            signal_name=signal_name,
            decided_through=decided_through,
        )

    return ctx.step(f"task:{title}", create)


def start_child(
    ctx: RunContext, program: str, state: BaseModel | dict[str, Any], *, version: int | None
) -> uuid.UUID:
    """See RunContext.start_child."""

    def start() -> uuid.UUID:
        child, _ = create_run(
            ctx.session,
            program=program,
            state=state,
            version=version,
            parent_id=ctx.run_id,
            idempotency_key=f"child:{ctx.idempotency_key}",
            kicker=ctx.executor.kicker,
            owner=ctx.owner,
        )
        return child.id

    return ctx.step(f"child:{program}", start)


def wait_for_child(ctx: RunContext, child_id: uuid.UUID) -> dict[str, Any]:
    """See RunContext.wait_for_child."""
    return dict(ctx.wait_for_signal(f"child:{child_id}") or {})
