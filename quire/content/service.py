"""The content layer's public face: upload, read, diff, delete (search is in content.search)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from quire.content.elements import Side, diff
from quire.content.errors import (
    DocumentNotFound,
    EmptyUpload,
    InvalidUpload,
    UploadTooLarge,
    VersionNotFound,
    VersionNotRetryable,
)
from quire.content.indexing import withdraw_document
from quire.content.ingestion import PROGRAM, IngestState
from quire.content.models import (
    DEFAULT_COLLECTION,
    Document,
    DocumentDetail,
    DocumentPublic,
    DocumentVersionPublic,
    Element,
    ElementChange,
    ElementPublic,
    UploadResult,
    Version,
    VersionDetail,
    VersionDiff,
    VersionStatus,
)
from quire.content.retry import restart_ingestion, retry_refusal
from quire.core.blobs import BlobStore
from quire.core.db import TenantSession
from quire.core.errors import Forbidden
from quire.core.models import Role, utcnow
from quire.core.pages import Keyset, Page, read_page
from quire.core.tenancy import Caller
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


def collection_name(collection: str | None) -> str:
    """The collection an upload goes to, as stored: trimmed, at most 200 characters, or the default."""
    return (collection or DEFAULT_COLLECTION).strip()[:200] or DEFAULT_COLLECTION


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

    _require(uploader, Role.contributor)
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
            return UploadResult(
                document_id=document.id,
                version_id=latest.id,
                version_number=latest.number,
                run_id=run.id,
                created=False,
                retried=True,
                status=latest.status,
                message=f"retrying version {latest.number} (the same bytes; its ingestion failed: {failure})",
            )
        return UploadResult(
            document_id=document.id,
            version_id=latest.id,
            version_number=latest.number,
            run_id=latest.run_id,
            created=False,
            status=latest.status,
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
    return UploadResult(
        document_id=document.id,
        version_id=version.id,
        version_number=version.number,
        run_id=run.id,
        created=True,
        status=version.status,
        message=f"stored as version {version.number}; ingestion started",
    )


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
    _require(caller, Role.contributor)
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


def _require(caller: Caller | None, role: Role) -> None:
    # Checked where the action is taken, not only at the route that usually leads here.
    if caller is not None and not caller.allows(role):
        raise Forbidden(f"this needs the {role.value} role; the key's role is {caller.role.value}")


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


def get_document(session: TenantSession, *, document_id: uuid.UUID) -> Document:
    document = session.get(Document, document_id)
    if document is None:
        raise DocumentNotFound(f"no document {document_id}")
    return document


def document_public(document: Document) -> DocumentPublic:
    return DocumentPublic(
        id=document.id,
        collection=document.collection,
        source_key=document.source_key,
        title=document.title,
        tags=document.tags,
        metadata=document.meta,
        latest_version_id=document.latest_version_id,
        version_count=document.version_count,
        created_at=document.created_at,
        updated_at=document.updated_at,
        deleted_at=document.deleted_at,
    )


def describe_document(session: TenantSession, *, document_id: uuid.UUID) -> DocumentDetail:
    document = get_document(session, document_id=document_id)
    versions = session.exec(
        select(Version).where(Version.document_id == document_id).order_by(col(Version.number))
    ).all()
    return DocumentDetail(
        **document_public(document).model_dump(),
        versions=[DocumentVersionPublic.model_validate(v) for v in versions],
    )


def list_documents(
    session: TenantSession,
    *,
    collection: str | None = None,
    tag: str | None = None,
    title: str | None = None,
    status: VersionStatus | None = None,
    include_deleted: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Document], int]:
    """Documents, the most recently changed first (the console's pages)."""
    query = _documents(
        collection=collection, tag=tag, title=title, status=status, include_deleted=include_deleted
    )
    count = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(Document.updated_at).desc()).offset(offset).limit(limit)).all()
    return list(rows), int(count)


# The API's pages of documents: newest first by creation, which no later change of a document moves.
DOCUMENT_PAGES = Keyset((col(Document.created_at), col(Document.id)))


