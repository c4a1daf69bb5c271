"""Migration 0019: catalog tools gain an empty word vector; the tools already there stay as they
were until their next sync fills it (tests/agent/test_catalog_search.py shows that)."""

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


def test_tools_keep_their_rows_and_gain_an_empty_word_vector(
    postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    url = empty_database(postgres, "quire_migration_0019")
    migrate(url, "0018")
    tenant, tool = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("INSERT INTO core_tenant (id, name, created_at) VALUES (%s, 'old', now())", [tenant])
        conn.execute(
            "INSERT INTO agent_tool (id, tenant_id, name, source, summary, description, parameters, tags,"
            " role, side_effects, requires_approval, examples, content_hash, updated_at)"
            " VALUES (%s, %s, 'weather', 'mcp', 'The forecast.', '', '{}', '[]', 'reader', false, false,"
            " '[]', 'h', now())",
            [tool, tenant],
        )

    migrate(url, "0019")
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        rows = conn.execute("SELECT id, name, content_hash, word_embedding FROM agent_tool").fetchall()
        assert rows == [(tool, "weather", "h", None)]

    command.downgrade(alembic_config(url, Settings(data_dir=tmp_path)), "-1")
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'agent_tool'"
        ).fetchall()
        assert ("word_embedding",) not in columns and ("embedding",) in columns
