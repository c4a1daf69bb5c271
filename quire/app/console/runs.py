"""The run inspector: recent runs of the tenant, and one run's timeline, for debugging and audit.

Every role may look, readers included (the API lets them read runs too). Everything is read in a
tenant session, so a run of another tenant is simply not found.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from quire.agent.loop import PROGRAM as AGENT_PROGRAM
from quire.agent.service import AgentRunPublic, describe_agent_run
from quire.app.console.charts import dollars
from quire.app.console.deps import ConsoleSessionDep
from quire.app.console.entries import pretty, seconds, tokens
from quire.app.console.history import actor_names
from quire.app.console.memory import as_page
from quire.app.console.pages import render
from quire.app.console.timeline import actors_of, build_timeline
from quire.app.console.waits import describe_wait
from quire.core.deps import DatabaseDep
from quire.core.models import Role
from quire.memory.lifecycle import MEMORY_REVIEW
from quire.runtime.events import events_after
from quire.runtime.models import HumanTask, Run, RunEvent, RunStatus
from quire.runtime.programs import Registry
from quire.runtime.service import describe_run, list_runs, programs_of
from quire.runtime.tasks import open_tasks_of_runs, tasks_of_run

router = APIRouter(prefix="/console", include_in_schema=False)

RUNS = "/console/runs"
PAGE_SIZE = 50
MAX_EVENTS = 20_000  # of one run's log shown; a streamed answer writes one event per delta


@dataclass(frozen=True)
class RunFilters:
    program: str = ""
    status: str = ""
    offset: int = 0
    everything: bool = False  # background and review runs too

    @classmethod
    def parse(cls, params: Any) -> RunFilters:
        status = params.get("status", "")
        try:
            offset = max(0, int(params.get("offset", 0)))
        except ValueError:
            offset = 0
        return cls(
            program=str(params.get("program", ""))[:200],
            status=status if status in {s.value for s in RunStatus} else "",
            offset=offset,
            everything=params.get("all", "") == "1",
        )

    def query_string(self, **changes: Any) -> str:
        values = {
            "program": self.program,
            "status": self.status,
            "all": "1" if self.everything else "",
            "offset": self.offset,
            **changes,
        }
        return urlencode({k: v for k, v in values.items() if v not in ("", 0, False)})


def hidden_programs(programs: Registry) -> list[str]:
    """Programs whose runs the list leaves out unless asked: work Quire does for itself in the
    background (memory drawn from new documents), and memory reviews (one per proposal, each
    waiting for a reviewer; the review queue is where they are decided)."""
    names = [name for name in programs.names() if programs.is_background(name)]
    return sorted({*names, MEMORY_REVIEW.program_name})


@dataclass(frozen=True)
class RunRow:
    run: Run
    duration: str
    cost: str  # agent runs only
    summary: str  # the question of an agent run, else what it waits for or why it failed


def now() -> datetime:
    return datetime.now(UTC)


def duration_of(run: Run | AgentRunPublic | Any, at: datetime | None = None) -> str:
    """How long the run took, or has taken so far."""
    end = run.finished_at or at or now()
    return seconds((end - run.created_at).total_seconds())


def _spend(state: dict[str, Any] | None) -> dict[str, Any]:
    spend = (state or {}).get("spend")
    return spend if isinstance(spend, dict) else {}


def row_of(run: Run, at: datetime, open_tasks: Sequence[HumanTask] = ()) -> RunRow:
    cost, summary = "", ""
    if run.program == AGENT_PROGRAM:
        state = run.state or run.input
        cost = dollars(float(_spend(state).get("cost_usd") or 0))
        summary = str(state.get("question") or "")
    if run.status == RunStatus.failed and run.error:
        summary = f"{summary} — {run.error}" if summary else run.error
    elif not summary:
        summary = describe_wait(run, open_tasks, now=at) or ""
    return RunRow(run=run, duration=duration_of(run, at), cost=cost, summary=summary)


@router.get("/runs")
def runs_page(request: Request, console: ConsoleSessionDep, database: DatabaseDep) -> HTMLResponse:
    filters = RunFilters.parse(request.query_params)
    # A program asked for by name is shown whatever it is.
    hidden = (
        [] if filters.everything or filters.program else hidden_programs(request.app.state.services.programs)
    )
    with database.tenant_session(console.caller.tenant_id) as session:
        runs, count = list_runs(
            session,
            caller=console.caller,
            status=RunStatus(filters.status) if filters.status else None,
            program=filters.program or None,
            limit=PAGE_SIZE,
            offset=filters.offset,
            exclude_programs=hidden,
        )
        tasks = open_tasks_of_runs(session, [run.id for run in runs])
        at = now()
        return render(
            request,
            "runs.html",
            session=console,
            rows=[row_of(run, at, tasks.get(run.id, ())) for run in runs],
            count=count,
            filters=filters,
            hidden=hidden,
            programs=programs_of(session, caller=console.caller),
            statuses=[s.value for s in RunStatus],
            page_size=len(runs),
            step=PAGE_SIZE,
        )


def all_events(session: Session, run_id: uuid.UUID) -> tuple[list[RunEvent], bool]:
    """The run's events in order (up to MAX_EVENTS), and whether there were more."""
    events: list[RunEvent] = []
    after = 0
    while len(events) < MAX_EVENTS:
        page = events_after(session, run_id=run_id, after_id=after, limit=1000)
        if not page:
            return events, False
        events.extend(page)
        after = page[-1].id or after
    return events[:MAX_EVENTS], True


@dataclass(frozen=True)
class AgentSummary:
    run: AgentRunPublic
    facts: list[tuple[str, str]]


def agent_summary(session: Session, run_id: uuid.UUID) -> AgentSummary:
    agent = describe_agent_run(session, run_id=run_id)
    usage = agent.usage
    facts = [
        ("model calls", str(agent.model_calls)),
        ("tokens in", tokens(usage.input_tokens)),
        ("cached", tokens(usage.cached_input_tokens)),
        ("out", tokens(usage.output_tokens)),
        ("total tokens", tokens(usage.input_tokens + usage.output_tokens)),
        ("cost", dollars(agent.cost_usd)),
    ]
    if agent.targets:
        facts.append(("targets", ", ".join(agent.targets)))
    return AgentSummary(run=agent, facts=facts)


@router.get("/runs/{run_id}")
def run_page(
    run_id: uuid.UUID, request: Request, console: ConsoleSessionDep, database: DatabaseDep
) -> HTMLResponse:
    with database.tenant_session(console.caller.tenant_id) as session, as_page():
        run = describe_run(session, run_id=run_id, caller=console.caller)
        agent = agent_summary(session, run_id) if run.program == AGENT_PROGRAM else None
        events, truncated = all_events(session, run_id)
        tasks = tasks_of_run(session, run_id=run_id)
        names = actor_names(session, actors_of(events, tasks))
        entries = build_timeline(run, events, tasks, names)
        counts: dict[str, int] = {}
        for entry in entries:
            counts[entry.kind] = counts.get(entry.kind, 0) + 1
        return render(
            request,
            "run.html",
            session=console,
            run=run,
            agent=agent,
            entries=entries,
            counts=counts,
            truncated=truncated,
            event_count=len(events),
            duration=duration_of(run),
            open_tasks=[t for t in tasks if t.status == "open"],
            can_review=console.caller.allows(Role.reviewer),
            raw_input=pretty(run.input),
            raw_state=pretty(run.state) if run.state is not None else "",
            wait=describe_wait(run, run.open_tasks, now=now()),
            waiting=pretty(run.waiting_for) if run.waiting_for else "",
            api_path=f"/v1/runs/{run_id}",
        )
