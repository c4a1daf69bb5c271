"""Migration 0017: versions carry text quality warnings; versions parsed before carry none."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
from alembic import command

from quire.app.bootstrap import alembic_config, migrate
from quire.core.db import libpq_url
from quire.core.embedded import EmbeddedPostgres
from quire.core.settings import Settings
from tests.migrations import empty_database


def test_versions_parsed_before_have_no_warnings(postgres: EmbeddedPostgres, tmp_path: Path) -> None:
    url = empty_database(postgres, "quire_migration_0017")
    migrate(url, "0016")
    tenant, document = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("INSERT INTO core_tenant (id, name, created_at) VALUES (%s, 'old', now())", [tenant])
        conn.execute(
            "INSERT INTO content_document (id, tenant_id, collection, source_key, title, tags, metadata,"
            " version_count, created_at, updated_at)"
            " VALUES (%s, %s, 'default', 'a.md', 'a', '[]', '{}', 1, now(), now())",
            [document, tenant],
        )
        conn.execute(
            "INSERT INTO content_version (id, tenant_id, document_id, number, sha256, size_bytes, filename,"
            " content_type, blob_key, status, element_count, chunk_count, created_at)"
            " VALUES (%s, %s, %s, 1, 'x', 1, 'a.md', 'text/markdown', 'k', 'indexed', 0, 0, now())",
            [uuid.uuid4(), tenant, document],
        )

    migrate(url, "0017")
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        assert conn.execute("SELECT warnings FROM content_version").fetchall() == [([],)]

    command.downgrade(alembic_config(url, Settings(data_dir=tmp_path)), "-1")
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'content_version'"
        ).fetchall()
        assert ("warnings",) not in columns
