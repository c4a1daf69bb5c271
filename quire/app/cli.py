"""The `quire` command."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from quire.app.mcp_cli import register_mcp_commands
from quire.core.errors import QuireError
from quire.core.models import Role
from quire.core.settings import Settings, load_settings

app = typer.Typer(
    name="quire",
    help="Quire: the content and memory layer for production AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="API keys of a tenant.", no_args_is_help=True)
db_app = typer.Typer(help="The embedded PostgreSQL server.", no_args_is_help=True)
runs_app = typer.Typer(help="Durable runs: list, inspect, signal, cancel.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(runs_app, name="runs")

out = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def friendly(command: F) -> F:
    """Turn Quire's errors into one readable line and a non-zero exit code."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except QuireError as error:
            fail(str(error))
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


INTERACTIVE = {"ingest", "ask", "search", "runs", "keys", "db", "migrate", "tenant", "tools", "demo"}


def settings_for(command: str) -> Settings:
    from quire.app.logs import configure_logging

    settings = load_settings()
    if command in INTERACTIVE and settings.log_level == "INFO":
        # Commands a person watches show their own progress; INFO lines would interleave with it.
        settings = settings.model_copy(update={"log_level": "WARNING"})
    configure_logging(settings, process_name=f"quire-{command}")
    return settings


@app.command()
@friendly
def up(
    workers: Annotated[int | None, typer.Option(help="Worker processes (QUIRE_WORKER_PROCESSES).")] = None,
) -> None:
    """Run all of Quire on this machine: database, migrations, API and workers. Ctrl-C stops it."""
    from quire.app.bootstrap import first_admin_key, prepare
    from quire.core.embedded import EmbeddedPostgres

    settings = settings_for("up")
    started = time.monotonic()
    with out.status("Starting the database and applying migrations…"):
        installation = prepare(settings)
    key = first_admin_key(settings)
    if key:
        out.print("\n[bold]First start:[/] made the tenant [bold]default[/] and its admin. Its API key:")
        out.print(f"  [bold green]{key}[/]", highlight=False)
        out.print("  Keep it: Quire stores only its hash and will not show it again.\n")

    worker_count = workers or settings.worker_processes
    children = {
        "api": [sys.executable, "-m", "quire.app.cli", "api"],
        "worker": [
            sys.executable,
            "-m",
            "quire.app.cli",
            "worker",
            "--processes",
            str(worker_count),
        ],
    }
    processes = {name: subprocess.Popen(command) for name, command in children.items()}
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    if _wait_until_ready(settings, processes, timeout=60):
        out.print(
            f"[bold green]Quire is up[/] in {time.monotonic() - started:.1f} s: "
            f"API http://{settings.api_bind} (docs at /docs), {worker_count} worker process(es).\n"
            f"  database: {installation.database_label}\n  broker:   {installation.broker_label}\n"
            "  Ctrl-C stops everything.",
            highlight=False,
        )
    try:
        while not stopping:
            for name, process in list(processes.items()):
                if process.poll() is not None and not stopping:
                    err.print(f"[yellow]{name} exited with {process.returncode}; restarting it[/]")
                    time.sleep(1)
                    processes[name] = subprocess.Popen(children[name])
            time.sleep(0.2)
    finally:
        out.print("Stopping Quire…")
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        if installation.started_embedded:
            EmbeddedPostgres(settings.data_dir).stop()
        out.print("Stopped.")


