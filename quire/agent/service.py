"""The agent's public face: start a run for a question, look at it, wait for its answer."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlmodel import Session

from quire.agent.budgets import BudgetPolicy
from quire.agent.citations import NumberedCitation
from quire.agent.costs import Budget
from quire.agent.loop import PROGRAM, AgentState
from quire.agent.messages import Usage
from quire.core.db import Database
from quire.core.tenancy import Caller
from quire.runtime.errors import RunNotFound
from quire.runtime.kicks import Kicker
from quire.runtime.models import TERMINAL, StepPublic
from quire.runtime.service import create_run, describe_run


class AgentRunCreate(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    collections: list[str] = Field(default_factory=list)
    route: str | None = Field(
        default=None, description="A model route from QUIRE_MODELS (default: 'default')."
    )
    budget: Budget | None = None
    stream: bool = Field(default=False, description="Stream tokens as run events.")
    agent: str = Field(default="assistant", max_length=100, description="Whose agent-scoped memory to read.")
    idempotency_key: str | None = Field(default=None, max_length=300)
    deadline_seconds: float | None = Field(
        default=None,
        gt=0,
        le=366 * 86400,
        description="Wall-clock seconds from now after which the run is stopped wherever it is, "
        "waiting or not (failed, deadline_exceeded). The budget's max_seconds counts working time only.",
    )
    ask_human_due_seconds: float | None = Field(
        default=None, gt=0, le=366 * 86400, description="How long ask_human waits for a person."
    )
    if_unanswered: Literal["give_up", "escalate"] = Field(
        default="give_up",
        description="When ask_human's due time passes: go on without an answer, or offer the question "
        "to reviewers and keep waiting.",
    )


class AgentRunPublic(BaseModel):
    id: uuid.UUID
    status: str
    question: str
    answer: str | None
    citations: list[NumberedCitation]
    unresolved_citations: list[int] = Field(
        description="Numbers the answer cites that name none of the sources it was given."
    )
    uncited: bool = Field(description="The answer cites no source (an answer without evidence).")
    usage: Usage
    cost_usd: float
    model_calls: int
    stop_reason: str | None
    error: str | None = Field(description="Why the run failed (or is blocked), or null.")
    error_code: str | None = Field(
        default=None, description="A stable code for it: budget_exceeded, provider_unavailable, …"
    )
    worked_seconds: float = Field(default=0.0, description="Working time; waits do not count.")
    deadline_at: datetime | None = None
    targets: list[str]
    waiting_for: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None
    steps: list[StepPublic]


def start_agent_run(
    session: Session,
    *,
    caller: Caller,
    request: AgentRunCreate,
    kicker: Kicker | None,
    budgets: BudgetPolicy,
) -> uuid.UUID:
    """Start the caller's agent run; its budget is held to the caller's role's maximum (422 over it)."""
    state = AgentState(
        question=request.question,
        collections=request.collections,
        route=request.route,
        budget=budgets.for_run(caller.role, request.budget or Budget()),
        agent=request.agent,
        principal_id=caller.principal_id,
        role=caller.role,
        stream=request.stream,
        ask_human_due_seconds=request.ask_human_due_seconds,
        if_unanswered=request.if_unanswered,
    )
    run, _ = create_run(
        session,
        program=PROGRAM,
        state=state,
        kicker=kicker,
        idempotency_key=request.idempotency_key,
        owner=caller,
        deadline_seconds=request.deadline_seconds,
    )
    return run.id


def describe_agent_run(
    session: Session, *, run_id: uuid.UUID, caller: Caller | None = None
) -> AgentRunPublic:
    """An agent run; with a `caller`, only one they may see (their own; admins: any)."""
    run = describe_run(session, run_id=run_id, caller=caller)
    if run.program != PROGRAM:
        raise RunNotFound(f"run {run_id} is not an agent run")
    state = AgentState.model_validate(run.state or run.input)
    return AgentRunPublic(
        id=run.id,
        status=run.status.value,
        question=state.question,
        answer=state.answer,
        citations=state.citations,
        unresolved_citations=state.unresolved_citations,
        uncited=state.uncited,
        usage=state.spend.usage,
        cost_usd=state.spend.cost_usd,
        model_calls=state.spend.model_calls,
        stop_reason=state.stop_reason,
        error=run.error,
        error_code=run.error_code,
        worked_seconds=run.worked_seconds,
        deadline_at=run.deadline_at,
        targets=state.targets,
        waiting_for=run.waiting_for,
        created_at=run.created_at,
        finished_at=run.finished_at,
        steps=run.steps,
    )


def wait_for_answer(
    database: Database, *, caller: Caller, run_id: uuid.UUID, timeout: float, poll: float = 0.25
) -> AgentRunPublic:
    """The run once it has ended, or as it is when `timeout` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        with database.tenant_session(caller.tenant_id) as session:
            described = describe_agent_run(session, run_id=run_id, caller=caller)
        if described.status in {s.value for s in TERMINAL} or time.monotonic() >= deadline:
            return described
        time.sleep(poll)
