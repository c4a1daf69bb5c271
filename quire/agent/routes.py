"""HTTP API of the agent: start a run for a question, read it, stream it, or ask and wait."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from quire.agent import service, usage
from quire.agent.environment import AgentDep, AgentEnvironment
from quire.agent.service import AgentRunCreate, AgentRunPublic, AgentRunsPublic, AgentRunStarted
from quire.core.deps import AdminDep, DatabaseDep, ReaderDep, TenantSessionDep
from quire.core.errors import InvalidRequest
from quire.core.pages import DEFAULT_LIMIT, CursorQuery, LimitQuery
from quire.runtime.models import Run, RunStatus
from quire.runtime.routes import KickerDep, event_stream

router = APIRouter(prefix="/v1/agent", tags=["agent"])


@router.post("/runs", status_code=202)
def start_agent_run(
    body: AgentRunCreate, caller: ReaderDep, session: TenantSessionDep, kicker: KickerDep, agent: AgentDep
) -> AgentRunStarted:
    """Start a durable agent run for a question; follow it at /v1/agent/runs/{id}/events.

    With an idempotency key, the same request again returns the same run (`created: false`)."""
    run_id, created = service.start_agent_run(
        session, caller=caller, request=body, kicker=kicker, agent=agent
    )
    session.commit()
    run = session.get(Run, run_id)
    assert run is not None  # just started, or found by its idempotency key
    return AgentRunStarted.of(run, created=created)


@router.get("/runs")
def list_agent_runs(
    caller: ReaderDep,
    session: TenantSessionDep,
    status: RunStatus | None = None,
    since: Annotated[datetime | None, Query(description="Runs created at or after this time.")] = None,
    until: Annotated[datetime | None, Query(description="Runs created before this time.")] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> AgentRunsPublic:
    """The caller's agent runs (an administrator's: every one of the tenant), newest first."""
    return service.list_agent_runs(
        session, caller=caller, status=status, since=since, until=until, cursor=cursor, limit=limit
    )


@router.get("/runs/{run_id}")
def get_agent_run(run_id: uuid.UUID, caller: ReaderDep, session: TenantSessionDep) -> AgentRunPublic:
    """Status, answer, citations, usage, cost and steps of an agent run of the caller's (admins: any)."""
    return service.describe_agent_run(session, run_id=run_id, caller=caller)


@router.get(
    "/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}},
)
async def stream_agent_run_events(
    run_id: uuid.UUID,
    caller: ReaderDep,
    database: DatabaseDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[int, Query(ge=0)] = 0,
) -> StreamingResponse:
    """Tokens (when streaming), tool calls, tool results, waits and the answer, as server-sent events."""
    with database.tenant_session(caller.tenant_id) as session:
        service.describe_agent_run(session, run_id=run_id, caller=caller)
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after
    return StreamingResponse(
        event_stream(database, caller.tenant_id, run_id, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class AskRequest(AgentRunCreate):
    timeout_seconds: float = 30.0


class AskAnswer(AgentRunPublic):
    created: bool = Field(description="False when an earlier request with this idempotency key started it.")


@router.post(
    "/ask",
    response_model=AskAnswer,
    responses={202: {"model": AskAnswer, "description": "Not finished in time: the run keeps going"}},
)
async def ask_agent(
    body: AskRequest,
    caller: ReaderDep,
    database: DatabaseDep,
    session: TenantSessionDep,
    kicker: KickerDep,
    agent: AgentDep,
) -> JSONResponse:
    """Start a run and wait up to `timeout_seconds` for its answer; 202 with the run if it is not done."""
    run_id, created = service.start_agent_run(
        session, caller=caller, request=body, kicker=kicker, agent=agent
    )
    session.commit()
    described = await asyncio.to_thread(
        service.wait_for_answer,
        database,
        caller=caller,
        run_id=run_id,
        timeout=min(max(body.timeout_seconds, 0.0), 300.0),
    )
    finished = described.status in ("completed", "failed", "cancelled")
    answer = AskAnswer(**described.model_dump(), created=created)
    return JSONResponse(answer.model_dump(mode="json"), status_code=200 if finished else 202)


usage_router = APIRouter(prefix="/v1/usage", tags=["usage"])


class TenantBudget(BaseModel):
    daily_usd: float | None = Field(
        default=None,
        ge=0,
        lt=10**12,  # what its column, numeric(18, 6), holds
        description="Spend per day after which model calls stop; null for the installation's default "
        "(QUIRE_TENANT_DAILY_BUDGET_USD).",
    )


class TenantBudgetStatus(TenantBudget):
    default: bool = Field(
        description="Whether daily_usd is the installation's default, the tenant having set none."
    )
    spent_today_usd: float
    stopped: str | None = Field(description="Why new model calls are refused today, or null.")


class UsageReport(BaseModel):
    since: date
    until: date
    days: list[usage.UsageDay]
    total_cost_usd: float
    budget: TenantBudgetStatus


def _budget_status(session: TenantSessionDep, agent: AgentEnvironment) -> TenantBudgetStatus:
    own = usage.tenant_budget(session)
    default = agent.budgets.default_daily_usd
    return TenantBudgetStatus(
        daily_usd=own if own is not None else default,
        default=own is None and default is not None,
        spent_today_usd=usage.spent_today(session),
        stopped=usage.tenant_budget_reason(session, default_usd=default),
    )


@usage_router.get("")
def get_usage(
    caller: AdminDep,
    session: TenantSessionDep,
    agent: AgentDep,
    since: Annotated[date | None, Query(description="First day (default: 30 days ago)")] = None,
    until: Annotated[date | None, Query(description="Last day (default: today)")] = None,
) -> UsageReport:
    """Model calls, tokens and spend of this tenant per day, target and model, with its budget."""
    until = until or date.today()
    since = since or until - timedelta(days=30)
    if since > until:
        raise InvalidRequest(f"since ({since}) is after until ({until})")
    days = usage.usage_report(session, since=since, until=until)
    return UsageReport(
        since=since,
        until=until,
        days=days,
        total_cost_usd=round(sum(row.cost_usd for row in days), 6),
        budget=_budget_status(session, agent),
    )


@usage_router.put("/budget")
def set_tenant_budget(
    body: TenantBudget, caller: AdminDep, session: TenantSessionDep, agent: AgentDep
) -> TenantBudgetStatus:
    """Set the tenant's daily model budget (null: the installation's default) for the next model call."""
    usage.set_tenant_budget(session, tenant_id=caller.tenant_id, daily_usd=body.daily_usd)
    session.commit()
    return _budget_status(session, agent)
