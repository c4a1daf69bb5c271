"""Migration 0018: versions carry their title; documents still titled by their file name take
their searchable version's first heading, and a title an upload named stays."""

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


def add_document(
    conn: psycopg.Connection, tenant: uuid.UUID, source_key: str, title: str, heading: str
) -> uuid.UUID:
    document, version = uuid.uuid4(), uuid.uuid4()
    conn.execute(
        "INSERT INTO content_document (id, tenant_id, collection, source_key, title, tags, metadata,"
        " version_count, created_at, updated_at)"
        " VALUES (%s, %s, 'default', %s, %s, '[]', '{}', 1, now(), now())",
        [document, tenant, source_key, title],
    )
    conn.execute(
        "INSERT INTO content_version (id, tenant_id, document_id, number, sha256, size_bytes, filename,"
        " content_type, blob_key, status, element_count, chunk_count, created_at)"
        " VALUES (%s, %s, %s, 1, 'x', 1, %s, 'text/markdown', 'k', 'indexed', 2, 0, now())",
        [version, tenant, document, source_key],
    )
    conn.execute("UPDATE content_document SET latest_version_id = %s WHERE id = %s", [version, document])
    for ord_, (kind, text) in enumerate(
        [("narrative_text", "Before."), ("title", heading), ("title", "Later")]
    ):
        conn.execute(
            "INSERT INTO content_element (tenant_id, version_id, element_id, document_id, ord, type, text,"
            " section_path, content_hash, metadata) VALUES (%s, %s, %s, %s, %s, %s, %s, '[]', 'h', '{}')",
            [tenant, version, uuid.uuid4(), document, ord_, kind, text],
        )
    return document


def test_documents_titled_by_their_file_name_take_their_first_heading(
    postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    url = empty_database(postgres, "quire_migration_0018")
    migrate(url, "0017")
    tenant = uuid.uuid4()
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("INSERT INTO core_tenant (id, name, created_at) VALUES (%s, 'old', now())", [tenant])
        by_name = add_document(conn, tenant, "docs/doc-v1.md", "doc-v1", "  Travel\n policy ")
        given = add_document(conn, tenant, "notes.md", "Named at upload", "Notes")

    migrate(url, "0018")
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        titles = dict(conn.execute("SELECT id, title FROM content_document").fetchall())
        assert titles == {by_name: "Travel policy", given: "Named at upload"}
        versions = dict(conn.execute("SELECT document_id, title FROM content_version").fetchall())
        assert versions == {by_name: "Travel policy", given: "Notes"}

    command.downgrade(alembic_config(url, Settings(data_dir=tmp_path)), "-1")
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'content_version'"
        ).fetchall()
        assert ("title",) not in columns
