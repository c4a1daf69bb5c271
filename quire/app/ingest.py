"""`quire ingest`: upload files and folders, follow their ingestion, summarise the outcome.

With a worker running, the workers ingest and this command watches; without one, it ingests
in its own process (the same durable program, driven locally), so it works on a bare machine.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from quire.app.programs import command_kicker
from quire.app.services import build_services
from quire.content.environment import ContentEnvironment
from quire.content.models import VersionStatus
from quire.content.service import (
    UploadRequest,
    failed_versions,
    finished_versions,
    retry_version,
    unchanged_uploads,
    upload,
)
from quire.core.db import Database
from quire.core.errors import QuireError
from quire.core.settings import Settings
from quire.core.tenancy import get_tenant_by_name
from quire.runtime.executor import Executor
from quire.runtime.kicks import Kicker
from quire.runtime.local import LocalKicker, drive
from quire.runtime.sweeper import Sweeper


@dataclass
class Outcome:
    path: Path | None  # None: a failed version found in the database, retried by its key
    key: str  # the document's source key
    version_id: uuid.UUID | None = None
    status: str = "pending"
    reason: str = ""
    document_id: uuid.UUID | None = None
    number: int = 0
    warnings: list[str] = field(default_factory=list)  # about the text of its version

    @property
    def label(self) -> str:
        return str(self.path) if self.path is not None else self.key


def keyed_files(paths: Iterable[Path], *, source_key: str | None = None) -> list[tuple[Path, str]]:
    """Each file to ingest with the source key of its document.

    A file found in a folder given is keyed by its path below that folder (`policies/leave.md`),
    a file given directly by its name: the key does not depend on the current folder nor on how
    the path was typed, so `quire ingest /abs/examples` and, later, `quire ingest
    examples/handbook.md` make versions 1 and 2 of one document. Hidden files and folders are
    skipped when they are below a folder given, whatever the folders above it are called.
    `source_key` names the document of the one file given.
    """
    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            below = sorted((p, p.relative_to(path)) for p in path.rglob("*") if p.is_file())
            found += [
                (p, relative.as_posix())
                for p, relative in below
                if not any(part.startswith(".") for part in relative.parts)
            ]
        else:
            found.append((path, path.name))
    if source_key is not None:
        if len(found) != 1:
            raise QuireError(f"--source-key names the document of one file; these paths hold {len(found)}")
        found = [(found[0][0], source_key)]
    seen: dict[str, Path] = {}
    for path, key in found:
        if key in seen:
            raise QuireError(
                f"{seen[key]} and {path} would both be the document {key!r}: ingest them in "
                "separate commands with --collection or --source-key"
            )
        seen[key] = path
    return found


def ingest_paths(
    settings: Settings,
    paths: Sequence[Path],
    *,
    collection: str,
    tags: tuple[str, ...],
    tenant: str,
    console: Console,
    source_key: str | None = None,
    retry_failed: bool = False,
) -> int:
    """Ingest every file (or, with `retry_failed`, retry the failed versions of their documents,
    of every document in the collection when no path is given); print a summary; return how
    many failed."""
    files = keyed_files(paths, source_key=source_key)
    missing = [p for p, _ in files if not p.exists()]
    if missing:
        raise QuireError(f"no such file: {missing[0]}")
    if not files and not (retry_failed and not paths):
        console.print("Nothing to ingest.")
        return 0
    database = Database.from_settings(settings, pool_size=4)
    services = None
    try:
        with database.system_session() as system:
            tenant_id = get_tenant_by_name(session=system, name=tenant).id
        if retry_failed:
            outcomes = _failed(database, tenant_id, collection, files if paths else None)
            if not outcomes:
                console.print("No failed version to retry.")
                return 0
        else:
            outcomes = [Outcome(path, key) for path, key in files]
            _mark_unchanged(database, tenant_id, outcomes, collection)
            if all(o.status == "unchanged" for o in outcomes):
                return _summarise(outcomes, console)  # nothing to upload: no programs, no model
        services = build_services(settings, database, short_lived=True)
        kicker, local = command_kicker(settings, database)
        if local:
            console.print("[dim]No worker is running: ingesting in this process.[/]")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            starting = progress.add_task("retrying" if retry_failed else "uploading", total=len(outcomes))
            for outcome in outcomes:
                if outcome.status == "pending" and retry_failed:
                    _retry_one(database, tenant_id, outcome, kicker)
                elif outcome.status == "pending":
                    _upload_one(database, tenant_id, outcome, collection, tags, kicker, services.content)
                progress.advance(starting)
            pending = [o for o in outcomes if o.status == "pending"]
            ingesting = progress.add_task("ingesting", total=len(pending))
            if local:
                executor = Executor(
                    database,
                    kicker,
                    lease_ttl=settings.lease_seconds,
                    programs=services.programs,
                    services=services,
                )
                sweeper = Sweeper(database, kicker, interval=0.2)
                assert isinstance(kicker, LocalKicker)
                while pending:
                    drive(executor, kicker, sweeper=sweeper, until=0.5)
                    pending = _refresh(database, tenant_id, pending, progress, ingesting)
            else:
                while pending:
                    time.sleep(0.5)
                    pending = _refresh(database, tenant_id, pending, progress, ingesting)
        return _summarise(outcomes, console)
    finally:
        if services is not None:
            services.content.close()
        database.dispose()


def _failed(
    database: Database, tenant_id: uuid.UUID, collection: str, files: list[tuple[Path, str]] | None
) -> list[Outcome]:
    """The failed versions to retry: of these files' documents, or of the whole collection."""
    paths = {key: path for path, key in files} if files is not None else {}
    with database.tenant_session(tenant_id) as session:
        found = failed_versions(
            session, collection=collection, source_keys=list(paths) if files is not None else None
        )
        return [
            Outcome(
                paths.get(key),
                key,
                version_id=version.id,
                document_id=version.document_id,
                number=version.number,
            )
            for key, version in found
        ]


