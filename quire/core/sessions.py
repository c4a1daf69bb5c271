"""Console sessions as rows of `core_console_session`: what lets logging out end a session for good.

The cookie carries a random token; the table keeps its SHA-256 only. A request finds its session
through `quire_console_session`, a SECURITY DEFINER function, because the tenant is not known
until the session is found; it answers only while the session is neither ended nor expired and
its API key is not revoked. Opening and ending a session happen once the tenant is known, in a
tenant session that row-level security keeps to that tenant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session

from quire.core.db import TenantSession
from quire.core.models import Role
from quire.core.tenancy import Caller

# The key is looked up in the tenant's own rows: a key that was revoked since it was checked
# opens nothing.
OPEN_SQL = text(
    """
    INSERT INTO core_console_session (id, tenant_id, api_key_id, token_hash, created_at, expires_at)
    SELECT :id, k.tenant_id, k.id, :token_hash, now(), now() + make_interval(secs => :seconds)
    FROM core_api_key AS k
    WHERE k.key_hash = :key_hash AND k.revoked_at IS NULL
    RETURNING id
    """
)

# An expired session can never be resumed; each login clears its tenant's, so the table holds
# no more than one session lifetime of logins.
PRUNE_SQL = text("DELETE FROM core_console_session WHERE expires_at <= now()")

FIND_SQL = text(
    "SELECT session_id, principal_id, tenant_id, name, role FROM quire_console_session(:token_hash)"
)

END_SQL = text("UPDATE core_console_session SET ended_at = now() WHERE id = :id AND ended_at IS NULL")


@dataclass(frozen=True)
class StoredSession:
    """A live console session: its row, and the caller it acts as."""

    id: uuid.UUID
    caller: Caller


def open_console_session(
    *, session: TenantSession, key_hash: str, token_hash: str, seconds: int
) -> uuid.UUID | None:
    """Record a login with the key of `key_hash`; None when that key is no longer live."""
    session.execute(PRUNE_SQL)
    opened = session.execute(
        OPEN_SQL, {"id": uuid.uuid4(), "token_hash": token_hash, "seconds": seconds, "key_hash": key_hash}
    ).scalar_one_or_none()
    return opened


def find_console_session(*, session: Session, token_hash: str) -> StoredSession | None:
    """The live session whose token has this hash, whatever its tenant; None if it has ended."""
    row = session.execute(FIND_SQL, {"token_hash": token_hash}).first()
    if row is None:
        return None
    caller = Caller(principal_id=row[1], tenant_id=row[2], name=row[3], role=Role(row[4]))
    return StoredSession(id=row[0], caller=caller)


def end_console_session(*, session: TenantSession, session_id: uuid.UUID) -> None:
    """Mark the session ended; its cookie opens nothing from now on."""
    session.execute(END_SQL, {"id": session_id})
