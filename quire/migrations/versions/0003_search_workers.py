"""core: the lexical search index (BM25 postings and corpus statistics), worker heartbeats

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from quire.migrations.tenancy import enable_tenant_isolation

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "core_search_posting",
        sa.Column(
            "tenant_id",
            sa.Uuid(),
            sa.ForeignKey("core_tenant.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("index_name", sa.String(40), nullable=False),
        sa.Column("lexeme", sa.Text(), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("tf", sa.Integer(), nullable=False),
        sa.Column("doc_len", sa.Integer(), nullable=False),
    )
    # Serves document frequencies and scoring with index-only scans.
    op.execute(
        "ALTER TABLE core_search_posting ADD CONSTRAINT pk_core_search_posting "
        "PRIMARY KEY (tenant_id, index_name, lexeme, item_id) INCLUDE (tf, doc_len)"
    )
    op.create_index(
        "ix_core_search_posting_item", "core_search_posting", ["tenant_id", "index_name", "item_id"]
    )
    enable_tenant_isolation("core_search_posting")

    op.create_table(
        "core_search_stats",
        sa.Column(
            "tenant_id",
            sa.Uuid(),
            sa.ForeignKey("core_tenant.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("index_name", sa.String(40), nullable=False),
        sa.Column("docs", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "index_name"),
    )
    enable_tenant_isolation("core_search_stats")

    # Worker processes say they are alive (readiness, `quire ingest`, the operator's console).
    op.create_table(
        "core_worker",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("hostname", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("core_worker")
    op.drop_table("core_search_stats")
    op.drop_table("core_search_posting")
