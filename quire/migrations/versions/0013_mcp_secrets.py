"""mcp secrets: MCP server headers, environment values and URL secrets encrypted at rest

The values of `env` and `headers` (plain JSONB) move to `credentials`, one Fernet token holding
the environment and header values and the whole URL when its query may carry a token;
`env_names` and `header_names` keep the names the API shows, and `url` keeps the URL without its
query. A URL with credentials in it (user:password@) loses them to an `Authorization: Basic`
header, which is what the HTTP client made of them: Quire no longer accepts such URLs.

`env` and `headers` are emptied, not dropped, so that processes of the previous release still
running during a deploy read no secret but do not fail (they connect without credentials until
they are replaced); a later release drops them.

The key is derived from the installation's secret, so `quire migrate` must see the same
QUIRE_SECRET_KEY (or the same data folder's secret-key file) as the API and the workers. A
database without MCP servers needs no key.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

import base64
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects.postgresql import JSONB

from quire.agent.mcp.access import credentials_encryptor
from quire.core.encryption import Encryptor
from quire.core.secrets import secret_key
from quire.core.settings import Settings, load_settings

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "agent_mcp_server"


def encryptor() -> Encryptor:
    """The key of the installation `quire migrate` runs for (its settings, else the environment's)."""
    settings: Settings = context.config.attributes.get("settings") or load_settings()
    return credentials_encryptor(secret_key(configured=settings.secret_key, data_dir=settings.data_dir))


def netloc(host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


def split_url(url: str) -> tuple[str, str, str | None]:
    """(the URL without credentials, the same without query either, a Basic header of the credentials)."""
    parts = urlsplit(url)
    where = netloc(parts.hostname or "", parts.port)
    basic = None
    if parts.username is not None or parts.password is not None:
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        basic = "Basic " + base64.b64encode(pair.encode()).decode()
    full = urlunsplit((parts.scheme, where, parts.path, parts.query, ""))
    shown = urlunsplit((parts.scheme, where, parts.path, "", ""))
    return full, shown, basic


def upgrade() -> None:
    op.add_column(TABLE, sa.Column("env_names", JSONB(), nullable=False, server_default="[]"))
    op.add_column(TABLE, sa.Column("header_names", JSONB(), nullable=False, server_default="[]"))
    op.add_column(TABLE, sa.Column("credentials", sa.Text(), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.text(f"SELECT id, env, headers, url FROM {TABLE}")).fetchall()
    box = encryptor() if rows else None
    for server_id, env, headers, url in rows:
        assert box is not None
        headers = dict(headers or {})
        sealed: dict[str, Any] = {"env": dict(env or {}), "headers": headers}
        shown = url
        if url:
            full, shown, basic = split_url(url)
            if basic and not any(name.lower() == "authorization" for name in headers):
                headers["Authorization"] = basic
            if full != shown:
                sealed["url"] = full
        connection.execute(
            sa.text(
                f"UPDATE {TABLE} SET url = :url, credentials = :credentials,"
                " env_names = CAST(:env_names AS jsonb), header_names = CAST(:header_names AS jsonb)"
                " WHERE id = :id"
            ),
            {
                "id": server_id,
                "url": shown,
                "credentials": box.encrypt(sealed),
                "env_names": json.dumps(sorted(sealed["env"])),
                "header_names": json.dumps(sorted(headers)),
            },
        )
    op.execute(f"UPDATE {TABLE} SET env = '{{}}', headers = '{{}}'")
    op.alter_column(TABLE, "env", server_default="{}")  # this release no longer writes them
    op.alter_column(TABLE, "headers", server_default="{}")
    op.alter_column(TABLE, "credentials", nullable=False)
    op.alter_column(TABLE, "env_names", server_default=None)
    op.alter_column(TABLE, "header_names", server_default=None)


def downgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.text(f"SELECT id, url, credentials FROM {TABLE}")).fetchall()
    box = encryptor() if rows else None
    for server_id, url, credentials in rows:
        assert box is not None
        opened = box.decrypt(credentials)
        connection.execute(
            sa.text(
                f"UPDATE {TABLE} SET url = :url, env = CAST(:env AS jsonb), headers = CAST(:headers AS jsonb)"
                " WHERE id = :id"
            ),
            {
                "id": server_id,
                "url": opened.get("url") or url,
                "env": json.dumps(opened.get("env") or {}),
                "headers": json.dumps(opened.get("headers") or {}),
            },
        )
    op.alter_column(TABLE, "env", server_default=None)
    op.alter_column(TABLE, "headers", server_default=None)
    op.drop_column(TABLE, "credentials")
    op.drop_column(TABLE, "env_names")
    op.drop_column(TABLE, "header_names")
