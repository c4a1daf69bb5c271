"""`quire runs …`: list, inspect, signal, cancel and retry a tenant's durable runs, through the API
or on the local database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer

from quire.app.cli_common import (
    JsonOption,
    TenantOption,
    api_client,
    fail,
    friendly,
    out,
    print_json,
    settings_for,
)
from quire.core.settings import Settings

if TYPE_CHECKING:
    from quire.client import Quire

runs_app = typer.Typer(help="Durable runs: list, inspect, signal, cancel, retry.", no_args_is_help=True)

RunIdArgument = Annotated[str, typer.Argument(metavar="RUN_ID", help="The run's id.")]


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


class Runs(Protocol):
    """A tenant's runs, as the API shows them (`/v1/runs`): plain JSON values."""

    def list(
        self, *, status: str | None, program: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], int]: ...

    def show(self, run_id: str) -> dict[str, Any]: ...

    def cancel(self, run_id: str, *, reason: str | None) -> None: ...

    def retry(self, run_id: str, *, deadline: float | None) -> dict[str, Any]: ...

    def signal(self, run_id: str, name: str, *, payload: Any, dedup_key: str | None) -> bool: ...


class ApiRuns:
    def __init__(self, client: Quire) -> None:
        self.client = client

    def list(
        self, *, status: str | None, program: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        pages = self.client.runs(status=status, program=program, limit=min(limit, 500))
        rows = [run.model_dump(mode="json") for run in pages.first(limit)]
        return rows, pages.count if pages.count is not None else len(rows)

    def show(self, run_id: str) -> dict[str, Any]:
        return self.client.run(run_id).model_dump(mode="json")

    def cancel(self, run_id: str, *, reason: str | None) -> None:
        self.client.cancel_run(run_id, reason=reason)

    def retry(self, run_id: str, *, deadline: float | None) -> dict[str, Any]:
        return self.client.retry_run(run_id, deadline_seconds=deadline).model_dump(mode="json")

    def signal(self, run_id: str, name: str, *, payload: Any, dedup_key: str | None) -> bool:
        return self.client.signal_run(run_id, name, payload=payload, dedup_key=dedup_key)


class LocalRuns:
    def __init__(self, tenant: str) -> None:
        self.tenant = tenant

    @contextmanager
    def _context(self) -> Iterator[tuple[Any, Any]]:
        with tenant_context(settings_for("runs"), self.tenant) as made:
            yield made

    def list(
        self, *, status: str | None, program: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        from quire.runtime.models import RunStatus, RunSummary
        from quire.runtime.service import list_runs

        with self._context() as (session, _):
            runs, count = list_runs(
                session, status=RunStatus(status) if status else None, program=program, limit=limit
            )
            return [RunSummary.model_validate(run).model_dump(mode="json") for run in runs], count

    def show(self, run_id: str) -> dict[str, Any]:
        from quire.runtime.service import describe_run

        with self._context() as (session, _):
            return describe_run(session, run_id=_uuid(run_id)).model_dump(mode="json")

    def cancel(self, run_id: str, *, reason: str | None) -> None:
        from quire.runtime.service import cancel_run

        with self._context() as (session, kicker):
            cancel_run(session, run_id=_uuid(run_id), kicker=kicker, reason=reason)
            session.commit()

    def retry(self, run_id: str, *, deadline: float | None) -> dict[str, Any]:
        from quire.runtime.models import RunSummary
        from quire.runtime.service import retry_run

        with self._context() as (session, kicker):
            run = retry_run(session, run_id=_uuid(run_id), kicker=kicker, deadline_seconds=deadline)
            session.commit()
            return RunSummary.model_validate(run).model_dump(mode="json")

    def signal(self, run_id: str, name: str, *, payload: Any, dedup_key: str | None) -> bool:
        from quire.runtime.service import send_signal

        with self._context() as (session, kicker):
            delivered = send_signal(
                session, run_id=_uuid(run_id), name=name, payload=payload, key=dedup_key, kicker=kicker
            )
            session.commit()
        return delivered


def _uuid(run_id: str) -> Any:
    import uuid

    from quire.core.errors import InvalidRequest

    try:
        return uuid.UUID(run_id)
    except ValueError:
        raise InvalidRequest(f"{run_id!r} is not a run id") from None


def runs_backend(tenant: str) -> Runs:
    client = api_client()
    return ApiRuns(client) if client else LocalRuns(tenant)


@runs_app.command("list")
@friendly
def runs_list(
    status: Annotated[
        str | None,
        typer.Option("--status", "-s", metavar="STATUS", help="queued, running, waiting, … or completed."),
    ] = None,
    program: Annotated[
        str | None, typer.Option("--program", "-p", metavar="NAME", help="Only runs of this program.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", help="How many, newest first.")] = 20,
    as_json: JsonOption = False,
    tenant: TenantOption = "default",
) -> None:
    """List runs, newest first."""
    from rich.table import Table

    runs, count = runs_backend(tenant).list(status=status, program=program, limit=limit)
    if as_json:
        print_json({"data": runs, "count": count})
        return
    table = Table("id", "program", "status", "created", "code", "error", title=f"{len(runs)} of {count} runs")
    for run in runs:
        table.add_row(
            run["id"],
            f"{run['program']} v{run['program_version']}",
            run["status"],
            _when(run["created_at"]),
            run.get("error_code") or "",
            (run.get("error") or "")[:60],
        )
    out.print(table)


@runs_app.command("show")
@friendly
def runs_show(run_id: RunIdArgument, as_json: JsonOption = False, tenant: TenantOption = "default") -> None:
    """A run's status, state, steps and what it waits for."""
    run = runs_backend(tenant).show(run_id)
    if as_json:
        print_json(run)
        return
    out.print(f"[bold]{run['program']}[/] v{run['program_version']}  {run['id']}  [bold]{run['status']}[/]")
    if run.get("error"):
        code = f"{run['error_code']}: " if run.get("error_code") else ""
        out.print(f"[red]{code}{run['error']}[/]", highlight=False)
    if run["status"] in ("failed", "cancelled", "blocked"):
        out.print(f"resume it from where it stopped: quire runs retry {run['id']}")
    if run.get("waiting_for"):
        out.print(f"waiting for: {json.dumps(run['waiting_for'])}", highlight=False)
    for task in run.get("open_tasks") or []:
        out.print(f"open task {task['id']}: {task['title']} (role {task['role']})", highlight=False)
    for step in run.get("steps") or []:
        took = (
            datetime.fromisoformat(step["finished_at"]) - datetime.fromisoformat(step["started_at"])
        ).total_seconds()
        out.print(
            f"  {step['seq']:>4} {step['kind']:<6} {step['name']:<40} {step['status']:<9} "
            f"{took * 1000:8.1f} ms",
            highlight=False,
        )
    state = run.get("state")
    out.print_json(json.dumps(state if state is not None else run.get("input")))


@runs_app.command("cancel")
@friendly
def runs_cancel(
    run_id: RunIdArgument,
    reason: Annotated[str | None, typer.Option(metavar="TEXT", help="Why; kept in the run's events.")] = None,
    tenant: TenantOption = "default",
) -> None:
    """Cancel a run and its children."""
    runs_backend(tenant).cancel(run_id, reason=reason)
    out.print(f"Cancelling {run_id}; it stops at its next step boundary.")


@runs_app.command("retry")
@friendly
def runs_retry(
    run_id: RunIdArgument,
    deadline: Annotated[
        float | None, typer.Option(metavar="SECONDS", help="A new wall-clock deadline, in seconds from now.")
    ] = None,
    tenant: TenantOption = "default",
) -> None:
    """Resume a failed, cancelled or blocked run from its failed step; recorded steps are kept."""
    run = runs_backend(tenant).retry(run_id, deadline=deadline)
    out.print(f"Retrying {run['id']}: queued; the steps it recorded are kept, the failed one runs again.")


@runs_app.command("signal")
@friendly
def runs_signal(
    run_id: RunIdArgument,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The signal's name.")],
    payload: Annotated[str, typer.Option(metavar="JSON", help="JSON payload.")] = "null",
    dedup_key: Annotated[
        str | None,
        typer.Option(metavar="KEY", help="Deduplication key: a second signal with it is not delivered."),
    ] = None,
    tenant: TenantOption = "default",
) -> None:
    """Send a signal to a run."""
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as error:
        fail(f"--payload is not JSON: {error}")
    delivered = runs_backend(tenant).signal(run_id, name, payload=data, dedup_key=dedup_key)
    out.print("Delivered." if delivered else "Already delivered (same key); nothing sent.")


def _when(value: str) -> str:
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")
