"""`quire demo`: a first run over the example documents in `examples/`.

It ingests a fictional company's handbook, policies and changelog, then an edited handbook (its
second version, shown as an element diff); waits for the memories the ingestion proposes; approves
a few as the demo tenant's admin, through the memory service the console uses; asks two questions
the way `quire ask` does; and says how to open the console on the rest. Run twice, it finds its
tenant, documents, versions, memories and approvals in place and makes none of them again.

Like `quire ingest`, it drives the durable runs in its own process when no worker is running,
and leaves them to the workers when `quire up` runs.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from quire.app.ask import ask
from quire.app.bootstrap import first_admin_key, prepare
from quire.app.programs import warm_up_in_background
from quire.app.services import Services, build_services
from quire.content.comparison import diff_versions
from quire.content.environment import ContentEnvironment
from quire.content.models import VersionStatus
from quire.content.service import finished_versions, version_by_id
from quire.content.uploads import UploadRequest, upload, version_with_bytes
from quire.core.broker import build_broker
from quire.core.db import Database
from quire.core.embedded import EmbeddedPostgres
from quire.core.errors import QuireError, Unauthenticated
from quire.core.models import Role
from quire.core.settings import Settings
from quire.core.tenancy import (
    Caller,
    authenticate,
    create_api_key,
    create_principal,
    ensure_tenant,
    principal_named,
)
from quire.core.workers import alive_workers
from quire.memory.models import ReviewDecision, VersionState
from quire.memory.reviews import review
from quire.memory.service import count_in_state, list_items, unchecked_versions
from quire.runtime import stats
from quire.runtime.executor import Executor
from quire.runtime.kicks import Kicker
from quire.runtime.local import LocalKicker, drive
from quire.runtime.sweeper import Sweeper

TENANT = "demo"
COLLECTION = "fernhollow"
ADMIN = "demo-admin"
KEY_FILE = "demo-admin-key"  # in the data folder: the demo admin's key, so a second run can show it
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SETTLE_SECONDS = 600.0


@dataclass(frozen=True)
class Example:
    file: str  # inside the examples folder
    source_key: str  # the document it is a version of
    title: str


FIRST_VERSIONS = (
    Example("handbook.md", "handbook.md", "Employee handbook"),
    Example("travel-and-expenses.docx", "travel-and-expenses.docx", "Travel and expenses policy"),
    Example("security.html", "security.html", "Information security policy"),
    Example("leave-policy.pdf", "leave-policy.pdf", "Leave policy"),
    Example("changelog.md", "changelog.md", "Orchard Sentinel changelog"),
)
SECOND_VERSIONS = (Example("v2/handbook.md", "handbook.md", "Employee handbook"),)

# Clear proposals the demo admin approves, one from each file; the rest wait in the console.
APPROVE = (
    "Every full-time employee has 27 days of paid holiday per calendar year",
    "Flights shorter than six hours must be booked in economy class.",
    "All company laptops must use full-disk encryption.",
    "Parental leave is 20 weeks at full pay for every parent",
    "Sensor readings are kept for 5 years, then deleted.",
)
QUESTIONS = (
    "How do I report a lost laptop?",  # answered from the security policy
    "How many days of paid holiday does a full-time employee get?",  # an approved memory answers too
)


class DemoError(QuireError):
    """The demo could not complete."""


@dataclass(frozen=True)
class DemoAdmin:
    caller: Caller
    key: str
    tenant_created: bool


@dataclass
class Outcome:
    example: Example
    version_id: uuid.UUID | None = None
    number: int = 0
    status: str = "pending"
    reason: str = ""


class Runner:
    """Moves runs along: in this process when no worker runs, otherwise by waiting for the workers."""

    def __init__(self, database: Database, settings: Settings, services: Services) -> None:
        self.local = alive_workers(database) == 0
        self.kicker: Kicker = (
            LocalKicker()
            if self.local
            else Kicker(build_broker(broker_url=settings.broker_url, database_url=database.url))
        )
        self.executor = Executor(
            database,
            self.kicker,
            lease_ttl=settings.lease_seconds,
            programs=services.programs,
            services=services,
        )
        self.sweeper = Sweeper(database, self.kicker, interval=0.2)

    def turn(self) -> None:
        if isinstance(self.kicker, LocalKicker):
            drive(self.executor, self.kicker, sweeper=self.sweeper, until=0.3)
        else:
            time.sleep(0.3)

    def until(self, done: Callable[[], bool], *, what: str, timeout: float = SETTLE_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise DemoError(
                    f"{what} took longer than {timeout:.0f} s; see `quire runs list --tenant demo`"
                )
            self.turn()


def run_demo(settings: Settings, *, examples: Path | None, console: Console) -> None:
    """The whole demo; raises DemoError when a step cannot complete."""
    folder = (examples or EXAMPLES).resolve()
    missing = [e.file for e in (*FIRST_VERSIONS, *SECOND_VERSIONS) if not (folder / e.file).is_file()]
    if missing:
        raise DemoError(
            f"the example documents are not in {folder} (no {missing[0]}); run the demo from a "
            "checkout of Quire's repository, or pass --examples"
        )
    started = time.monotonic()
    console.print("[bold]Quire demo[/]: Fernhollow Instruments' handbook, policies and changelog.")
    with console.status("Starting the database and applying migrations…"):
        installation = prepare(settings)
    default_key = first_admin_key(settings)
    if default_key:
        console.print("[bold]First start:[/] made the tenant [bold]default[/] and its admin. Its API key:")
        console.print(f"  [bold green]{default_key}[/]", highlight=False)
        console.print("  Keep it: Quire stores only its hash and will not show it again.")
    database = Database.from_settings(settings, url=installation.database_url, pool_size=4)
    services = build_services(settings, database)
    environment = services.content
    try:
        admin = ensure_demo_admin(database, settings.data_dir)
        console.print(
            f"Tenant [bold]{TENANT}[/] and its admin [bold]{ADMIN}[/]: "
            f"{'made now' if admin.tenant_created else 'already there'}."
        )
        runner = Runner(database, settings, services)
        if runner.local:
            # The embedding model loads while the files upload; the parser starts only if one is new.
            warm_up_in_background(environment, parser=False)
            console.print("[dim]No worker is running: the demo works in this process.[/]")
        else:
            console.print("[dim]Workers are running: they do the work; the demo follows it.[/]")
        outcomes = ingest_examples(database, admin.caller, folder, runner, environment, console)
        show_diff(database, admin.caller.tenant_id, outcomes, console)
        wait_for_proposals(database, admin.caller.tenant_id, runner, console)
        approve_examples(database, admin.caller, runner, console)
        waiting = count_in_review(database, admin.caller)
    finally:
        environment.close()
        database.dispose()

    for number, question in enumerate(QUESTIONS, 1):
        console.rule(f"Question {number}: {question}", align="left")
        if not ask(settings, question, collections=[], route=None, tenant=TENANT, console=console):
            raise DemoError(f"no answer came to {question!r}")

    console.rule("Next: the review console", align="left")
    show_console(settings, admin, waiting, console)
    if installation.started_embedded:
        EmbeddedPostgres(settings.data_dir).stop()  # this process started it; `quire up` starts it again
    console.print(f"[dim]The demo took {time.monotonic() - started:.0f} s.[/]")


def ensure_demo_admin(database: Database, data_dir: Path) -> DemoAdmin:
    """The demo tenant, its admin and the admin's key: made on the first run, found on the next."""
    with database.system_session() as system:
        tenant, created = ensure_tenant(session=system, name=TENANT)
        system.commit()
        tenant_id = tenant.id
    with database.tenant_session(tenant_id) as session:
        principal = principal_named(session=session, name=ADMIN)
        if principal is None:
            principal = create_principal(session=session, name=ADMIN, role=Role.admin)
        key = _stored_key(database, data_dir, principal.id)
        if key is None:
            key = create_api_key(session=session, principal=principal)
            _store_key(data_dir, key)
        session.commit()
        caller = Caller(principal_id=principal.id, tenant_id=tenant_id, name=ADMIN, role=Role.admin)
    return DemoAdmin(caller=caller, key=key, tenant_created=created)