def page_documents(
    session: TenantSession,
    *,
    collection: str | None = None,
    tag: str | None = None,
    title: str | None = None,
    status: VersionStatus | None = None,
    include_deleted: bool = False,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[Document]:
    """A page of documents, newest first, after `cursor`."""
    query = _documents(
        collection=collection, tag=tag, title=title, status=status, include_deleted=include_deleted
    )
    return read_page(session, query, keyset=DOCUMENT_PAGES, cursor=cursor, limit=limit)


def _documents(
    *,
    collection: str | None,
    tag: str | None,
    title: str | None,
    status: VersionStatus | None,
    include_deleted: bool,
) -> SelectOfScalar[Document]:
    query = select(Document)
    if collection:
        query = query.where(Document.collection == collection)
    if tag:
        query = query.where(text("content_document.tags ? :tag").bindparams(tag=tag))
    if title:
        query = query.where(col(Document.title).ilike(f"%{title}%"))
    if not include_deleted:
        query = query.where(col(Document.deleted_at).is_(None))
    if status is not None:
        # The status of the latest version, the highest-numbered one: a document whose version 1
        # failed and whose version 2 was indexed has not failed.
        newer = aliased(Version)
        latest = select(Version.document_id).where(
            Version.status == status,
            ~select(newer.id)
            .where(newer.document_id == Version.document_id, newer.number > Version.number)
            .exists(),
        )
        query = query.where(col(Document.id).in_(latest))
    return query


def get_version(session: TenantSession, *, document_id: uuid.UUID, number: int) -> Version:
    version = session.exec(
        select(Version).where(Version.document_id == document_id, Version.number == number)
    ).first()
    if version is None:
        get_document(session, document_id=document_id)
        raise VersionNotFound(f"document {document_id} has no version {number}")
    return version


def describe_version(session: TenantSession, *, document_id: uuid.UUID, number: int) -> VersionDetail:
    version = get_version(session, document_id=document_id, number=number)
    elements = session.exec(
        select(Element).where(Element.version_id == version.id).order_by(col(Element.ord))
    ).all()
    return VersionDetail(
        **DocumentVersionPublic.model_validate(version).model_dump(),
        document_id=document_id,
        elements=[
            ElementPublic(
                id=e.element_id,
                ord=e.ord,
                type=e.type,
                text=e.text,
                html=e.html,
                page=e.page,
                section_path=e.section_path,
                content_hash=e.content_hash,
                metadata=e.meta,
            )
            for e in elements
        ],
    )


def hashes_seen_before(session: Session, version: Version, *, element_type: str | None = None) -> set[str]:
    """Content hashes of the elements of the document's previous version that has any.

    What a follow-up of ingestion (memory extraction, say) already saw, so that a new version
    yields only what it changed.
    """
    previous = session.exec(
        select(Version)
        .where(Version.document_id == version.document_id, col(Version.number) < version.number)
        .where(col(Version.element_count) > 0)
        .order_by(col(Version.number).desc())
    ).first()
    if previous is None:
        return set()
    query = select(Element.content_hash).where(Element.version_id == previous.id)
    if element_type is not None:
        query = query.where(Element.type == element_type)
    return set(session.exec(query).all())


def version_file(
    session: TenantSession, *, document_id: uuid.UUID, number: int, blobs: BlobStore
) -> tuple[bytes, Version]:
    version = get_version(session, document_id=document_id, number=number)
    return blobs.get(version.blob_key), version


def _sides(session: TenantSession, version: Version) -> list[Side]:
    return [
        Side(e.element_id, e.type, e.text, e.content_hash, e.page, e.section_path)
        for e in session.exec(
            select(Element).where(Element.version_id == version.id).order_by(col(Element.ord))
        )
    ]


def diff_versions(
    session: TenantSession, *, document_id: uuid.UUID, from_number: int, to_number: int
) -> VersionDiff:
    before = get_version(session, document_id=document_id, number=from_number)
    after = get_version(session, document_id=document_id, number=to_number)
    result = diff(_sides(session, before), _sides(session, after))

    def change(old: Side | None, new: Side | None) -> ElementChange:
        side = new or old
        assert side is not None
        return ElementChange(
            element_id=side.element_id,
            type=side.type,
            before=old.text if old else None,
            after=new.text if new else None,
            page=side.page,
            section_path=side.section_path,
        )

    return VersionDiff(
        document_id=document_id,
        from_version=from_number,
        to_version=to_number,
        added=[change(None, s) for s in result.added],
        removed=[change(s, None) for s in result.removed],
        changed=[change(old, new) for old, new in result.changed],
        unchanged=result.unchanged,
    )


def delete_document(
    session: TenantSession,
    *,
    document_id: uuid.UUID,
    reason: str | None,
    kicker: Kicker | None,
    follow_ups: Sequence[str] = (),
) -> Document:
    """Tombstone: the document leaves search; its versions and bytes stay for audit. Each program
    of `follow_ups` starts for it (memory drawn from it is retracted)."""
    document = session.get(Document, document_id, with_for_update=True)
    if document is None:
        raise DocumentNotFound(f"no document {document_id}")
    if document.deleted_at is not None:
        return document
    withdraw_document(session, document=document)
    document.deleted_at = utcnow()
    document.deleted_reason = reason
    session.add(document)
    for follow_up in follow_ups:
        create_run(
            session,
            program=follow_up,
            state={"document_id": str(document_id)},
            kicker=kicker,
            idempotency_key=f"{follow_up}:{document_id}:{document.deleted_at.isoformat()}",
        )
    session.flush()
    return document


# Collections have no row of their own: a collection is the name its live documents share.
COLLECTION_PAGES = Keyset((col(Document.collection),), descending=False)


def page_collections(session: TenantSession, *, cursor: str | None = None, limit: int = 50) -> Page[Any]:
    """A page of (collection, live documents in it), by name."""
    query = (
        select(col(Document.collection), func.count())
        .where(col(Document.deleted_at).is_(None))
        .group_by(col(Document.collection))
    )
    return read_page(session, query, keyset=COLLECTION_PAGES, cursor=cursor, limit=limit)


def list_collections(session: TenantSession) -> list[tuple[str, int]]:
    rows = session.execute(
        text(
            "SELECT collection, count(*) FROM content_document WHERE deleted_at IS NULL "
            "GROUP BY collection ORDER BY collection"
        )
    ).all()
    return [(row[0], int(row[1])) for row in rows]


def version_counts(session: Session) -> list[tuple[str, int, int]]:
    """(status, versions, pages) of document versions: in a system session, of every tenant,
    through a function that returns counts and nothing of the documents (the operator's metrics)."""
    rows = session.execute(text("SELECT status, versions, pages FROM quire_version_counts()")).all()
    return [(str(s), int(v), int(p)) for s, v, p in rows]


FINISHED_SQL = text(
    "SELECT id, status, status_reason, warnings FROM content_version "
    "WHERE id = ANY(CAST(:ids AS uuid[])) AND status = ANY(CAST(:final AS text[]))"
)
FINAL_STATUSES = [status.value for status in VersionStatus if status.final]


class FinishedVersion(NamedTuple):
    status: VersionStatus
    reason: str | None
    warnings: list[str]  # the messages of the version's text quality warnings


def finished_versions(session: Session, version_ids: list[uuid.UUID]) -> dict[uuid.UUID, FinishedVersion]:
    """Of these versions, those whose ingestion ended: their status, its reason, their warnings.

    The ids go as one array parameter, and only finished rows come back: `quire ingest` asks
    this every half second while workers ingest (a row and a parameter per pending version put
    it in a fifth of the command's profile samples on 240 files).
    """
    rows = session.execute(FINISHED_SQL, {"ids": version_ids, "final": FINAL_STATUSES}).all()
    return {
        row[0]: FinishedVersion(VersionStatus(row[1]), row[2], [w["message"] for w in row[3]]) for row in rows
    }


def version_with_bytes(session: Session, *, collection: str, source_key: str, sha256: str) -> Version | None:
    """The first version of a document (by collection and source key) whose bytes have this hash."""
    return session.exec(
        select(Version)
        .join(Document, col(Document.id) == col(Version.document_id))
        .where(Document.collection == collection, Document.source_key == source_key)
        .where(Version.sha256 == sha256)
        .order_by(col(Version.number))
    ).first()


@dataclass(frozen=True)
class Passage:
    """What a piece of evidence cites, as far as it still exists."""

    document: Document | None
    version: Version | None
    element: Element | None


def cited_passage(
    session: Session, *, document_id: uuid.UUID, version_id: uuid.UUID | None, element_id: uuid.UUID | None
) -> Passage:
    document = session.get(Document, document_id)
    version = session.get(Version, version_id) if version_id else None
    element = session.get(Element, (version.id, element_id)) if version is not None and element_id else None
    return Passage(document=document, version=version, element=element)


def version_by_id(session: Session, version_id: uuid.UUID) -> Version | None:
    return session.get(Version, version_id)


def elements_of(session: Session, version_id: uuid.UUID) -> list[Element]:
    """A version's elements, in order."""
    return list(
        session.exec(select(Element).where(Element.version_id == version_id).order_by(col(Element.ord)))
    )
