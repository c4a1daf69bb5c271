"""memory: items, versions, evidence, the hash-chained audit log, recall records

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from quire.migrations.tenancy import enable_tenant_isolation

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def tenant() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "tenant_id", sa.Uuid(), sa.ForeignKey("core_tenant.id", ondelete="CASCADE"), nullable=False
    )


def ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "memory_item",
        sa.Column("id", sa.Uuid(), primary_key=True),
        tenant(),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("scope_ref", sa.String(300), nullable=True),
        sa.Column("subject_key", sa.String(300), nullable=True),
        sa.Column("current_version_id", sa.Uuid(), nullable=True),
        sa.Column("approved_version_id", sa.Uuid(), nullable=True),
        ts("created_at"),
        ts("updated_at"),
    )
    op.create_index("ix_memory_item_tenant_id", "memory_item", ["tenant_id"])
    op.create_index("ix_memory_item_subject_key", "memory_item", ["tenant_id", "scope", "subject_key"])
    op.create_index("ix_memory_item_updated_at", "memory_item", ["updated_at"])
    enable_tenant_isolation("memory_item")

    op.create_table(
        "memory_version",
        sa.Column("id", sa.Uuid(), primary_key=True),
        tenant(),
        sa.Column("item_id", sa.Uuid(), sa.ForeignKey("memory_item.id", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("data", JSONB(), nullable=False),
        sa.Column("embedding", pgvector.sqlalchemy.Vector(384), nullable=True),
        ts("valid_from"),
        ts("valid_to", True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("extractor", sa.String(100), nullable=False),
        sa.Column("extractor_version", sa.String(40), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("state_reason", sa.Text(), nullable=True),
        sa.Column("findings", JSONB(), nullable=False),
        sa.Column("run_id", sa.Uuid(), sa.ForeignKey("runtime_run.id"), nullable=True),
        sa.Column("proposed_by", sa.String(200), nullable=False),
        sa.Column("approved_by", sa.Uuid(), nullable=True),
        ts("approved_at", True),
        ts("ended_at", True),
        ts("recertify_at", True),
        ts("created_at"),
        sa.UniqueConstraint("item_id", "number", name="uq_memory_version_number"),
    )
    op.create_index("ix_memory_version_tenant_id", "memory_version", ["tenant_id"])
    op.create_index("ix_memory_version_item_id", "memory_version", ["item_id"])
    op.create_index("ix_memory_version_state", "memory_version", ["state"])
    op.create_index("ix_memory_version_content_hash", "memory_version", ["content_hash"])
    op.create_index("ix_memory_version_in_effect", "memory_version", ["approved_at", "ended_at"])
    op.create_index(
        "ix_memory_version_embedding",
        "memory_version",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )
    enable_tenant_isolation("memory_version")

    op.create_table(
        "memory_evidence",
        sa.Column("id", sa.Uuid(), primary_key=True),
        tenant(),
        sa.Column(
            "version_id", sa.Uuid(), sa.ForeignKey("memory_version.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("document_id", sa.Uuid(), sa.ForeignKey("content_document.id"), nullable=True),
        sa.Column("document_version_id", sa.Uuid(), sa.ForeignKey("content_version.id"), nullable=True),
        sa.Column("element_id", sa.Uuid(), nullable=True),
        sa.Column("char_start", sa.Integer(), nullable=True),
        sa.Column("char_end", sa.Integer(), nullable=True),
        sa.Column("quote", sa.Text(), nullable=True),
        sa.Column("run_id", sa.Uuid(), sa.ForeignKey("runtime_run.id"), nullable=True),
        sa.Column("step_seq", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(1000), nullable=True),
        ts("added_at"),
        sa.CheckConstraint("document_id IS NOT NULL OR run_id IS NOT NULL", name="ck_memory_evidence_source"),
    )
    op.create_index("ix_memory_evidence_tenant_id", "memory_evidence", ["tenant_id"])
    op.create_index("ix_memory_evidence_version_id", "memory_evidence", ["version_id"])
    op.create_index("ix_memory_evidence_document_id", "memory_evidence", ["document_id"])
    op.create_index("ix_memory_evidence_document_version_id", "memory_evidence", ["document_version_id"])
    enable_tenant_isolation("memory_evidence")

    op.create_table(
        "memory_event",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        tenant(),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=True),
        sa.Column("version_id", sa.Uuid(), nullable=True),
        sa.Column("type", sa.String(60), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("data", JSONB(), nullable=False),
        ts("created_at"),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("tenant_id", "seq", name="uq_memory_event_seq"),
    )
    op.create_index("ix_memory_event_item_id", "memory_event", ["item_id"])
    # The audit log: the application may append and read, never change or delete.
    enable_tenant_isolation("memory_event", append_only=True)

    op.create_table(
        "memory_recall",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        tenant(),
        sa.Column("run_id", sa.Uuid(), sa.ForeignKey("runtime_run.id", ondelete="CASCADE"), nullable=True),
        sa.Column("step_seq", sa.Integer(), nullable=True),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column(
            "version_id", sa.Uuid(), sa.ForeignKey("memory_version.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        ts("created_at"),
    )
    op.create_index("ix_memory_recall_tenant_id", "memory_recall", ["tenant_id"])
    op.create_index("ix_memory_recall_run_id", "memory_recall", ["run_id"])
    op.create_index("ix_memory_recall_version_id", "memory_recall", ["version_id"])
    enable_tenant_isolation("memory_recall")


def downgrade() -> None:
    for table in ("memory_recall", "memory_event", "memory_evidence", "memory_version", "memory_item"):
        op.drop_table(table)
