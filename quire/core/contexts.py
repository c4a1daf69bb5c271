"""Signed transaction contexts: the proof that makes `quire.tenant_id` count.

Row-level security keys every tenant table on the transaction's tenant. A setting alone would
be forgeable: any SQL may call `set_config`. So the tenant goes with `quire.context`, the
HMAC-SHA256 of "tenant:<id>" under the installation's context key, and the policies accept the
tenant only when the signature holds (`quire_current_tenant()`, see `quire.migrations.tenancy`).
The database keeps the key where only the tables' owner reads it; the application derives it
from QUIRE_SECRET_KEY. SQL injected into a tenant transaction sees that tenant's signature and
cannot make another one. "system" signs the cross-tenant bookkeeping context.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from typing import Any

import psycopg

from quire.core.errors import ConfigurationError

PURPOSE = "db-context"
SYSTEM = "system"
BLOCK = 64  # SHA-256's block size: the HMAC key is padded to it

STORE_KEY_SQL = """
INSERT INTO core_context_key (id, key, inner_pad, outer_pad, updated_at)
VALUES (1, %(key)s, %(inner)s, %(outer)s, now())
ON CONFLICT (id) DO UPDATE SET key = EXCLUDED.key, inner_pad = EXCLUDED.inner_pad,
    outer_pad = EXCLUDED.outer_pad, updated_at = now()
WHERE core_context_key.key IS DISTINCT FROM EXCLUDED.key
"""


def sign(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def tenant_proof(key: bytes, tenant_id: uuid.UUID) -> str:
    return sign(key, f"tenant:{tenant_id}")


def system_proof(key: bytes) -> str:
    return sign(key, SYSTEM)


def pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC's inner and outer padded keys, so that SQL computes HMAC with sha256() alone."""
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def store_key(conn: psycopg.Connection[Any], key: bytes | None) -> bytes:
    """Keep `key` (or, with None, the stored one or a new random one) as the context key."""
    if key is None:
        row = conn.execute("SELECT key FROM core_context_key WHERE id = 1").fetchone()
        if row is not None:
            return bytes(row[0])
        key = secrets.token_bytes(32)
    inner, outer = pads(key)
    conn.execute(STORE_KEY_SQL, {"key": key, "inner": inner, "outer": outer})
    return key


def read_key(conn: psycopg.Connection[Any]) -> bytes:
    """The stored key: readable by the tables' owner only (tests and single-role set-ups)."""
    try:
        row = conn.execute("SELECT key FROM core_context_key WHERE id = 1").fetchone()
    except psycopg.errors.InsufficientPrivilege:
        raise ConfigurationError(
            "this database login cannot read the context key (as it should not): "
            "give Quire its QUIRE_SECRET_KEY"
        ) from None
    if row is None:
        raise ConfigurationError("the database has no context key yet: run `quire migrate`")
    return bytes(row[0])
