"""Pages of a list that hold still while rows are added: a cursor names the last row of a page by
the list's ordering key (a time, a number or a name, then whatever makes it unique), and the next
page starts after it. No offsets: a row inserted before the cursor never shifts the next page."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, func, literal, select, tuple_
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from quire.core.errors import InvalidRequest

Row = TypeVar("Row")
Key = tuple[datetime | uuid.UUID | int | str, ...]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

# The two query parameters of every list route.
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
CursorQuery = Annotated[
    str | None, Query(max_length=1000, description="`next_cursor` of the previous page; none for the first.")
]


class InvalidCursor(InvalidRequest):
    """A page cursor that this list did not give out."""

    code = "invalid_cursor"


class ListPage(BaseModel):
    """What every list answers beside its `data`: the envelope's other two fields."""

    count: int = Field(description="Items that match the filters, on every page.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


def encode_cursor(key: Key) -> str:
    parts = [value.isoformat() if isinstance(value, datetime) else value for value in key]
    raw = json.dumps([str(p) if isinstance(p, uuid.UUID) else p for p in parts], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str, types: Sequence[type]) -> Key:
    """The key a cursor holds, each part read as the type of its ordering column."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode())
        if not isinstance(parts, list) or len(parts) != len(types):
            raise ValueError("not a key of this list")
        key = tuple(_read(part, kind) for part, kind in zip(parts, types, strict=True))
    except (ValueError, TypeError, UnicodeDecodeError, binascii.Error):
        raise InvalidCursor(f"the cursor {text!r} is not one this list gave out") from None
    return key


def _read(part: object, kind: type) -> datetime | uuid.UUID | int | str:
    if kind is datetime and isinstance(part, str):
        moment = datetime.fromisoformat(part)
        if moment.tzinfo is None:
            raise ValueError("a cursor's time carries its zone")
        return moment
    if kind is uuid.UUID and isinstance(part, str):
        return uuid.UUID(part)
    if kind is int and isinstance(part, int) and not isinstance(part, bool):
        return part
    if kind is str and isinstance(part, str):
        return part
    raise ValueError(f"{part!r} is not a {kind.__name__}")


@dataclass(frozen=True)
class Keyset:
    """How a list is ordered: its key columns (together unique), all in one direction."""

    columns: tuple[Any, ...]
    descending: bool = True

    @property
    def types(self) -> tuple[type, ...]:
        # A decorated type (SQLModel's AutoString) names its Python type through the one it wraps.
        return tuple(
            getattr(column.type, "impl_instance", column.type).python_type for column in self.columns
        )

    def order_by(self) -> list[Any]:
        return [column.desc() if self.descending else column.asc() for column in self.columns]

    def after(self, key: Key) -> ColumnElement[bool]:
        """Rows past `key` in this ordering."""
        row = tuple_(*self.columns)
        bound = tuple_(
            *(literal(value, column.type) for value, column in zip(key, self.columns, strict=True))
        )
        return row < bound if self.descending else row > bound


@dataclass(frozen=True)
class Page(Generic[Row]):
    rows: list[Row]
    count: int
    next_cursor: str | None


def read_page(
    session: Session, query: Select[Any], *, keyset: Keyset, cursor: str | None, limit: int
) -> Page[Any]:
    """One page of `query`'s rows in `keyset`'s order, after `cursor`; `count` is of every row the
    query's filters keep. A query of one entity gives its rows as entities, of several as tuples."""
    count = session.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    width = len(query.column_descriptions)
    paged = query.add_columns(*keyset.columns)
    if cursor:
        paged = paged.where(keyset.after(decode_cursor(cursor, keyset.types)))
    rows = session.execute(paged.order_by(None).order_by(*keyset.order_by()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [row[0] if width == 1 else tuple(row[:width]) for row in rows]
    next_cursor = encode_cursor(tuple(rows[-1][width:])) if more and rows else None
    return Page(rows=items, count=int(count), next_cursor=next_cursor)


def page_of(
    rows: Sequence[Row], *, key: Callable[[Row], Key], types: Sequence[type], cursor: str | None, limit: int
) -> Page[Row]:
    """A page of rows already in memory and in ascending order of `key` (a list a service must
    read whole anyway, such as the audit chain it verifies)."""
    start = decode_cursor(cursor, types) if cursor else None
    after = [row for row in rows if start is None or key(row) > start]
    page = after[:limit]
    more = len(after) > limit
    return Page(
        rows=page, count=len(rows), next_cursor=encode_cursor(key(page[-1])) if more and page else None
    )
