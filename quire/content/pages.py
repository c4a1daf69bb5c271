"""A version's elements and chunks, a page at a time. A version never changes, so a cursor is the
position of the last item of a page, and the next page starts after it."""

from __future__ import annotations

import base64
import binascii
import uuid

from sqlmodel import col, func, select

from quire.content.errors import InvalidCursor
from quire.content.models import Chunk, Element, VersionChunk, VersionChunks, VersionElement, VersionElements
from quire.content.service import get_version
from quire.core.db import TenantSession

CURSOR_PREFIX = "position:"


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"{CURSOR_PREFIX}{position}".encode()).decode().rstrip("=")


def decode_cursor(text: str) -> int:
    """The position a cursor names, or InvalidCursor."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raw = ""
    number = raw.removeprefix(CURSOR_PREFIX)
    if not raw.startswith(CURSOR_PREFIX) or not number.isdigit():
        raise InvalidCursor(f"the cursor {text!r} is not one a page of this version gave out")
    return int(number)


def _next_cursor(positions: list[int], limit: int) -> str | None:
    # One row more than the page was read: it says whether another page follows.
    return encode_cursor(positions[limit - 1]) if len(positions) > limit else None


def element_page(
    session: TenantSession, *, document_id: uuid.UUID, number: int, limit: int, cursor: str | None
) -> VersionElements:
    """A page of a version's elements, in order; 404 as the version itself when out of sight."""
    version = get_version(session, document_id=document_id, number=number)
    after = decode_cursor(cursor) if cursor is not None else -1
    query = select(Element).where(Element.version_id == version.id)
    count = session.exec(select(func.count()).select_from(query.subquery())).one()
    query = query.where(col(Element.ord) > after)
    rows = list(session.exec(query.order_by(col(Element.ord)).limit(limit + 1)))
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
            for e in rows[:limit]
        ],
        count=int(count),
        next_cursor=_next_cursor([e.ord for e in rows], limit),
    )


def chunk_page(
    session: TenantSession, *, document_id: uuid.UUID, number: int, limit: int, cursor: str | None
) -> VersionChunks:
    """A page of a version's chunks, in order; 404 as the version itself when out of sight."""
    version = get_version(session, document_id=document_id, number=number)
    after = decode_cursor(cursor) if cursor is not None else -1
    query = select(Chunk).where(Chunk.version_id == version.id)
    count = session.exec(select(func.count()).select_from(query.subquery())).one()
    query = query.where(col(Chunk.ord) > after)
    rows = list(session.exec(query.order_by(col(Chunk.ord)).limit(limit + 1)))
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
            for c in rows[:limit]
        ],
        count=int(count),
        next_cursor=_next_cursor([c.ord for c in rows], limit),
    )
