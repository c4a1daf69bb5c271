"""A version's elements and chunks, a page at a time, in order: the core pager (`core.pages`)
keyed by position, which never changes within a version."""

from __future__ import annotations

import uuid
from typing import TypeVar

from sqlmodel import col, select

from quire.content.models import Chunk, Element, VersionChunk, VersionChunks, VersionElement, VersionElements
from quire.content.service import get_version
from quire.core.db import TenantSession
from quire.core.pages import Keyset, Page, read_page

Row = TypeVar("Row", Element, Chunk)


def _version_page(
    session: TenantSession,
    table: type[Row],
    *,
    document_id: uuid.UUID,
    number: int,
    limit: int,
    cursor: str | None,
) -> Page[Row]:
    """A page of `table`'s rows of one version, by position; 404 as the version when out of sight."""
    version = get_version(session, document_id=document_id, number=number)
    return read_page(
        session,
        select(table).where(table.version_id == version.id),
        keyset=Keyset((col(table.ord),), descending=False),
        cursor=cursor,
        limit=limit,
    )


def element_page(
    session: TenantSession, *, document_id: uuid.UUID, number: int, limit: int, cursor: str | None
) -> VersionElements:
    """A page of a version's elements, in order; 404 as the version itself when out of sight."""
    page = _version_page(session, Element, document_id=document_id, number=number, limit=limit, cursor=cursor)
    return VersionElements(
        data=[
            VersionElement(
                id=e.element_id,
                position=e.ord,
                type=e.type,
                text=e.text,
                html=e.html,
                page=e.page,
                section=e.section_path,
                content_hash=e.content_hash,
                metadata=e.meta,
            )
            for e in page.rows
        ],
        count=page.count,
        next_cursor=page.next_cursor,
    )


def chunk_page(
    session: TenantSession, *, document_id: uuid.UUID, number: int, limit: int, cursor: str | None
) -> VersionChunks:
    """A page of a version's chunks, in order; 404 as the version itself when out of sight."""
    page = _version_page(session, Chunk, document_id=document_id, number=number, limit=limit, cursor=cursor)
    return VersionChunks(
        data=[
            VersionChunk(
                id=c.id,
                position=c.ord,
                text=c.text,
                page=c.pages[0] if c.pages else None,
                pages=c.pages,
                section=c.section_path,
                element_ids=c.element_ids,
            )
            for c in page.rows
        ],
        count=page.count,
        next_cursor=page.next_cursor,
    )
