"""`quire ask`: start an agent run, show it as it goes, print the answer and its sources.

With a worker running, the workers answer and this command follows the run's events; without
one, it runs the loop in its own process (the same durable program, driven locally).
"""

from __future__ import annotations

import time
import uuid

from rich.console import Console

from quire.agent.events import AgentEventType
from quire.agent.service import AgentRunCreate, describe_agent_run, start_agent_run
from quire.app.programs import command_kicker
from quire.app.services import build_services
from quire.core.db import Database
from quire.core.models import Role
from quire.core.settings import Settings
from quire.core.tenancy import Caller, get_tenant_by_name
from quire.runtime.events import RunEventType, events_after
from quire.runtime.executor import Executor
from quire.runtime.local import LocalKicker, drive
from quire.runtime.models import TERMINAL
from quire.runtime.service import get_run
from quire.runtime.sweeper import Sweeper


def ask(
    settings: Settings,
    question: str,
    *,
    collections: list[str],
    route: str | None,
    tenant: str,
    console: Console,
) -> bool:
    """Answer `question`; returns whether an answer came."""
    database = Database.from_settings(settings, pool_size=4)
    services = build_services(settings, database)
    try:
        with database.system_session() as system:
            tenant_id = get_tenant_by_name(session=system, name=tenant).id
        kicker, local = command_kicker(settings, database)
        caller = Caller(principal_id=uuid.uuid4(), tenant_id=tenant_id, name="cli", role=Role.contributor)
        with database.tenant_session(tenant_id) as session:
            run_id, _ = start_agent_run(
                session,
                caller=caller,
                kicker=kicker,
                request=AgentRunCreate(question=question, collections=collections, route=route, stream=True),
                agent=services.agent,
            )
            session.commit()
        console.print(f"[dim]run {run_id}{' (in this process: no worker is running)' if local else ''}[/]")
        executor = (
            Executor(database, kicker, programs=services.programs, services=services) if local else None
        )
        sweeper = Sweeper(database, kicker, interval=0.2) if local else None
        after, streamed, mid_line = 0, False, False
        while True:
            if executor is not None and isinstance(kicker, LocalKicker):
                drive(executor, kicker, sweeper=sweeper, until=0.3)
            else:
                time.sleep(0.3)
            after, finished, shown, mid_line = _show_events(
                database, tenant_id, run_id, after, console, mid_line=mid_line
            )
            streamed = streamed or shown
            if finished:
                break
        with database.tenant_session(tenant_id) as session:
            run = describe_agent_run(session, run_id=run_id)
        if mid_line:
            console.print()  # end the streamed answer's line
        console.print()
        if not run.answer:
            console.print(f"[red]No answer: {run.stop_reason or run.error or run.status}[/]")
        elif not streamed:
            console.print(run.answer, highlight=False)
        if run.citations:
            console.print("\n[bold]Sources[/]")
            for citation in run.citations:
                console.print(f"  [{citation.n}] {citation.label()}", highlight=False)
        tokens = run.usage.input_tokens + run.usage.output_tokens
        console.print(f"[dim]{run.model_calls} model call(s), {tokens} tokens, ${run.cost_usd:.4f}[/]")
        return bool(run.answer)
    finally:
        services.content.close()
        database.dispose()


def _show_events(
    database: Database,
    tenant_id: uuid.UUID,
    run_id: uuid.UUID,
    after: int,
    console: Console,
    *,
    mid_line: bool = False,
) -> tuple[int, bool, bool, bool]:
    """Print the run's new events; return the last event's id, whether the run ended, whether
    tokens were streamed, and whether the cursor stands mid-line after them."""
    with database.tenant_session(tenant_id) as session:
        events = events_after(session, run_id=run_id, after_id=after, limit=10_000)
        status = get_run(session, run_id=run_id).status
    streamed = False
    for event in events:
        after, kind, data = event.id or after, event.type, event.data or {}
        if kind == AgentEventType.model_delta:
            console.print(data.get("text", ""), end="", highlight=False, soft_wrap=True)
            streamed = mid_line = True
            continue
        if mid_line:  # a step's events are written after the tokens its model call streamed
            console.print()
            mid_line = False
        if kind == AgentEventType.model_retry:  # a terminal cannot take the text back: say so
            console.print("[yellow](the text above is withdrawn: the model call is made again)[/]")
            continue
        if kind == AgentEventType.tool_call:
            console.print(f"[cyan]→ {data['name']}[/]({_args(data.get('arguments') or {})})", highlight=False)
        elif kind == AgentEventType.tool_result:
            detail = (
                f"error: {data['error']}"
                if data.get("error")
                else f"{len(data.get('sources') or [])} source(s)"
            )
            console.print(f"[cyan]← {data['name']}[/] {detail}", highlight=False)
        elif kind == AgentEventType.model_fallback:
            console.print(f"[yellow]model {data['target']}: {data['outcome']}[/]", highlight=False)
        elif kind == RunEventType.run_waiting:
            console.print(f"[yellow]waiting: {data}[/]", highlight=False)
        elif kind == RunEventType.task_created:
            console.print(f"[yellow]a person must answer: {data.get('title')} (quire runs show {run_id})[/]")
    return after, status in {s.value for s in TERMINAL}, streamed, mid_line


def _args(arguments: dict[str, object]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in arguments.items())[:200]
