"""agent: the tool catalog and the MCP servers tools are imported from

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from quire.migrations.tenancy import enable_tenant_isolation

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def tenant() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "tenant_id", sa.Uuid(), sa.ForeignKey("core_tenant.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "agent_tool",
        sa.Column("id", sa.Uuid(), primary_key=True),
        tenant(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("parameters", JSONB(), nullable=False),
        sa.Column("tags", JSONB(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("side_effects", sa.Boolean(), nullable=False),
        sa.Column("requires_approval", sa.Boolean(), nullable=False),
        sa.Column("examples", JSONB(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("embedding", pgvector.sqlalchemy.Vector(384), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_agent_tool_name"),
    )
    op.create_index("ix_agent_tool_tenant_id", "agent_tool", ["tenant_id"])
    op.create_index("ix_agent_tool_source", "agent_tool", ["source"])
    op.create_index(
        "ix_agent_tool_embedding",
        "agent_tool",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )
    enable_tenant_isolation("agent_tool")

    op.create_table(
        "agent_mcp_server",
        sa.Column("id", sa.Uuid(), primary_key=True),
        tenant(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("transport", sa.String(20), nullable=False),
        sa.Column("command", sa.Text(), nullable=True),
        sa.Column("args", JSONB(), nullable=False),
        sa.Column("env", JSONB(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("headers", JSONB(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("tool_count", sa.Integer(), nullable=False),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_agent_mcp_server_name"),
    )
    op.create_index("ix_agent_mcp_server_tenant_id", "agent_mcp_server", ["tenant_id"])
    enable_tenant_isolation("agent_mcp_server")


def downgrade() -> None:
    op.drop_table("agent_mcp_server")
    op.drop_table("agent_tool")
