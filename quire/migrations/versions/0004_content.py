"""content: documents, versions, elements, chunks, the embedding cache

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from quire.migrations.tenancy import enable_tenant_isolation

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DIMENSIONS = 384


def tenant() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "tenant_id", sa.Uuid(), sa.ForeignKey("core_tenant.id", ondelete="CASCADE"), nullable=False
    )


def ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "content_document",
        sa.Column("id", sa.Uuid(), primary_key=True),
        tenant(),
        sa.Column("collection", sa.String(200), nullable=False),
        sa.Column("source_key", sa.String(1000), nullable=False),
        sa.Column("title", sa.String(1000), nullable=False),
        sa.Column("tags", JSONB(), nullable=False),
        sa.Column("metadata", JSONB(), nullable=False),
        sa.Column("latest_version_id", sa.Uuid(), nullable=True),
        sa.Column("version_count", sa.Integer(), nullable=False),
        ts("created_at"),
        ts("updated_at"),
        ts("deleted_at", True),
        sa.Column("deleted_reason", sa.Text(), nullable=True),
        sa.UniqueConstraint("tenant_id", "collection", "source_key", name="uq_content_document_source"),
    )
    op.create_index("ix_content_document_tenant_id", "content_document", ["tenant_id"])
    op.create_index("ix_content_document_collection", "content_document", ["collection"])
    op.create_index("ix_content_document_updated_at", "content_document", ["updated_at"])
    enable_tenant_isolation("content_document")

    op.create_table(
        "content_version",
        sa.Column("id", sa.Uuid(), primary_key=True),
        tenant(),
        sa.Column(
            "document_id",
            sa.Uuid(),
            sa.ForeignKey("content_document.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(1000), nullable=False),
        sa.Column("content_type", sa.String(200), nullable=False),
        sa.Column("blob_key", sa.String(64), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(40), nullable=True),
        sa.Column("run_id", sa.Uuid(), sa.ForeignKey("runtime_run.id"), nullable=True),
        sa.Column("page_count", sa.Integer(), nullable=True),
        sa.Column("element_count", sa.Integer(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        ts("created_at"),
        ts("indexed_at", True),
        sa.UniqueConstraint("document_id", "number", name="uq_content_version_number"),
    )
    op.create_index("ix_content_version_tenant_id", "content_version", ["tenant_id"])
    op.create_index("ix_content_version_document_id", "content_version", ["document_id"])
    op.create_index("ix_content_version_sha256", "content_version", ["sha256"])
    enable_tenant_isolation("content_version")

    op.create_table(
        "content_element",
        sa.Column(
            "version_id",
            sa.Uuid(),
            sa.ForeignKey("content_version.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("element_id", sa.Uuid(), nullable=False),
        tenant(),
        sa.Column(
            "document_id",
            sa.Uuid(),
            sa.ForeignKey("content_document.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("ord", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("section_path", JSONB(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("metadata", JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("version_id", "element_id"),
    )
    op.create_index("ix_content_element_tenant_id", "content_element", ["tenant_id"])
    op.create_index("ix_content_element_document_id", "content_element", ["document_id"])
    op.create_index("ix_content_element_order", "content_element", ["version_id", "ord"])
    enable_tenant_isolation("content_element")

    op.create_table(
        "content_chunk",
        sa.Column("id", sa.Uuid(), primary_key=True),
        tenant(),
        sa.Column(
            "document_id",
            sa.Uuid(),
            sa.ForeignKey("content_document.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "version_id",
            sa.Uuid(),
            sa.ForeignKey("content_version.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("collection", sa.String(200), nullable=False),
        sa.Column("ord", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("element_ids", ARRAY(sa.Uuid()), nullable=False),
        sa.Column("pages", ARRAY(sa.Integer()), nullable=False),
        sa.Column("section_path", JSONB(), nullable=False),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.Column("embedding", pgvector.sqlalchemy.Vector(DIMENSIONS), nullable=True),
        sa.Column("live", sa.Boolean(), nullable=False, server_default="false"),
    )
    op.create_index("ix_content_chunk_tenant_id", "content_chunk", ["tenant_id"])
    op.create_index("ix_content_chunk_document_id", "content_chunk", ["document_id"])
    op.create_index("ix_content_chunk_version_id", "content_chunk", ["version_id", "ord"])
    op.create_index(
        "ix_content_chunk_embedding",
        "content_chunk",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )
    enable_tenant_isolation("content_chunk")

    op.create_table(
        "content_embedding",
        tenant(),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.Column("embedding", pgvector.sqlalchemy.Vector(DIMENSIONS), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "model", "text_hash"),
    )
    enable_tenant_isolation("content_embedding")


def downgrade() -> None:
    for table in (
        "content_embedding",
        "content_chunk",
        "content_element",
        "content_version",
        "content_document",
    ):
        op.drop_table(table)