def _stored_key(database: Database, data_dir: Path, principal_id: uuid.UUID) -> str | None:
    try:
        key = (data_dir / KEY_FILE).read_text().strip()
    except OSError:
        return None
    try:
        with database.system_session() as system:
            caller = authenticate(session=system, key=key)
    except Unauthenticated:
        return None  # revoked, or made for a database that is gone
    return key if caller.principal_id == principal_id else None


def _store_key(data_dir: Path, key: str) -> None:
    path = data_dir / KEY_FILE
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")


def ingest_examples(
    database: Database,
    admin: Caller,
    folder: Path,
    runner: Runner,
    environment: ContentEnvironment,
    console: Console,
) -> list[Outcome]:
    """Upload the first versions, then the second; wait until each is searchable."""
    outcomes: list[Outcome] = []
    columns = (TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        for label, examples in (("first versions", FIRST_VERSIONS), ("second version", SECOND_VERSIONS)):
            batch = [Outcome(example) for example in examples]
            uploading = progress.add_task(f"uploading {label}", total=len(batch))
            for outcome in batch:
                _upload(database, admin, folder, outcome, runner.kicker, environment)
                progress.advance(uploading)
            ingesting = progress.add_task(f"ingesting {label}", total=len(batch))
            pending = list(batch)

            def ingested(pending: list[Outcome] = pending, task: TaskID = ingesting) -> bool:
                pending[:] = _still_pending(database, admin.tenant_id, pending, progress, task)
                return not pending

            runner.until(ingested, what=f"ingesting the {label}")
            outcomes += batch
    table = Table("file", "document", "version", "outcome", title="Example documents")
    for outcome in outcomes:
        style = {"ingested": "green", "already there": "cyan"}.get(outcome.status, "red")
        table.add_row(
            outcome.example.file,
            outcome.example.title,
            f"v{outcome.number}",
            f"[{style}]{outcome.status}[/] {outcome.reason}".rstrip(),
        )
    console.print(table)
    failed = [o for o in outcomes if o.status not in ("ingested", "already there")]
    if failed:
        raise DemoError(f"{failed[0].example.file} was not ingested: {failed[0].status} {failed[0].reason}")
    return outcomes


def _upload(
    database: Database,
    admin: Caller,
    folder: Path,
    outcome: Outcome,
    kicker: Kicker,
    environment: ContentEnvironment,
) -> None:
    example = outcome.example
    data = (folder / example.file).read_bytes()
    with database.tenant_session(admin.tenant_id) as session:
        stored = version_with_bytes(
            session,
            collection=COLLECTION,
            source_key=example.source_key,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        if stored is not None:
            # Uploading v1 again after v2 would make a v3; the demo only adds what is missing.
            outcome.version_id, outcome.number, outcome.status = stored.id, stored.number, "already there"
            return
        result = upload(
            session,
            request=UploadRequest(
                data=data,
                filename=Path(example.file).name,
                collection=COLLECTION,
                source_key=example.source_key,
                title=example.title,
                tags=("demo",),
            ),
            blobs=environment.blobs,
            kicker=kicker,
            created_by=admin.principal_id,
            max_bytes=environment.max_upload_bytes,
        )
        session.commit()
    outcome.version_id, outcome.number = result.version_id, result.version_number


def _still_pending(
    database: Database, tenant_id: uuid.UUID, pending: list[Outcome], progress: Progress, task: TaskID
) -> list[Outcome]:
    with database.tenant_session(tenant_id) as session:
        finished = finished_versions(session, [o.version_id for o in pending if o.version_id])
    still = []
    for outcome in pending:
        if outcome.version_id not in finished:
            still.append(outcome)
            continue
        status, reason, _ = finished[outcome.version_id]
        if status != VersionStatus.indexed:
            outcome.status, outcome.reason = status, reason or ""
        elif outcome.status == "pending":
            outcome.status = "ingested"
        progress.advance(task)
    return still


def show_diff(database: Database, tenant_id: uuid.UUID, outcomes: list[Outcome], console: Console) -> None:
    """What the second version of the handbook changed, element by element."""
    for outcome in outcomes:
        if outcome.example not in SECOND_VERSIONS or outcome.number < 2:
            continue
        with database.tenant_session(tenant_id) as session:
            assert outcome.version_id is not None
            version = version_by_id(session, outcome.version_id)
            assert version is not None
            diff = diff_versions(
                session,
                document_id=version.document_id,
                from_number=outcome.number - 1,
                to_number=outcome.number,
            )
        console.print(
            f"\n[bold]{outcome.example.title}[/], version {diff.from_version} → {diff.to_version}: "
            f"{len(diff.changed)} changed, {len(diff.added)} added, {len(diff.removed)} removed, "
            f"{diff.unchanged} unchanged elements",
            highlight=False,
        )
        for change in diff.changed:
            console.print(f"  [yellow]~ {_where(change.section_path)}[/]", highlight=False)
            console.print(_indented(f"- {change.before}", "red"))
            console.print(_indented(f"+ {change.after}", "green"))
        for change in diff.added:
            console.print(f"  [green]+ {_where(change.section_path)}[/]", highlight=False)
            console.print(_indented(f"+ {change.after}", "green"))
        for change in diff.removed:
            console.print(f"  [red]- {_where(change.section_path)}[/]", highlight=False)
            console.print(_indented(f"- {change.before}", "red"))


def _indented(line: str, style: str) -> Padding:
    return Padding(Text(line, style=style), (0, 0, 0, 4), expand=False)


def _where(section_path: list[str]) -> str:
    return f"in {section_path[-1]}" if section_path else "at the top"


def wait_for_proposals(database: Database, tenant_id: uuid.UUID, runner: Runner, console: Console) -> None:
    """Until every run the ingestion started has settled: memories proposed, checked, in review."""
    columns = (TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("memory proposals: waiting for the extractor")

        def settled() -> bool:
            with database.tenant_session(tenant_id) as session:
                busy = stats.runs_about_to_move(session)
                unchecked, proposed = unchecked_versions(session)
            progress.update(
                task, description=f"memory proposals: {proposed} made, {proposed - unchecked} checked"
            )
            return busy == 0 and unchecked == 0

        runner.until(settled, what="proposing memories")


def approve_examples(database: Database, admin: Caller, runner: Runner, console: Console) -> None:
    """Approve the proposals in APPROVE as the demo admin, the way a reviewer in the console does."""
    approved: list[uuid.UUID] = []
    lines: list[str] = []
    with database.tenant_session(admin.tenant_id) as session:
        items, _ = list_items(session, caller=admin, limit=1000)
        for phrase in APPROVE:
            found = [(i, v) for i, v in items if phrase in v.text]
            live = [(i, v) for i, v in found if v.state == VersionState.approved]
            if live:
                lines.append(f"  [cyan]✓[/] {live[0][1].text} [dim](approved before)[/]")
                continue
            waiting = [(i, v) for i, v in found if v.state == VersionState.in_review]
            if not waiting:
                # A reviewer decided otherwise in the console (edited, withdrew, superseded it).
                lines.append(f"  [yellow]·[/] {phrase} [dim](not in review: left as a reviewer left it)[/]")
                continue
            item, version = waiting[0]
            review(
                session,
                item_id=item.id,
                decision=ReviewDecision(
                    decision="approve", reason="approved by `quire demo`", version_id=version.id
                ),
                caller=admin,
                kicker=runner.kicker,
            )
            approved.append(version.id)
            lines.append(f"  [green]✓[/] {version.text}")
        session.commit()

    def decided() -> bool:
        with database.tenant_session(admin.tenant_id) as session:
            return count_in_state(session, approved, VersionState.approved) == len(approved)

    runner.until(decided, what="approving the example memories")
    console.print(f"\nApproved as [bold]{ADMIN}[/] (the audit log names them as the reviewer):")
    for line in lines:
        console.print(line, highlight=False)


def count_in_review(database: Database, admin: Caller) -> int:
    with database.tenant_session(admin.tenant_id) as session:
        _, count = list_items(session, caller=admin, state=VersionState.in_review, limit=1)
    return count


def show_console(settings: Settings, admin: DemoAdmin, waiting: int, console: Console) -> None:
    import httpx

    host = settings.api_host if settings.api_host not in ("0.0.0.0", "::", "[::]", "") else "127.0.0.1"
    base = f"http://{host}:{settings.api_port}"
    try:
        running = httpx.get(f"{base}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        running = False
    console.print(f"{waiting} proposed memories wait for a reviewer. Review them in the console:")
    if not running:
        console.print("  1. start Quire (the API, a worker and the database):  [bold].venv/bin/quire up[/]")
    console.print(f"  {'2. ' if not running else ''}open  [bold]{base}/console[/]", highlight=False)
    console.print(
        f"  {'3. ' if not running else ''}log in with the demo admin's API key:\n"
        f"     [bold green]{admin.key}[/]",
        highlight=False,
    )
    console.print(
        f"[dim]  This key is for this local demo (tenant {TENANT!r}); the demo keeps it in "
        f"{settings.data_dir / KEY_FILE} to show it again.[/]",
        highlight=False,
    )