def _retry_one(database: Database, tenant_id: uuid.UUID, outcome: Outcome, kicker: Kicker) -> None:
    assert outcome.document_id is not None
    try:
        with database.tenant_session(tenant_id) as session:
            retry_version(
                session, document_id=outcome.document_id, number=outcome.number, kicker=kicker, caller=None
            )
            session.commit()
    except QuireError as error:  # retried by someone else meanwhile, say
        outcome.status, outcome.reason = "failed", str(error)


def _mark_unchanged(
    database: Database, tenant_id: uuid.UUID, outcomes: list[Outcome], collection: str
) -> None:
    """Files whose bytes are already the latest version need no upload: found in one query (a
    failed version is not among them: its bytes uploaded again retry it)."""
    hashes: dict[str, str] = {}
    for outcome in outcomes:
        try:
            assert outcome.path is not None
            with outcome.path.open("rb") as handle:
                hashes[outcome.key] = hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError:
            continue  # the upload reports it
    with database.tenant_session(tenant_id) as session:
        found = unchanged_uploads(session, collection=collection, hashes=hashes)
    for outcome in outcomes:
        if outcome.key in found:
            outcome.version_id, number = found[outcome.key]
            outcome.status, outcome.reason = "unchanged", f"same bytes as version {number}"


def _upload_one(
    database: Database,
    tenant_id: uuid.UUID,
    outcome: Outcome,
    collection: str,
    tags: tuple[str, ...],
    kicker: Kicker,
    environment: ContentEnvironment,
) -> None:
    assert outcome.path is not None
    try:
        data = outcome.path.read_bytes()
        with database.tenant_session(tenant_id) as session:
            result = upload(
                session,
                request=UploadRequest(
                    data=data,
                    filename=outcome.path.name,
                    collection=collection,
                    source_key=outcome.key,
                    tags=tags,
                ),
                blobs=environment.blobs,
                kicker=kicker,
                created_by=None,
                max_bytes=environment.max_upload_bytes,
            )
            session.commit()
    except (OSError, QuireError) as error:
        outcome.status, outcome.reason = "failed", str(error)
        return
    outcome.version_id = result.version_id
    if not result.created and not result.retried:
        outcome.status, outcome.reason = "unchanged", f"same bytes as version {result.version_number}"


def _refresh(
    database: Database, tenant_id: uuid.UUID, pending: list[Outcome], progress: Progress, task: object
) -> list[Outcome]:
    # Only the versions that finished since the last look, with the ids as one array: this runs
    # every half second while the workers ingest, and a row and a bound parameter per pending
    # version put it in a fifth of the command's profile samples on 240 files.
    with database.tenant_session(tenant_id) as session:
        finished = finished_versions(session, [o.version_id for o in pending if o.version_id])
    still = []
    for outcome in pending:
        if outcome.version_id in finished:
            status, reason, warnings = finished[outcome.version_id]
            outcome.status = "ingested" if status == VersionStatus.indexed else status
            outcome.reason, outcome.warnings = reason or "", warnings
            progress.advance(task)  # type: ignore[arg-type]
        else:
            still.append(outcome)
    return still


def _summarise(outcomes: list[Outcome], console: Console) -> int:
    warned = sum(1 for o in outcomes if o.warnings)
    table = Table("file", "outcome", "reason", *(["warnings"] if warned else []), title="Ingestion")
    styles = {"ingested": "green", "unchanged": "cyan", "empty": "yellow"}
    for outcome in outcomes:
        style = styles.get(outcome.status, "red")
        notes = ["[yellow]" + "; ".join(outcome.warnings) + "[/]"] if warned else []
        table.add_row(outcome.label, f"[{style}]{outcome.status}[/]", outcome.reason, *notes)
    console.print(table)
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    line = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    console.print(line + (f"; {warned} with warnings" if warned else ""))
    return sum(1 for o in outcomes if o.status in ("failed", "unsupported"))
