"""Migration tests: each builds its own empty database beside Quire's and migrates it step by step."""

from __future__ import annotations

import psycopg

from quire.core.db import libpq_url
from quire.core.embedded import EmbeddedPostgres


def empty_database(postgres: EmbeddedPostgres, name: str) -> str:
    """The URL of a new, empty database `name` on the embedded server (dropped first if left over)."""
    status = postgres.status()
    assert status.url is not None
    admin = libpq_url(status.url).replace("/quire?", "/postgres?")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return status.url.replace("/quire?", f"/{name}?")
