"""core: blobs kept in the database, for installations whose hosts share no folder

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Content-addressed and shared by tenants like the folder store: a key is a SHA-256, so a
    # blob is only readable by who knows its hash, which only versions of their tenant record.
    op.create_table(
        "core_blob",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    # The bytes are compressed already more often than not (PDF, DOCX): don't try again.
    op.execute("ALTER TABLE core_blob ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("core_blob")
