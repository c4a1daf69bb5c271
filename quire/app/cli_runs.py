"""`quire runs …`: list, inspect, signal and cancel a tenant's durable runs, on the local database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from quire.app.cli_common import fail, friendly, out, settings_for
from quire.core.settings import Settings

runs_app = typer.Typer(help="Durable runs: list, inspect, signal, cancel, retry.", no_args_is_help=True)


@contextmanager
def tenant_context(settings: Settings, tenant: str) -> Iterator[tuple[Any, Any]]:
    """A tenant session and a kicker, for commands that act on one tenant's runs."""
    from quire.app.services import load_programs
    from quire.core.broker import build_broker
    from quire.core.db import Database
    from quire.core.tenancy import get_tenant_by_name
    from quire.runtime.kicks import Kicker

    database = Database.from_settings(settings, pool_size=2)
    try:
        load_programs(settings)
        with database.system_session() as system:
            tenant_row = get_tenant_by_name(session=system, name=tenant)
        kicker = Kicker(build_broker(broker_url=settings.broker_url, database_url=database.url))
        with database.tenant_session(tenant_row.id) as session:
            yield session, kicker
    finally:
        database.dispose()


TenantOption = Annotated[str, typer.Option(help="Tenant name.")]


@runs_app.command("list")
@friendly
def runs_list(
    status: Annotated[str | None, typer.Option(help="queued, running, waiting, … or completed.")] = None,
    program: Annotated[str | None, typer.Option(help="Only runs of this program.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    tenant: TenantOption = "default",
) -> None:
    """List runs, newest first."""
    from rich.table import Table

    from quire.runtime.models import RunStatus
    from quire.runtime.service import list_runs

    settings = settings_for("runs")
    with tenant_context(settings, tenant) as (session, _):
        runs, count = list_runs(
            session, status=RunStatus(status) if status else None, program=program, limit=limit
        )
    table = Table("id", "program", "status", "created", "code", "error", title=f"{len(runs)} of {count} runs")
    for run in runs:
        table.add_row(
            str(run.id),
            f"{run.program} v{run.program_version}",
            run.status,
            run.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            run.error_code or "",
            (run.error or "")[:60],
        )
    out.print(table)


@runs_app.command("show")
@friendly
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    tenant: TenantOption = "default",
) -> None:
    """A run's status, state, steps and what it waits for."""
    import json
    import uuid

    from quire.runtime.service import describe_run

    settings = settings_for("runs")
    with tenant_context(settings, tenant) as (session, _):
        run = describe_run(session, run_id=uuid.UUID(run_id))
    out.print(f"[bold]{run.program}[/] v{run.program_version}  {run.id}  [bold]{run.status}[/]")
    if run.error:
        code = f"{run.error_code}: " if run.error_code else ""
        out.print(f"[red]{code}{run.error}[/]")
    if run.status in ("failed", "cancelled", "blocked"):
        out.print(f"resume it from where it stopped: quire runs retry {run.id}")
    if run.waiting_for:
        out.print(f"waiting for: {json.dumps(run.waiting_for)}")
    for task in run.open_tasks:
        out.print(f"open task {task.id}: {task.title} (role {task.role})")
    for step in run.steps:
        took = (step.finished_at - step.started_at).total_seconds() * 1000
        out.print(f"  {step.seq:>4} {step.kind:<6} {step.name:<40} {step.status:<9} {took:8.1f} ms")
    out.print_json(json.dumps(run.state if run.state is not None else run.input))


@runs_app.command("cancel")
@friendly
def runs_cancel(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    reason: Annotated[str | None, typer.Option(help="Why; kept in the run's events.")] = None,
    tenant: TenantOption = "default",
) -> None:
    """Cancel a run and its children."""
    import uuid

    from quire.runtime.service import cancel_run

    settings = settings_for("runs")
    with tenant_context(settings, tenant) as (session, kicker):
        cancel_run(session, run_id=uuid.UUID(run_id), kicker=kicker, reason=reason)
        session.commit()
    out.print(f"Cancelling {run_id}; it stops at its next step boundary.")


@runs_app.command("retry")
@friendly
def runs_retry(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    deadline: Annotated[
        float | None, typer.Option(help="A new wall-clock deadline, in seconds from now.")
    ] = None,
    tenant: TenantOption = "default",
) -> None:
    """Resume a failed, cancelled or blocked run from its failed step; recorded steps are kept."""
    import uuid

    from quire.runtime.service import retry_run

    settings = settings_for("runs")
    with tenant_context(settings, tenant) as (session, kicker):
        run = retry_run(session, run_id=uuid.UUID(run_id), kicker=kicker, deadline_seconds=deadline)
        session.commit()
    out.print(f"Retrying {run.id}: queued; the steps it recorded are kept, the failed one runs again.")


@runs_app.command("signal")
@friendly
def runs_signal(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    name: Annotated[str, typer.Argument(help="The signal's name.")],
    payload: Annotated[str, typer.Option(help="JSON payload.")] = "null",
    key: Annotated[str | None, typer.Option(help="Deduplication key.")] = None,
    tenant: TenantOption = "default",
) -> None:
    """Send a signal to a run."""
    import json
    import uuid

    from quire.runtime.service import send_signal

    try:
        data = json.loads(payload)
    except json.JSONDecodeError as error:
        fail(f"--payload is not JSON: {error}")
    settings = settings_for("runs")
    with tenant_context(settings, tenant) as (session, kicker):
        delivered = send_signal(
            session, run_id=uuid.UUID(run_id), name=name, payload=data, key=key, kicker=kicker
        )
        session.commit()
    out.print("Delivered." if delivered else "Already delivered (same key); nothing sent.")
