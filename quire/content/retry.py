"""Ingesting a version again after its ingestion failed: from its stored bytes, as a new run.

A retry starts clean: what the failed attempt wrote (elements, chunks) goes first, because the
new run parses from the start and would otherwise write them a second time. `failed_versions`
finds what a folder's retry takes: the live documents whose latest version failed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete
from sqlmodel import Session, col, func, select

from quire.content.errors import VersionNotRetryable
from quire.content.ingestion import PROGRAM, IngestState
from quire.content.models import Chunk, Document, Element, Version, VersionStatus, collection_name
from quire.content.service import get_version
from quire.core.db import TenantSession
from quire.core.models import Role
from quire.core.tenancy import Caller, require_role
from quire.runtime.kicks import Kicker
from quire.runtime.models import Run, RunStatus
from quire.runtime.service import create_run

# Ends that say nothing about the bytes: the run was given up on or stopped, mid-way.
ENDS_WITHOUT_AN_ANSWER = frozenset({RunStatus.failed, RunStatus.cancelled})


def retry_refusal(session: Session, version: Version) -> str | None:
    """Why `version` cannot be retried, or None when it can: its ingestion failed, or its run
    ended (failed, cancelled) before the version reached an end of its own."""
    label = f"version {version.number}"
    if version.status == VersionStatus.failed:
        return None
    if version.status in (VersionStatus.unsupported, VersionStatus.empty):
        why = f" ({version.status_reason})" if version.status_reason else ""
        return (
            f"{label} ended {version.status.value}{why}; the same bytes would end the same way, "
            "so upload the file in a form Quire can read instead"
        )
    if version.status == VersionStatus.indexed:
        return f"{label} is indexed; there is nothing to retry"
    run = session.get(Run, version.run_id) if version.run_id else None
    if run is None or run.status in ENDS_WITHOUT_AN_ANSWER:
        return None
    return (
        f"{label} is still being ingested (it is {version.status.value}, its run {run.id} is "
        f"{run.status.value}); retry it once that run has ended"
    )


def may_retry(session: Session, *, document: Document, version: Version) -> bool:
    """Whether a retry of `version` would start: what `retry_version` checks besides the
    caller's role, for offering the retry at all."""
    return document.deleted_at is None and retry_refusal(session, version) is None


def restart_ingestion(
    session: Session, *, version: Version, kicker: Kicker | None, owner: Caller | None
) -> Run:
    """Clear what the last attempt left and start a new ingestion run of `version` (locked by the caller)."""
    session.execute(delete(Chunk).where(Chunk.version_id == version.id))  # type: ignore[arg-type]
    session.execute(delete(Element).where(Element.version_id == version.id))  # type: ignore[arg-type]
    version.status = VersionStatus.stored
    version.status_reason = None
    version.error_code = None
    version.page_count = None
    version.element_count = 0
    version.chunk_count = 0
    version.indexed_at = None
    # No idempotency key: the version's lock and its status keep two retries from both starting.
    run, _ = create_run(
        session, program=PROGRAM, state=IngestState(version_id=version.id), kicker=kicker, owner=owner
    )
    version.run_id = run.id
    session.add(version)
    session.flush()
    return run


def retry_version(
    session: TenantSession,
    *,
    document_id: uuid.UUID,
    number: int,
    kicker: Kicker | None,
    caller: Caller | None,
) -> Version:
    """Ingest a version whose ingestion failed again, from its stored bytes, as a new run that
    belongs to `caller` (None: Quire itself). The same role as an upload may do it."""
    require_role(caller, Role.contributor)
    found = get_version(session, document_id=document_id, number=number)
    # The document first, as an upload locks it: an upload of the same bytes retries too.
    document = session.get(Document, document_id, with_for_update=True)
    version = session.get(Version, found.id, with_for_update=True, populate_existing=True)
    assert version is not None and document is not None
    if document.deleted_at is not None:
        raise VersionNotRetryable(
            f"document {document_id} is deleted; upload the file again to bring it back"
        )
    refusal = retry_refusal(session, version)
    if refusal is not None:
        raise VersionNotRetryable(refusal)
    restart_ingestion(session, version=version, kicker=kicker, owner=caller)
    return version


def failed_versions(
    session: TenantSession, *, collection: str, source_keys: Sequence[str] | None = None
) -> list[tuple[str, Version]]:
    """(source key, version) of the live documents of `collection` (of only these source keys,
    when given) whose latest version failed: what `quire ingest --retry-failed` retries. An older
    failed version is left alone: a newer one has taken its place."""
    latest = (
        select(Version.document_id, func.max(Version.number).label("number"))
        .group_by(col(Version.document_id))
        .subquery()
    )
    query = (
        select(Document.source_key, Version)
        .join(Version, col(Version.document_id) == col(Document.id))
        .join(latest, (latest.c.document_id == Version.document_id) & (latest.c.number == Version.number))
        .where(Document.collection == collection_name(collection), col(Document.deleted_at).is_(None))
        .where(Version.status == VersionStatus.failed)
        .order_by(col(Document.source_key))
    )
    if source_keys is not None:
        query = query.where(col(Document.source_key).in_(list(source_keys)))
    return [(key, version) for key, version in session.exec(query).all()]
