"""Migration 0013 encrypts the MCP server secrets already stored in plain JSONB, and moves
credentials out of URLs into a header."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import psycopg
import pytest
from alembic import command

from quire.app.bootstrap import alembic_config, migrate
from quire.core.db import libpq_url
from quire.core.embedded import EmbeddedPostgres
from quire.core.encryption import Encryptor, UndecryptableSecret
from quire.core.secrets import derive
from quire.core.settings import Settings
from tests.migrations import empty_database

SECRET_KEY = "m" * 40
SECRETS = ["env-secret-5512", "hdr-secret-6623", "url-pass-7734", "query-secret-8845"]


@pytest.fixture
def old_database(postgres: EmbeddedPostgres) -> str:
    """A database at revision 0012 with two MCP servers whose secrets are stored in plain JSONB."""
    url = empty_database(postgres, "quire_migration_test")
    migrate(url, "0012")
    tenant = uuid.uuid4()
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("INSERT INTO core_tenant (id, name, created_at) VALUES (%s, 'old', now())", [tenant])
        insert = (
            "INSERT INTO agent_mcp_server (id, tenant_id, name, transport, command, args, env, url, headers,"
            " enabled, tool_count, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, true, 0, now())"
        )
        conn.execute(
            insert,
            [
                uuid.uuid4(), tenant, "cmd", "stdio", "mcp-thing", json.dumps(["--fast"]),
                json.dumps({"THING_TOKEN": "env-secret-5512"}), None, json.dumps({}),
            ],
        )  # fmt: skip
        conn.execute(
            insert,
            [
                uuid.uuid4(), tenant, "web", "http", None, "[]", "{}",
                "https://robot:url-pass-7734@mcp.example.com/v1/mcp?key=query-secret-8845",
                json.dumps({"X-Api-Key": "hdr-secret-6623"}),
            ],
        )  # fmt: skip
    return url


def downgrade(url: str, revision: str, settings: Settings) -> None:
    command.downgrade(alembic_config(url, settings), revision)


def rows(url: str) -> dict[str, dict[str, object]]:
    with psycopg.connect(libpq_url(url)) as conn:
        found = conn.execute("SELECT name, row_to_json(s) FROM agent_mcp_server s").fetchall()
    return {name: row for name, row in found}


def test_existing_secrets_are_encrypted_and_url_credentials_become_a_header(
    old_database: str, tmp_path: Path
) -> None:
    migrate(old_database, settings=Settings(data_dir=tmp_path, secret_key=SECRET_KEY))
    stored = rows(old_database)
    assert not any(secret in json.dumps(stored) for secret in SECRETS), stored
    box = Encryptor(derive(SECRET_KEY.encode(), "mcp-credentials"), what="MCP server credentials")

    # Emptied, not dropped: the previous release's processes still read them during a deploy.
    assert all(row["env"] == {} and row["headers"] == {} for row in stored.values())

    cmd = stored["cmd"]
    assert cmd["env_names"] == ["THING_TOKEN"] and cmd["header_names"] == [] and cmd["args"] == ["--fast"]
    assert box.decrypt(str(cmd["credentials"])) == {"env": {"THING_TOKEN": "env-secret-5512"}, "headers": {}}

    web = stored["web"]
    assert web["url"] == "https://mcp.example.com/v1/mcp"
    assert web["header_names"] == ["Authorization", "X-Api-Key"]
    basic = "Basic " + base64.b64encode(b"robot:url-pass-7734").decode()
    assert box.decrypt(str(web["credentials"])) == {
        "env": {},
        "headers": {"Authorization": basic, "X-Api-Key": "hdr-secret-6623"},
        "url": "https://mcp.example.com/v1/mcp?key=query-secret-8845",
    }
    assert not (tmp_path / "secret-key").exists()  # QUIRE_SECRET_KEY was used, nothing was made

    # Back down, the plain columns return (with the credentials left in the header).
    downgrade(old_database, "0012", Settings(data_dir=tmp_path, secret_key=SECRET_KEY))
    web = rows(old_database)["web"]
    assert web["url"] == "https://mcp.example.com/v1/mcp?key=query-secret-8845"
    assert web["headers"] == {"Authorization": basic, "X-Api-Key": "hdr-secret-6623"}


def test_a_downgrade_with_another_key_names_quire_secret_key(old_database: str, tmp_path: Path) -> None:
    migrate(old_database, settings=Settings(data_dir=tmp_path, secret_key=SECRET_KEY))
    with pytest.raises(UndecryptableSecret, match="QUIRE_SECRET_KEY"):
        downgrade(old_database, "0012", Settings(data_dir=tmp_path, secret_key="n" * 40))


def test_a_database_without_mcp_servers_needs_no_key(postgres: EmbeddedPostgres, tmp_path: Path) -> None:
    url = empty_database(postgres, "quire_migration_empty")
    migrate(url, settings=Settings(data_dir=tmp_path))
    assert not (tmp_path / "secret-key").exists()
