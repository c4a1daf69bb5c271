"""Uploads: the bytes stored first, then a document found or made for them and a version with
its ingestion run; the same bytes again make nothing new (or retry a version whose ingestion
failed). Also what a folder upload asks beforehand: which files would change nothing."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from quire.content.errors import EmptyUpload, InvalidUpload, UploadTooLarge
from quire.content.ingestion import PROGRAM, IngestState
from quire.content.models import DEFAULT_COLLECTION, Document, UploadResult, Version, collection_name
from quire.content.retry import restart_ingestion, retry_refusal
from quire.core.blobs import BlobStore
from quire.core.db import TenantSession
from quire.core.models import Role, utcnow
from quire.core.tenancy import Caller, require_role
from quire.runtime.kicks import Kicker
from quire.runtime.service import create_run


def clean_filename(filename: str | None) -> str:
    """The last component of an uploaded file name: no folders, no traversal, no control bytes."""
    name = PurePath((filename or "").replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable() and ch not in "\x00/")
    name = name.strip().lstrip(".") or ""
    if not name:
        raise InvalidUpload("the upload needs a file name (or a source_key)")
    return name[:255]


@dataclass(frozen=True)
class UploadRequest:
    data: bytes
    filename: str | None
    collection: str = DEFAULT_COLLECTION
    source_key: str | None = None
    title: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] | None = None
    declared_type: str | None = None


def upload(
    session: TenantSession,
    *,
    request: UploadRequest,
    blobs: BlobStore,
    kicker: Kicker | None,
    created_by: uuid.UUID | None,
    max_bytes: int,
    uploader: Caller | None = None,
) -> UploadResult:
    """Store an upload and start its ingestion; the same bytes as the latest version make nothing
    new, unless that version's ingestion failed: then it is retried.

    The ingestion run belongs to the `uploader` (who then follows it); None: Quire itself."""
    from quire.content.parsing import detect_content_type

    require_role(uploader, Role.contributor)
    if len(request.data) > max_bytes:
        raise UploadTooLarge(f"the file is {len(request.data)} bytes; the limit is {max_bytes}")
    if not request.data:
        raise EmptyUpload("the file is empty (0 bytes): there is nothing to ingest; nothing was stored")
    filename = clean_filename(request.filename or request.source_key)
    source_key = (request.source_key or filename).strip()[:1000]
    collection = collection_name(request.collection)
    sha256 = hashlib.sha256(request.data).hexdigest()
    key = blobs.put(request.data)  # the bytes are safe before anything else happens

    document = _lock_or_create_document(
        session, collection=collection, source_key=source_key, request=request
    )
    latest = session.exec(
        select(Version)
        .where(Version.document_id == document.id)
        .order_by(col(Version.number).desc())
        .limit(1)
    ).first()
    if latest is not None and latest.sha256 == sha256 and document.deleted_at is None:
        latest = session.get(Version, latest.id, with_for_update=True, populate_existing=True)
        assert latest is not None
        if retry_refusal(session, latest) is None:
            failure = latest.status_reason or latest.status.value
            run = restart_ingestion(session, version=latest, kicker=kicker, owner=uploader)
            return UploadResult.of(
                latest,
                run_id=run.id,
                created=False,
                retried=True,
                message=f"retrying version {latest.number} (the same bytes; its ingestion failed: {failure})",
            )
        return UploadResult.of(
            latest,
            run_id=latest.run_id,
            created=False,
            message=f"unchanged: the same bytes as version {latest.number}; no new version",
        )
    if document.deleted_at is not None:
        document.deleted_at = None
        document.deleted_reason = None
    version = Version(
        tenant_id=session.tenant_id,
        document_id=document.id,
        number=(latest.number + 1) if latest else 1,
        sha256=sha256,
        size_bytes=len(request.data),
        filename=filename,
        title=request.title[:1000] if request.title else None,
        content_type=detect_content_type(request.data, filename, request.declared_type),
        blob_key=key,
        created_by=created_by,
    )
    session.add(version)
    document.version_count = version.number
    document.updated_at = utcnow()
    if request.title:
        document.title = request.title[:1000]
    session.add(document)
    session.flush()
    run, _ = create_run(
        session,
        program=PROGRAM,
        state=IngestState(version_id=version.id),
        kicker=kicker,
        idempotency_key=f"ingest:{version.id}",
        owner=uploader,
    )
    version.run_id = run.id
    session.add(version)
    session.flush()
    return UploadResult.of(
        version, run_id=run.id, created=True, message=f"stored as version {version.number}; ingestion started"
    )


def unchanged_uploads(
    session: TenantSession, *, collection: str, hashes: dict[str, str]
) -> dict[str, tuple[uuid.UUID, int]]:
    """Of `hashes` (source key -> sha256 of the bytes), the keys whose latest live version holds
    exactly those bytes, with that version's id and number: uploading them would make nothing new.
    A failed version is left out: uploading its bytes again retries it.

    One query for a whole folder, so a re-run of `quire ingest` over unchanged files costs little.
    """
    if not hashes:
        return {}
    collection = collection_name(collection)
    rows = session.execute(
        text(
            "SELECT d.source_key, v.id, v.number "
            "FROM unnest(CAST(:keys AS text[]), CAST(:hashes AS text[])) AS u(source_key, sha256) "
            "JOIN content_document d ON d.collection = :collection AND d.source_key = u.source_key "
            "JOIN LATERAL (SELECT id, number, sha256, status FROM content_version "
            "              WHERE document_id = d.id ORDER BY number DESC LIMIT 1) AS v ON true "
            "WHERE d.deleted_at IS NULL AND v.sha256 = u.sha256 AND v.status <> 'failed'"
        ),
        {"keys": list(hashes), "hashes": list(hashes.values()), "collection": collection},
    ).all()
    return {row[0]: (row[1], row[2]) for row in rows}


def _lock_or_create_document(
    session: TenantSession, *, collection: str, source_key: str, request: UploadRequest
) -> Document:
    title = (request.title or PurePath(source_key).stem or source_key)[:1000]
    session.execute(
        text(
            "INSERT INTO content_document (id, tenant_id, collection, source_key, title, tags, metadata, "
            "version_count, created_at, updated_at) VALUES (:id, :tenant_id, :collection, :source_key, "
            ":title, CAST(:tags AS jsonb), CAST(:metadata AS jsonb), 0, now(), now()) "
            "ON CONFLICT (tenant_id, collection, source_key) DO NOTHING"
        ),
        {
            "id": uuid.uuid4(),
            "tenant_id": session.tenant_id,
            "collection": collection,
            "source_key": source_key,
            "title": title,
            "tags": _json(sorted(set(request.tags))),
            "metadata": _json(request.metadata or {}),
        },
    )
    document = session.exec(
        select(Document)
        .where(Document.collection == collection, Document.source_key == source_key)
        .with_for_update()
    ).one()
    if request.tags:
        document.tags = sorted(set(document.tags) | set(request.tags))
    if request.metadata:
        document.meta = {**document.meta, **request.metadata}
    return document


def _json(value: Any) -> str:
    from quire.core.db import dumps

    return dumps(value)


def version_with_bytes(session: Session, *, collection: str, source_key: str, sha256: str) -> Version | None:
    """The first version of a document (by collection and source key) whose bytes have this hash."""
    return session.exec(
        select(Version)
        .join(Document, col(Document.id) == col(Version.document_id))
        .where(Document.collection == collection, Document.source_key == source_key)
        .where(Version.sha256 == sha256)
        .order_by(col(Version.number))
    ).first()
