"""`quire ingest`: upload files and folders, follow their ingestion, summarise the outcome.

With a worker running, the workers ingest and this command watches; without one, it ingests
in its own process (the same durable program, driven locally), so it works on a bare machine.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from quire.app.ingest_outcomes import Outcome, keyed_files, summarise
from quire.app.programs import command_kicker
from quire.app.services import build_services, content_environment
from quire.content.environment import ContentEnvironment
from quire.content.models import VersionStatus
from quire.content.retry import failed_versions, retry_version
from quire.content.service import finished_versions
from quire.content.uploads import UploadRequest, unchanged_uploads, upload
from quire.core.db import Database
from quire.core.errors import QuireError
from quire.core.settings import Settings
from quire.core.tenancy import get_tenant_by_name
from quire.runtime.executor import Executor
from quire.runtime.kicks import Kicker
from quire.runtime.local import LocalKicker, drive
from quire.runtime.sweeper import Sweeper


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
    outcomes = ingest_files(
        settings,
        paths,
        collection=collection,
        tags=tags,
        tenant=tenant,
        console=console,
        source_key=source_key,
        retry_failed=retry_failed,
    )
    return summarise(outcomes, console) if outcomes else 0


def ingest_files(
    settings: Settings,
    paths: Sequence[Path],
    *,
    collection: str,
    tags: tuple[str, ...],
    tenant: str,
    console: Console,
    source_key: str | None = None,
    retry_failed: bool = False,
) -> list[Outcome]:
    """What `ingest_paths` does, without the summary: each file's outcome (none when there was
    nothing to do, which `console` is told)."""
    files = keyed_files(paths, source_key=source_key)
    missing = [p for p, _ in files if not p.exists()]
    if missing:
        raise QuireError(f"no such file: {missing[0]}")
    if not files and not (retry_failed and not paths):
        console.print("Nothing to ingest.")
        return []
    database = Database.from_settings(settings, pool_size=4)
    content: ContentEnvironment | None = None
    try:
        with database.system_session() as system:
            tenant_id = get_tenant_by_name(session=system, name=tenant).id
        if retry_failed:
            outcomes = _failed(database, tenant_id, collection, files if paths else None)
            if not outcomes:
                console.print("No failed version to retry.")
                return []
        else:
            outcomes = [Outcome(path, key) for path, key in files]
            _mark_unchanged(database, tenant_id, outcomes, collection)
            if all(o.status == "unchanged" for o in outcomes):
                return outcomes  # nothing to upload: no programs, no model
        kicker, local = command_kicker(settings, database)
        # With a worker alive this command only uploads: the content environment (the blob store)
        # is all it needs, not the programs and the models, which take a second or two to load
        # while the worker waits for the first upload.
        services = build_services(settings, database, short_lived=True) if local else None
        content = services.content if services else content_environment(settings, database)
        if local:
            console.print("[dim]No worker is running: ingesting in this process.[/]")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            starting = progress.add_task("retrying" if retry_failed else "uploading", total=len(outcomes))
            for outcome in outcomes:
                if outcome.status == "pending" and retry_failed:
                    _retry_one(database, tenant_id, outcome, kicker)
                elif outcome.status == "pending":
                    _upload_one(database, tenant_id, outcome, collection, tags, kicker, content)
                progress.advance(starting)
            pending = [o for o in outcomes if o.status == "pending"]
            ingesting = progress.add_task("ingesting", total=len(pending))
            if services is not None:
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
        return outcomes
    finally:
        if content is not None:
            content.close()
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
