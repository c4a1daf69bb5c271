"""The content layer's public face for reading: documents, versions, their elements and files,
collections and counts; and deleting a document. Uploads are in `content.uploads`, retries in
`content.retry`, diffs in `content.comparison`, search in `content.search`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from quire.content.errors import DocumentNotFound, VersionNotFound
from quire.content.indexing import withdraw_document
from quire.content.models import (
    Document,
    DocumentDetail,
    DocumentPublic,
    DocumentVersionPublic,
    Element,
    ElementPublic,
    Version,
    VersionDetail,
    VersionStatus,
)
from quire.core.blobs import BlobStore
from quire.core.db import TenantSession
from quire.core.models import utcnow
from quire.core.pages import Keyset, Page, read_page
from quire.runtime.kicks import Kicker
from quire.runtime.service import create_run


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
