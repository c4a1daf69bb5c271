"""Documents by their latest version: what was ingested, how it ended, and why.

A document's latest version is its highest-numbered one, whatever its status: the one a person
uploaded last, which is not always the one search uses (`Document.latest_version_id`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Subquery
from sqlmodel import Session, col, func, select

from quire.content.models import Document, Version, VersionStatus


@dataclass(frozen=True)
class DocumentRow:
    document: Document
    latest: Version


def _latest_numbers() -> Subquery:
    """Each document's highest version number."""
    return (
        select(Version.document_id, func.max(Version.number).label("number"))
        .group_by(col(Version.document_id))
        .subquery()
    )


def _filters(*, status: VersionStatus | None, collection: str | None, include_deleted: bool) -> list[Any]:
    filters: list[Any] = []
    if status is not None:
        filters.append(col(Version.status) == status)
    if collection:
        filters.append(col(Document.collection) == collection)
    if not include_deleted:
        filters.append(col(Document.deleted_at).is_(None))
    return filters


def list_latest_versions(
    session: Session,
    *,
    status: VersionStatus | None = None,
    collection: str | None = None,
    include_deleted: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[DocumentRow], int]:
    """Documents with their latest version, most recently changed first, and how many match."""
    latest = _latest_numbers()
    on_latest = (latest.c.document_id == Version.document_id) & (latest.c.number == Version.number)
    filters = _filters(status=status, collection=collection, include_deleted=include_deleted)
    query = (
        select(Document, Version)
        .join(Version, col(Version.document_id) == col(Document.id))
        .join(latest, on_latest)
        .where(*filters)
        .order_by(col(Document.updated_at).desc(), col(Document.id))
        .offset(offset)
        .limit(limit)
    )
    count = (
        select(func.count())
        .select_from(Document)
        .join(Version, col(Version.document_id) == col(Document.id))
        .join(latest, on_latest)
        .where(*filters)
    )
    rows = [DocumentRow(document=d, latest=v) for d, v in session.exec(query).all()]
    return rows, int(session.exec(count).one())


def latest_status_counts(
    session: Session, *, collection: str | None = None, include_deleted: bool = False
) -> dict[VersionStatus, int]:
    """How many documents' latest version has each status (statuses no document has are left out)."""
    latest = _latest_numbers()
    query = (
        select(Version.status, func.count())
        .select_from(Document)
        .join(Version, col(Version.document_id) == col(Document.id))
        .join(latest, (latest.c.document_id == Version.document_id) & (latest.c.number == Version.number))
        .where(*_filters(status=None, collection=collection, include_deleted=include_deleted))
        .group_by(col(Version.status))
    )
    return {VersionStatus(status): int(n) for status, n in session.exec(query).all()}


def versions_of(session: Session, *, document_id: uuid.UUID) -> list[Version]:
    """The document's versions, oldest first."""
    query = select(Version).where(Version.document_id == document_id).order_by(col(Version.number))
    return list(session.exec(query).all())