def _wait_until_ready(
    settings: Settings, processes: dict[str, subprocess.Popen[bytes]], *, timeout: float
) -> bool:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes.values()):
            return False
        try:
            if httpx.get(f"http://{settings.api_bind}/readyz", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


@app.command()
@friendly
def api() -> None:
    """Run the HTTP API (on QUIRE_API_BIND)."""
    import uvicorn

    from quire.agent.mcp.access import mcp_access
    from quire.agent.mcp.credentials import check_credentials_key
    from quire.app.api import create_app
    from quire.core.db import Database, check_database

    settings = settings_for("api")
    database = Database.from_settings(settings)
    check_database(database.url)
    database.check_login()
    check_credentials_key(database, mcp_access(settings).credentials)  # a wrong QUIRE_SECRET_KEY stops it
    uvicorn.run(
        create_app(settings=settings, database=database, warm_up=True),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
    database.dispose()


@app.command()
@friendly
def worker(
    processes: Annotated[int | None, typer.Option(help="Worker processes (QUIRE_WORKER_PROCESSES).")] = None,
) -> None:
    """Run worker processes, restarting any that dies."""
    from quire.app.worker import supervise_workers
    from quire.core.broker import check_broker
    from quire.core.db import check_database, resolve_database_url

    settings = settings_for("worker")
    url = resolve_database_url(settings)
    check_database(url)
    check_broker(broker_url=settings.broker_url, database_url=url)
    raise typer.Exit(supervise_workers(settings, processes))


@app.command()
@friendly
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Bring the database schema up to date."""
    from quire.app.bootstrap import migrate as run_migrations
    from quire.app.bootstrap import start_database
    from quire.core.db import check_database, context_key, resolve_database_url, resolve_owner_url, user_of

    settings = settings_for("migrate")
    start_database(settings)
    owner_url = resolve_owner_url(settings)
    check_database(owner_url)
    run_migrations(
        owner_url,
        revision,
        context_key=context_key(settings),
        settings=settings,
        login_user=user_of(resolve_database_url(settings)),
    )
    out.print(f"Database schema is at {revision}.")


@keys_app.command("create")
@friendly
def keys_create(
    role: Annotated[Role, typer.Option(help="What the key may do.")],
    name: Annotated[str, typer.Option(help="Who or what uses the key.")] = "",
    tenant: Annotated[str, typer.Option(help="Tenant name.")] = "default",
) -> None:
    """Create a principal with ROLE in TENANT and print its API key (once)."""
    from quire.core.db import Database
    from quire.core.tenancy import create_api_key, create_principal, get_tenant_by_name

    settings = settings_for("keys")
    database = Database.from_settings(settings, pool_size=1)
    with database.system_session() as system:
        tenant_row = get_tenant_by_name(session=system, name=tenant)
    with database.tenant_session(tenant_row.id) as session:
        principal = create_principal(session=session, name=name or role.value, role=role)
        key = create_api_key(session=session, principal=principal)
        session.commit()
    out.print(f"API key for {principal.name} ({role.value}) in tenant {tenant}:")
    out.print(key, highlight=False)
    database.dispose()


@keys_app.command("list")
@friendly
def keys_list(tenant: Annotated[str, typer.Option(help="Tenant name.")] = "default") -> None:
    """List the API keys of TENANT, revoked ones included (prefixes only: Quire keeps only hashes)."""
    from rich.table import Table

    from quire.core.db import Database
    from quire.core.tenancy import get_tenant_by_name, list_api_keys

    settings = settings_for("keys")
    database = Database.from_settings(settings, pool_size=1)
    with database.system_session() as system:
        tenant_row = get_tenant_by_name(session=system, name=tenant)
    with database.tenant_session(tenant_row.id) as session:
        keys = list_api_keys(session=session)
    database.dispose()
    table = Table(
        "id", "prefix", "name", "role", "created", "status", title=f"{len(keys)} keys in tenant {tenant}"
    )
    for key, principal in keys:
        status = f"revoked {key.revoked_at:%Y-%m-%d %H:%M:%S}" if key.revoked_at else "live"
        table.add_row(
            str(key.id),
            key.prefix,
            principal.name,
            principal.role.value,
            f"{key.created_at:%Y-%m-%d %H:%M:%S}",
            status,
        )
    out.print(table)


@keys_app.command("revoke")
@friendly
def keys_revoke(
    key: Annotated[
        str,
        typer.Argument(help="The key's id (from `quire keys list`), the key, or its first 10 characters."),
    ],
    tenant: Annotated[str, typer.Option(help="Tenant name.")] = "default",
) -> None:
    """Revoke an API key: its API calls and console sessions end at once."""
    import uuid

    from quire.core.db import Database
    from quire.core.tenancy import get_api_key, get_tenant_by_name, revoke_api_key, revoke_api_key_by_id

    try:
        key_id: uuid.UUID | None = uuid.UUID(key)
    except ValueError:
        key_id = None
    settings = settings_for("keys")
    database = Database.from_settings(settings, pool_size=1)
    try:
        with database.system_session() as system:
            tenant_row = get_tenant_by_name(session=system, name=tenant)
        with database.tenant_session(tenant_row.id) as session:
            if key_id is None:
                count = revoke_api_key(session=session, prefix=key)
                session.commit()
            else:
                revoked_before = get_api_key(session=session, key_id=key_id).revoked_at
                revoked = revoke_api_key_by_id(session=session, key_id=key_id)
                session.commit()
    finally:
        database.dispose()
    if key_id is not None:
        if revoked_before is not None:
            out.print(f"Key {revoked.prefix} was already revoked on {revoked_before:%Y-%m-%d %H:%M:%S}.")
        else:
            out.print(f"Revoked key {revoked.prefix}.")
    elif count:
        out.print(f"Revoked {count} key(s).")
    else:
        fail(f"no active key starts with {key[:10]!r} in tenant {tenant}")


@app.command("tenant-create")
@friendly
def tenant_create(name: Annotated[str, typer.Argument(help="The new tenant's name.")]) -> None:
    """Create a tenant with an admin, and print the admin's API key (once)."""
    from quire.core.db import Database
    from quire.core.tenancy import create_api_key, create_tenant

    settings = settings_for("tenant")
    database = Database.from_settings(settings, pool_size=1)
    with database.system_session() as system:
        tenant = create_tenant(session=system, name=name)
        system.commit()
    with database.tenant_session(tenant.id) as session:
        from quire.core.tenancy import create_principal

        principal = create_principal(session=session, name="admin", role=Role.admin)
        key = create_api_key(session=session, principal=principal)
        session.commit()
    database.dispose()
    out.print(f"Tenant {name} created. Admin API key:")
    out.print(key, highlight=False)


@db_app.command("start")
@friendly
def db_start() -> None:
    """Start the embedded PostgreSQL (it keeps running until `quire db stop`)."""
    from quire.core.embedded import EmbeddedPostgres

    settings = settings_for("db")
    url, started = EmbeddedPostgres(settings.data_dir).start()
    out.print(("Started: " if started else "Already running: ") + url, highlight=False)


@db_app.command("stop")
@friendly
def db_stop() -> None:
    """Stop the embedded PostgreSQL."""
    from quire.core.embedded import EmbeddedPostgres

    settings = settings_for("db")
    stopped = EmbeddedPostgres(settings.data_dir).stop()
    out.print("Stopped." if stopped else "It was not running.")


@db_app.command("status")
@friendly
def db_status() -> None:
    """Whether the embedded PostgreSQL runs, and its URL."""
    from quire.core.embedded import EmbeddedPostgres

    settings = settings_for("db")
    embedded = EmbeddedPostgres(settings.data_dir)
    status = embedded.status()
    if status.running:
        out.print(f"running (pid {status.pid}) in {embedded.pgdata}: {status.url}", highlight=False)
    else:
        out.print(f"not running ({embedded.pgdata})", highlight=False)
        raise typer.Exit(3)


@contextmanager
def tenant_context(settings: Settings, tenant: str) -> Iterator[tuple[Any, Any]]:
    """A tenant session and a kicker, for commands that act on one tenant's runs."""
    from quire.app.programs import load_programs
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
    table = Table("id", "program", "status", "created", "error", title=f"{len(runs)} of {count} runs")
    for run in runs:
        table.add_row(
            str(run.id),
            f"{run.program} v{run.program_version}",
            run.status,
            run.created_at.strftime("%Y-%m-%d %H:%M:%S"),
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
        out.print(f"[red]{run.error}[/]")
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


@app.command()
@friendly
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (read recursively).")],
    collection: Annotated[str, typer.Option(help="Collection to file the documents in.")] = "default",
    tag: Annotated[list[str] | None, typer.Option(help="Tag for every document (repeatable).")] = None,
    tenant: TenantOption = "default",
) -> None:
    """Upload documents and wait until each is searchable, failed or unchanged."""
    from quire.app.ingest import ingest_paths

    settings = settings_for("ingest")
    failures = ingest_paths(
        settings, paths, collection=collection, tags=tuple(tag or ()), tenant=tenant, console=out
    )
    if failures:
        raise typer.Exit(1)


@app.command()
@friendly
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: Annotated[list[str] | None, typer.Option(help="Only these collections.")] = None,
    k: Annotated[int, typer.Option(help="How many hits.")] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, lexical or dense.")] = "hybrid",
    tenant: TenantOption = "default",
) -> None:
    """Search the documents and print the hits with their citations."""
    from quire.app.programs import configure_process
    from quire.content.search import Scope
    from quire.content.search import search as run_search

    settings = settings_for("search")
    environment = configure_process(settings)
    with tenant_context(settings, tenant) as (session, _):
        results = run_search(
            session,
            query=query,
            embedder=environment.embedder,
            scope=Scope(collections=tuple(collection or ())),
            k=k,
            mode=mode,
            dense_weight=environment.dense_weight,
            ef_search=environment.search_ef,
        )
    if not results.hits:
        out.print("No hits.")
        return
    for rank, hit in enumerate(results.hits, 1):
        c = hit.citation
        where = " > ".join(c.section_path) or "(top)"
        pages = f", p. {', '.join(map(str, c.pages))}" if c.pages else ""
        out.print(
            f"[bold]{rank}. {c.document_title}[/] v{c.version_number} · {where}{pages} "
            f"[dim]({hit.score:.3f})[/]",
            highlight=False,
        )
        snippet = escape(c.snippet.replace(chr(10), " ")).replace("«", "[bold]").replace("»", "[/bold]")
        out.print(f"   {snippet}", highlight=False)
    out.print(f"[dim]{results.took_ms:.0f} ms[/]")


@app.command("ask")
@friendly
def ask_command(
    question: Annotated[str, typer.Argument(help="The question.")],
    collection: Annotated[list[str] | None, typer.Option(help="Focus on these collections.")] = None,
    route: Annotated[str | None, typer.Option(help="Model route (QUIRE_MODELS).")] = None,
    tenant: TenantOption = "default",
) -> None:
    """Ask the agent; see its steps as it works, then the answer and its sources."""
    from quire.app.ask import ask

    settings = settings_for("ask")
    if not ask(
        settings, question, collections=list(collection or ()), route=route, tenant=tenant, console=out
    ):
        raise typer.Exit(1)


@app.command()
@friendly
def demo(
    examples: Annotated[
        Path | None, typer.Option(help="The example documents (default: examples/ of this checkout).")
    ] = None,
) -> None:
    """Ingest the example documents, approve a few memories, ask two questions; then open the console."""
    from quire.app.demo import run_demo

    settings = settings_for("demo")
    run_demo(settings, examples=examples, console=out)


register_mcp_commands(app, friendly=friendly, settings_for=settings_for, out=out, fail=fail)


def main() -> None:
    try:
        app()
    except QuireError as error:  # raised while parsing options, before `friendly` applies
        err.print(f"[bold red]error:[/] {error}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
