"""Migration 0016: an idempotency key belongs to one program (tenant, program, key) and runs carry
the hash of the request their key was given with; runs started before keep their keys."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from alembic import command

from quire.app.bootstrap import alembic_config, migrate
from quire.core.db import libpq_url
from quire.core.embedded import EmbeddedPostgres
from quire.core.settings import Settings
from tests.migrations import empty_database

INSERT = (
    "INSERT INTO runtime_run (id, tenant_id, program, program_version, input, status, idempotency_key,"
    " created_at, updated_at) VALUES (%s, %s, %s, 1, '{}', 'completed', %s, now(), now())"
)


@pytest.fixture
def old_database(postgres: EmbeddedPostgres) -> tuple[str, uuid.UUID]:
    """A database at revision 0015 with a tenant and one run started with the key "k"."""
    url = empty_database(postgres, "quire_migration_0016")
    migrate(url, "0015")
    tenant = uuid.uuid4()
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("INSERT INTO core_tenant (id, name, created_at) VALUES (%s, 'old', now())", [tenant])
        conn.execute(INSERT, [uuid.uuid4(), tenant, "agent.answer", "k"])
    return url, tenant


def test_a_key_becomes_the_programs_and_old_runs_keep_theirs(
    old_database: tuple[str, uuid.UUID], tmp_path: Path
) -> None:
    url, tenant = old_database
    migrate(url, "0016")
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        old = conn.execute("SELECT idempotency_key, request_hash FROM runtime_run").fetchall()
        assert old == [("k", None)]
        conn.execute(INSERT, [uuid.uuid4(), tenant, "test.other", "k"])  # another program: allowed
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(INSERT, [uuid.uuid4(), tenant, "agent.answer", "k"])

    # Back down, a key is the tenant's again: the older run keeps it.
    command.downgrade(alembic_config(url, Settings(data_dir=tmp_path)), "-1")
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        keys = conn.execute(
            "SELECT program, idempotency_key FROM runtime_run ORDER BY created_at, id"
        ).fetchall()
        assert sorted(keys, key=str) == sorted([("agent.answer", "k"), ("test.other", None)], key=str)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(INSERT, [uuid.uuid4(), tenant, "test.third", "k"])
