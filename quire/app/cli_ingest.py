"""`quire ingest`: through the API (upload, then follow each version) or on the local database."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Protocol

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from quire.app.cli_common import (
    JsonOption,
    TenantOption,
    api_client,
    err,
    friendly,
    out,
    print_json,
    settings_for,
)
from quire.app.ingest_outcomes import Outcome, keyed_files, summarise
from quire.core.errors import QuireError

if TYPE_CHECKING:
    from quire.client import Quire


class Ingester(Protocol):
    def ingest(
        self,
        paths: list[Path],
        *,
        collection: str,
        tags: tuple[str, ...],
        source_key: str | None,
        retry_failed: bool,
        console: Console,
    ) -> list[Outcome]: ...


class LocalIngester:
    def __init__(self, tenant: str) -> None:
        self.tenant = tenant

    def ingest(
        self,
        paths: list[Path],
        *,
        collection: str,
        tags: tuple[str, ...],
        source_key: str | None,
        retry_failed: bool,
        console: Console,
    ) -> list[Outcome]:
        from quire.app.ingest import ingest_files

        return ingest_files(
            settings_for("ingest"),
            paths,
            collection=collection,
            tags=tags,
            tenant=self.tenant,
            console=console,
            source_key=source_key,
            retry_failed=retry_failed,
        )


# A version's status as the API reports it -> the outcome `quire ingest` shows.
ENDED = {"indexed": "ingested", "empty": "empty", "unsupported": "unsupported", "failed": "failed"}


class ApiIngester:
    """Uploads each file, then reads its version until its ingestion ends. With `retry_failed`
    it uploads nothing: it finds the documents whose latest version failed (`?status=failed`,
    every page) and retries those versions, as the local database's ingester does."""

    page_size = 100  # failed documents a request, with --retry-failed

    def __init__(self, client: Quire, *, poll_seconds: float = 0.5) -> None:
        self.client = client
        self.poll_seconds = poll_seconds

    def ingest(
        self,
        paths: list[Path],
        *,
        collection: str,
        tags: tuple[str, ...],
        source_key: str | None,
        retry_failed: bool,
        console: Console,
    ) -> list[Outcome]:
        files = keyed_files(paths, source_key=source_key)
        missing = [p for p, _ in files if not p.exists()]
        if missing:
            raise QuireError(f"no such file: {missing[0]}")
        if retry_failed:
            outcomes = self._failed(collection, files if paths else None)
            if not outcomes:
                console.print("No failed version to retry.")
                return []
        elif files:
            outcomes = [Outcome(path, key) for path, key in files]
        else:
            console.print("Nothing to ingest.")
            return []
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            starting = progress.add_task("retrying" if retry_failed else "uploading", total=len(outcomes))
            for outcome in outcomes:
                if retry_failed:
                    self._retry(outcome)
                else:
                    self._upload(outcome, collection, tags)
                progress.advance(starting)
            pending = [o for o in outcomes if o.status == "pending"]
            following = progress.add_task("ingesting", total=len(pending), visible=bool(pending))
            while pending:
                time.sleep(self.poll_seconds)
                # Versions are ingested about in upload order: reading them in that order up to
                # the first one still going costs a request or two a round, not one per file
                # (the API's rate limit counts them).
                while pending and self._ended(pending[0]):
                    pending.pop(0)
                    progress.advance(following)
        return outcomes

    def _failed(self, collection: str, files: list[tuple[Path, str]] | None) -> list[Outcome]:
        """The failed latest versions to retry, by source key: of these files' documents, or of
        the whole collection. All of them are read before the first retry, which takes its
        document out of the filter the pages are read by."""
        paths = {key: path for path, key in files or []}
        outcomes = []
        for document in self.client.documents(collection=collection, status="failed", limit=self.page_size):
            key = document.source_key
            if files is None or key in paths:
                # Versions are numbered from 1: the latest is the version_count-th.
                found = Outcome(paths.get(key), key, document_id=uuid.UUID(document.id))
                found.number = document.version_count
                outcomes.append(found)
        return sorted(outcomes, key=lambda o: o.key)

    def _retry(self, outcome: Outcome) -> None:
        try:
            version = self.client.retry_version(str(outcome.document_id), outcome.number)
        except QuireError as error:  # retried by someone else meanwhile, say
            outcome.status, outcome.reason = "failed", str(error)
            return
        outcome.version_id = uuid.UUID(version.id)

    def _upload(self, outcome: Outcome, collection: str, tags: tuple[str, ...]) -> None:
        assert outcome.path is not None
        try:
            upload = self.client.upload(
                outcome.path, collection=collection, source_key=outcome.key, tags=tags
            )
        except (OSError, QuireError) as error:
            outcome.status, outcome.reason = "failed", str(error)
            return
        outcome.document_id, outcome.version_id = uuid.UUID(upload.document_id), uuid.UUID(upload.version_id)
        outcome.number = upload.version_number
        if not upload.created and not upload.retried:
            outcome.status, outcome.reason = "unchanged", f"same bytes as version {upload.version_number}"

    def _ended(self, outcome: Outcome) -> bool:
        document = self.client.document(str(outcome.document_id))
        version = next((v for v in document.versions if v.id == str(outcome.version_id)), None)
        if version is None or version.status not in ENDED:
            return False
        outcome.status, outcome.reason = ENDED[version.status], version.status_reason or ""
        outcome.warnings = [
            w.get("message", str(w)) if isinstance(w, dict) else str(w) for w in version.warnings
        ]
        return True


@friendly
def ingest(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(metavar="PATH...", help="Files and folders (read recursively, hidden ones skipped)."),
    ] = None,
    collection: Annotated[
        str, typer.Option("--collection", "-c", metavar="NAME", help="Collection to file the documents in.")
    ] = "default",
    tag: Annotated[
        list[str] | None, typer.Option(metavar="TAG", help="Tag for every document (repeatable).")
    ] = None,
    source_key: Annotated[
        str | None,
        typer.Option(
            metavar="KEY", help="The document the one file given is a version of (default: its file name)."
        ),
    ] = None,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Upload nothing: ingest again, from their stored bytes, the failed latest versions "
            "of the documents of the files given, or of every document in the collection when no "
            "path is given.",
        ),
    ] = False,
    as_json: JsonOption = False,
    tenant: TenantOption = "default",
) -> None:
    """Upload documents and wait until each is searchable, failed or unchanged.

    Each file is a version of the document named by its collection and its source key: its path
    below the folder given (policies/leave.md), or the name of a file given directly, whatever
    the current folder. New bytes make a new version, the same bytes nothing, the bytes of a
    version whose ingestion failed a retry of it."""
    if not paths and not retry_failed:
        raise QuireError("name the files or folders to ingest (or use --retry-failed)")
    client = api_client()
    ingester: Ingester = ApiIngester(client) if client else LocalIngester(tenant)
    outcomes = ingester.ingest(
        paths or [],
        collection=collection,
        tags=tuple(tag or ()),
        source_key=source_key,
        retry_failed=retry_failed,
        console=err if as_json else out,  # progress goes to stderr when stdout is for JSON
    )
    failures = sum(1 for o in outcomes if o.status in ("failed", "unsupported"))
    if as_json:
        print_json({"outcomes": [o.public() for o in outcomes], "failed": failures})
    elif outcomes:
        summarise(outcomes, out)
    if failures:
        raise typer.Exit(1)
