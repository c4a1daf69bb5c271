"""The agent's public face: start a run for a question, look at it, list them, wait for its answer."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlmodel import Session

from quire.agent.citations import AnswerCitation
from quire.agent.costs import Budget
from quire.agent.environment import AgentEnvironment
from quire.agent.errors import UnknownRoute
from quire.agent.loop import PROGRAM
from quire.agent.messages import Usage
from quire.agent.state import AgentState
from quire.core.db import Database
from quire.core.pages import ListPage
from quire.core.tenancy import Caller
from quire.runtime.errors import RunNotFound
from quire.runtime.idempotency import request_hash
from quire.runtime.kicks import Kicker
from quire.runtime.models import TERMINAL, Run, RunStatus, StepPublic
from quire.runtime.service import create_run, describe_run, page_runs

EXCERPT_CHARS = 300


class AgentRunCreate(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    collections: list[str] = Field(default_factory=list)
    route: str | None = Field(
        default=None, description="A model route from QUIRE_MODELS (default: 'default')."
    )
    budget: Budget | None = None
    stream: bool = Field(default=False, description="Stream tokens as run events.")
    agent: str = Field(default="assistant", max_length=100, description="Whose agent-scoped memory to read.")
    idempotency_key: str | None = Field(
        default=None,
        max_length=300,
        description="The same key with the same request returns the first run (created: false); "
        "with another request it is a 409 idempotency_mismatch.",
    )
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


class AgentRunLinks(BaseModel):
    status: str = Field(description="GET: the run, with its answer and citations once it has ended.")
    events: str = Field(description="GET: its events as server-sent events, until it ends.")


class AgentRunStarted(BaseModel):
    id: uuid.UUID = Field(description="The run's id, as in every other answer about it.")
    status: str
    created: bool = Field(description="False when an earlier request with this idempotency key started it.")
    links: AgentRunLinks

    @classmethod
    def of(cls, run: Run, *, created: bool) -> AgentRunStarted:
        base = f"/v1/agent/runs/{run.id}"
        return cls(
            id=run.id,
            status=run.status.value,
            created=created,
            links=AgentRunLinks(status=base, events=f"{base}/events"),
        )


class AgentRunPublic(BaseModel):
    id: uuid.UUID
    status: str
    question: str
    answer: str | None
    citations: list[AnswerCitation] = Field(description="The sources the answer cites, by their [n].")
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
    agent: AgentEnvironment,
) -> tuple[uuid.UUID, bool]:
    """Start the caller's agent run, or find the one its idempotency key started; the run's id
    and whether it is new. Refused at once (422): a route the models do not know, a budget over
    the caller's role's maximum; 409: the key was used with another request."""
    routes = agent.models.routes
    if request.route is not None and request.route not in routes:
        raise UnknownRoute(
            f"no model route named {request.route!r}; known routes: {', '.join(sorted(routes))}"
        )
    state = AgentState(
        question=request.question,
        collections=request.collections,
        route=request.route,
        budget=agent.budgets.for_run(caller.role, request.budget or Budget()),
        agent=request.agent,
        principal_id=caller.principal_id,
        role=caller.role,
        stream=request.stream,
        ask_human_due_seconds=request.ask_human_due_seconds,
        if_unanswered=request.if_unanswered,
    )
    run, created = create_run(
        session,
        program=PROGRAM,
        state=state,
        kicker=kicker,
        idempotency_key=request.idempotency_key,
        owner=caller,
        deadline_seconds=request.deadline_seconds,
        request_hash=_request_hash(request, caller) if request.idempotency_key else None,
    )
    return run.id, created


def _request_hash(request: AgentRunCreate, caller: Caller) -> str:
    """What an idempotency key is bound to: the request as asked (limits left out stay left out,
    however the role's maximum changes) and who asked it."""
    fields = request.model_dump(mode="json", include=set(AgentRunCreate.model_fields) - {"idempotency_key"})
    fields["budget"] = request.budget.model_dump(mode="json", exclude_unset=True) if request.budget else {}
    return request_hash({"request": fields, "principal": caller.principal_id})


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


class AgentRunSummary(BaseModel):
    id: uuid.UUID
    status: str
    question: str
    answer_excerpt: str | None = Field(description=f"The answer's first {EXCERPT_CHARS} characters.")
    uncited: bool
    stop_reason: str | None
    error: str | None
    error_code: str | None = Field(
        description="Why it did not answer: budget_exceeded, provider_unavailable, …"
    )
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class AgentRunsPublic(ListPage):
    data: list[AgentRunSummary]


def summarise(run: Run) -> AgentRunSummary:
    state = AgentState.model_validate(run.state or run.input)
    answer = state.answer
    if answer is not None and len(answer) > EXCERPT_CHARS:
        answer = answer[:EXCERPT_CHARS] + "…"
    return AgentRunSummary(
        id=run.id,
        status=run.status.value,
        question=state.question,
        answer_excerpt=answer,
        uncited=state.uncited,
        stop_reason=state.stop_reason,
        error=run.error,
        error_code=run.error_code,
        created_at=run.created_at,
        updated_at=run.updated_at,
        finished_at=run.finished_at,
    )


def list_agent_runs(
    session: Session,
    *,
    caller: Caller,
    status: RunStatus | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> AgentRunsPublic:
    """The agent runs `caller` may see (their own; admins: all), newest first, a page at a time.
    A time without a zone is UTC."""
    since, until = (t.replace(tzinfo=UTC) if t and t.tzinfo is None else t for t in (since, until))
    page = page_runs(
        session,
        caller=caller,
        program=PROGRAM,
        status=status,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )
    return AgentRunsPublic(
        data=[summarise(run) for run in page.rows], count=page.count, next_cursor=page.next_cursor
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
