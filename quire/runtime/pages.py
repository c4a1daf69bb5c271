"""Pages of runs, newest first, that hold still while new runs start: a cursor names the last run
of a page by its creation time and id, and the next page starts after it."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime

from quire.runtime.errors import InvalidCursor
from quire.runtime.models import Run


@dataclass(frozen=True)
class RunCursor:
    created_at: datetime
    id: uuid.UUID

    @classmethod
    def after(cls, run: Run) -> RunCursor:
        return cls(created_at=run.created_at, id=run.id)

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> RunCursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            moment, _, run_id = raw.partition("|")
            cursor = cls(created_at=datetime.fromisoformat(moment), id=uuid.UUID(run_id))
        except (ValueError, UnicodeDecodeError, binascii.Error):
            cursor = None
        if cursor is None or cursor.created_at.tzinfo is None:
            raise InvalidCursor(f"the cursor {text!r} is not one a page of runs gave out")
        return cursor
