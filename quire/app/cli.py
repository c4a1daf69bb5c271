"""The `quire` command."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from quire.app.cli_ask import ask
from quire.app.cli_common import err, fail, friendly, hide_type_names, out, settings_for
from quire.app.cli_ingest import ingest
from quire.app.cli_keys import keys_app, tenant_create
from quire.app.cli_memories import memories_app
from quire.app.cli_runs import runs_app
from quire.app.cli_search import search
from quire.app.mcp_cli import register_mcp_commands
from quire.core.errors import QuireError
from quire.core.settings import Settings

if TYPE_CHECKING:
    from quire.app.bootstrap import Installation

app = typer.Typer(
    name="quire",
    help="Quire: the content and memory layer for production AI agents.\n\n"
    "With QUIRE_URL and QUIRE_API_KEY set, ingest, search, ask, runs, memories and keys work "
    "through that Quire's API; otherwise on the local database.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The embedded PostgreSQL server.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(runs_app, name="runs")
app.add_typer(memories_app, name="memories")
app.command("tenant-create")(tenant_create)
hide_type_names()


def _version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        out.print(f"quire {version('quire')}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Quire: the content and memory layer for production AI agents."""


@app.command()
@friendly
def up(
    workers: Annotated[int | None, typer.Option(help="Worker processes (QUIRE_WORKER_PROCESSES).")] = None,
) -> None:
    """Run all of Quire on this machine: database, migrations, API and workers. Ctrl-C stops it."""
    from quire.app.bootstrap import prepare
    from quire.core.embedded import EmbeddedPostgres

    settings = settings_for("up")
    started = time.monotonic()
    with out.status("Starting the database and applying migrations…"):
        installation = prepare(settings)  # stops the database it started if it cannot go on
    try:
        _serve(settings, installation, worker_count=workers or settings.worker_processes, started=started)
    finally:
        if installation.started_embedded:
            EmbeddedPostgres(settings.data_dir).stop()
        out.print("Stopped.")


def _serve(settings: Settings, installation: Installation, *, worker_count: int, started: float) -> None:
    """`quire up` once the database is ready: the first key, then the API and workers until a signal."""
    from quire.app.bootstrap import first_admin_key

    key = first_admin_key(settings)
    if key:
        out.print("\n[bold]First start:[/] made the tenant [bold]default[/] and its admin. Its API key:")
        out.print(f"  [bold green]{key}[/]", highlight=False)
        out.print("  Keep it: Quire stores only its hash and will not show it again.\n")

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


app.command("ingest")(ingest)
app.command("search")(search)
app.command("ask")(ask)


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
