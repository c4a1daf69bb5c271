"""Cursors: what a page gives out, the next page reads back, and nothing else."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest

from quire.core.pages import InvalidCursor, decode_cursor, encode_cursor, page_of

MOMENT = datetime(2026, 12, 4, 14, 31, 12, 123456, tzinfo=UTC)


def test_a_cursor_gives_back_the_key_it_was_made_from() -> None:
    key = (MOMENT, uuid.UUID(int=7))
    assert decode_cursor(encode_cursor(key), (datetime, uuid.UUID)) == key
    assert decode_cursor(encode_cursor(("handbook",)), (str,)) == ("handbook",)
    assert decode_cursor(encode_cursor((42,)), (int,)) == (42,)


@pytest.mark.parametrize(
    "text",
    [
        "not-a-cursor",
        encode_cursor(("handbook",)),  # another list's: a name where a time and an id belong
        encode_cursor((MOMENT, uuid.UUID(int=7), 3)),  # one part too many
        base64.urlsafe_b64encode(b'["2026-12-04T14:31:12", "00000000-0000-0000-0000-000000000007"]').decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_a_cursor_this_list_did_not_give_out_is_refused(text: str) -> None:
    with pytest.raises(InvalidCursor) as refused:
        decode_cursor(text, (datetime, uuid.UUID))
    assert refused.value.code == "invalid_cursor" and text in str(refused.value)


def test_pages_of_a_list_in_memory_give_every_row_once() -> None:
    rows = list(range(1, 8))
    seen: list[int] = []
    cursor = None
    while True:
        page = page_of(rows, key=lambda n: (n,), types=(int,), cursor=cursor, limit=3)
        assert page.count == 7
        seen.extend(page.rows)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == rows
