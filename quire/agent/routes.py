"""HTTP API of the agent: start a run for a question, read it, stream it, or ask and wait."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse, StreamingResponse

from quire.agent import service
from quire.agent.service import AgentRunCreate, AgentRunPublic
from quire.core.deps import DatabaseDep, ReaderDep, TenantSessionDep
from quire.runtime.routes import KickerDep, event_stream

router = APIRouter(prefix="/v1/agent", tags=["agent"])


@router.post("/runs", status_code=202)
def start_run(
    body: AgentRunCreate, caller: ReaderDep, session: TenantSessionDep, kicker: KickerDep
) -> dict[str, str]:
    """Start a durable agent run for a question; follow it at /v1/agent/runs/{id}/events."""
    run_id = service.start_agent_run(session, caller=caller, request=body, kicker=kicker)
    session.commit()
    return {"run_id": str(run_id), "events": f"/v1/agent/runs/{run_id}/events"}


@router.get("/runs/{run_id}")
def get_run(run_id: uuid.UUID, caller: ReaderDep, session: TenantSessionDep) -> AgentRunPublic:
    """Status, answer, citations, usage, cost and steps of an agent run."""
    return service.describe_agent_run(session, run_id=run_id)


@router.get(
    "/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}},
)
async def run_events(
    run_id: uuid.UUID,
    caller: ReaderDep,
    database: DatabaseDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[int, Query(ge=0)] = 0,
) -> StreamingResponse:
    """Tokens (when streaming), tool calls, tool results, waits and the answer, as server-sent events."""
    with database.tenant_session(caller.tenant_id) as session:
        service.describe_agent_run(session, run_id=run_id)
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after
    return StreamingResponse(
        event_stream(database, caller.tenant_id, run_id, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class AskRequest(AgentRunCreate):
    timeout_seconds: float = 30.0


@router.post("/ask", responses={202: {"description": "Not finished in time: the run keeps going"}})
async def ask(
    body: AskRequest, caller: ReaderDep, database: DatabaseDep, session: TenantSessionDep, kicker: KickerDep
) -> JSONResponse:
    """Start a run and wait up to `timeout_seconds` for its answer; 202 with the run if it is not done."""
    run_id = service.start_agent_run(session, caller=caller, request=body, kicker=kicker)
    session.commit()
    described = await asyncio.to_thread(
        service.wait_for_answer,
        database,
        tenant_id=caller.tenant_id,
        run_id=run_id,
        timeout=min(max(body.timeout_seconds, 0.0), 300.0),
    )
    finished = described.status in ("completed", "failed", "cancelled")
    return JSONResponse(described.model_dump(mode="json"), status_code=200 if finished else 202)
