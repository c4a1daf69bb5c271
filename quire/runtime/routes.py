"""HTTP API of the runtime: runs, their events (SSE), signals, cancellation, human tasks."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from quire.core.db import Database, dumps
from quire.core.deps import (
    AdminDep,
    ContributorDep,
    DatabaseDep,
    ReaderDep,
    TenantSessionDep,
)
from quire.core.errors import Forbidden
from quire.core.pages import DEFAULT_LIMIT, CursorQuery, LimitQuery
from quire.runtime import service, tasks
from quire.runtime.events import events_after
from quire.runtime.kicks import Kicker
from quire.runtime.models import (
    TERMINAL,
    RunPublic,
    RunsPublic,
    RunStatus,
    RunSummary,
    TaskPublic,
    TasksPublic,
)
from quire.runtime.process import Event, send_event
from quire.runtime.programs import registry

router = APIRouter(prefix="/v1", tags=["runs"])

SSE_POLL_SECONDS = 0.5
SSE_KEEPALIVE_SECONDS = 15.0


def get_kicker(request: Request) -> Kicker:
    kicker: Kicker = request.app.state.kicker
    return kicker


KickerDep = Annotated[Kicker, Depends(get_kicker)]


class RunCreate(BaseModel):
    program: str
    state: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, max_length=300)
    deadline_seconds: float | None = Field(
        default=None,
        gt=0,
        le=366 * 86400,
        description="Wall-clock seconds from now after which the run is stopped wherever it is "
        "(failed, deadline_exceeded), parked or not.",
    )


class RunStarted(BaseModel):
    id: uuid.UUID
    created: bool


@router.post("/runs", status_code=202)
def start_run(body: RunCreate, caller: AdminDep, session: TenantSessionDep, kicker: KickerDep) -> RunStarted:
    """Start a run of a registered program (administrators; agents and uploads have their own).

    The run is the caller's and acts with their role; Quire's own programs (agent runs,
    ingestion, memory review) start only through their own routes."""
    if not registry.get(body.program).startable:
        raise Forbidden(f"{body.program} runs start through their own route, not POST /v1/runs")
    run, created = service.create_run(
        session,
        program=body.program,
        state=body.state,
        kicker=kicker,
        idempotency_key=body.idempotency_key,
        owner=caller,
        deadline_seconds=body.deadline_seconds,
    )
    session.commit()
    return RunStarted(id=run.id, created=created)


@router.get("/runs")
def list_runs(
    caller: ReaderDep,
    session: TenantSessionDep,
    status: RunStatus | None = None,
    program: str | None = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> RunsPublic:
    """The runs the caller may see, newest first: their own (reviewers also every memory review;
    admins all)."""
    page = service.page_runs(
        session, caller=caller, status=status, program=program, cursor=cursor, limit=limit
    )
    return RunsPublic(
        data=[RunSummary.model_validate(run) for run in page.rows],
        count=page.count,
        next_cursor=page.next_cursor,
    )


@router.get("/runs/{run_id}")
def get_run(run_id: uuid.UUID, caller: ReaderDep, session: TenantSessionDep) -> RunPublic:
    """A run: status, state, steps, and what it waits for (signals, tasks, timers)."""
    return service.describe_run(session, run_id=run_id, caller=caller)


@router.get(
    "/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}},
)
async def stream_run_events(
    run_id: uuid.UUID,
    caller: ReaderDep,
    database: DatabaseDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[int, Query(ge=0, description="Resume after this event id.")] = 0,
) -> StreamingResponse:
    """The run's events as server-sent events, until the run ends; resumable with Last-Event-ID."""
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after
    with database.tenant_session(caller.tenant_id) as session:
        service.get_run(session, run_id=run_id, caller=caller)  # 404 before the stream starts
    return StreamingResponse(
        event_stream(database, caller.tenant_id, run_id, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def event_stream(
    database: Database, tenant_id: uuid.UUID, run_id: uuid.UUID, after: int
) -> AsyncIterator[str]:
    idle = 0.0
    while True:
        rows, finished = await asyncio.to_thread(_read_events, database, tenant_id, run_id, after)
        for event in rows:
            after = event["id"]
            yield f"id: {event['id']}\nevent: {event['type']}\ndata: {dumps(event)}\n\n"
        if rows:
            idle = 0.0
            continue
        if finished:
            yield f"event: end\ndata: {json.dumps({'run_id': str(run_id)})}\n\n"
            return
        idle += SSE_POLL_SECONDS
        if idle >= SSE_KEEPALIVE_SECONDS:
            idle = 0.0
            yield ": keep-alive\n\n"
        await asyncio.sleep(SSE_POLL_SECONDS)


def _read_events(
    database: Database, tenant_id: uuid.UUID, run_id: uuid.UUID, after: int
) -> tuple[list[dict[str, Any]], bool]:
    with database.tenant_session(tenant_id) as session:
        run = service.get_run(session, run_id=run_id)
        rows = events_after(session, run_id=run_id, after_id=after)
        events = [
            {"id": e.id, "type": e.type, "data": e.data, "created_at": e.created_at.isoformat()} for e in rows
        ]
        return events, run.status in TERMINAL


class SignalSend(BaseModel):
    payload: Any = None
    key: str | None = Field(default=None, max_length=300, description="Deduplicates retries.")


class SignalSent(BaseModel):
    delivered: bool = Field(description="False when a signal with this key arrived before.")


@router.post("/runs/{run_id}/signals/{name}", status_code=202)
def signal_run(
    run_id: uuid.UUID,
    name: str,
    body: SignalSend,
    caller: ContributorDep,
    session: TenantSessionDep,
    kicker: KickerDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> SignalSent:
    """Send a signal to a run of the caller's (an admin: any); the same key twice delivers it once.

    The runtime's own signals (a process's events, a task's decision) are refused here: they
    have routes of their own that check who may send them."""
    delivered = service.send_signal(
        session,
        run_id=run_id,
        name=name,
        payload=body.payload,
        key=body.key or idempotency_key,
        kicker=kicker,
        sender=caller,
    )
    session.commit()
    return SignalSent(delivered=delivered)


class ProcessEventSend(BaseModel):
    name: str
    data: dict[str, Any] = Field(default_factory=dict)
    key: str | None = Field(default=None, max_length=300)


@router.post("/runs/{run_id}/events", status_code=202)
def send_process_event(
    run_id: uuid.UUID,
    body: ProcessEventSend,
    caller: ContributorDep,
    session: TenantSessionDep,
    kicker: KickerDep,
) -> SignalSent:
    """Offer an event to a process instance: 403 if the transition needs another role, 409 with
    the reason if its guards refuse it. The event acts as the caller."""
    event = Event(name=body.name, data=body.data, actor=str(caller.principal_id))
    delivered = send_event(
        session, run_id=run_id, event=event, kicker=kicker, key=body.key, sender=caller, public=True
    )
    session.commit()
    return SignalSent(delivered=delivered)


class CancelRequest(BaseModel):
    reason: str | None = Field(default=None, max_length=1000)


@router.post("/runs/{run_id}/cancel", status_code=202)
def cancel_run(
    run_id: uuid.UUID,
    caller: ReaderDep,
    session: TenantSessionDep,
    kicker: KickerDep,
    body: CancelRequest | None = None,
) -> RunSummary:
    """Stop a run of the caller's (an admin: any) and its children at their next step boundary."""
    run = service.cancel_run(
        session, run_id=run_id, kicker=kicker, reason=body.reason if body else None, caller=caller
    )
    session.commit()
    return RunSummary.model_validate(run)


class RetryRequest(BaseModel):
    deadline_seconds: float | None = Field(
        default=None,
        gt=0,
        le=366 * 86400,
        description="A new wall-clock deadline from now (none by default).",
    )


@router.post("/runs/{run_id}/retry", status_code=202)
def retry_run(
    run_id: uuid.UUID,
    caller: ReaderDep,
    session: TenantSessionDep,
    kicker: KickerDep,
    body: RetryRequest | None = None,
) -> RunSummary:
    """Resume a failed, cancelled or blocked run of the caller's (an admin: any) from its failed
    step, keeping every step it recorded: nothing it paid for is paid again. 409 otherwise."""
    run = service.retry_run(
        session,
        run_id=run_id,
        kicker=kicker,
        caller=caller,
        deadline_seconds=body.deadline_seconds if body else None,
    )
    session.commit()
    return RunSummary.model_validate(run)


@router.get("/tasks", tags=["tasks"])
def list_tasks(
    caller: ReaderDep,
    session: TenantSessionDep,
    status: Annotated[str | None, Query(pattern="^(open|decided|cancelled|closed)$")] = "open",
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> TasksPublic:
    """Human tasks the caller may decide, oldest first: assigned to them, or to their role
    (admins: all)."""
    page = tasks.page_tasks(session, caller=caller, status=status, cursor=cursor, limit=limit)
    return TasksPublic(
        data=[TaskPublic.model_validate(task) for task in page.rows],
        count=page.count,
        next_cursor=page.next_cursor,
    )


class TaskDecision(BaseModel):
    decision: str = Field(min_length=1, max_length=100)
    comment: str | None = Field(default=None, max_length=5000)
    data: dict[str, Any] | None = None


@router.post("/tasks/{task_id}/decision", tags=["tasks"])
def decide_task(
    task_id: uuid.UUID,
    body: TaskDecision,
    caller: ReaderDep,
    session: TenantSessionDep,
    kicker: KickerDep,
) -> TaskPublic:
    """Decide a human task (the task's role or a stronger one); the waiting run resumes."""
    task = tasks.decide_task(
        session,
        task_id=task_id,
        caller=caller,
        decision=body.decision,
        comment=body.comment,
        data=body.data,
        kicker=kicker,
    )
    session.commit()
    return TaskPublic.model_validate(task)
