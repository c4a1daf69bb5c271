"""embeddings stay in their row: vector columns stored MAIN instead of pgvector's EXTERNAL

A 384-dimension vector is 1.5 kB. Beside a chunk's text or a tool's example requests the row
passes PostgreSQL's 2 kB TOAST threshold, and with EXTERNAL storage the vector, the largest value
that may leave the row, is the one moved to the TOAST table: every distance computed then costs an
extra index lookup and page read. Measured on the MetaTool catalog with example requests: the
exact scan over 199 tools took 1.3 ms per request with toasted vectors, 0.3 ms inline. With MAIN
the other columns (text, examples, compressed first) leave the row before the vector does.

Rows already stored keep their layout until rewritten; the tool catalog is small and rewritten
here, content and memory rows take the new layout as they are written.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VECTOR_COLUMNS = (
    ("content_chunk", "embedding"),
    ("content_embedding", "embedding"),
    ("memory_version", "embedding"),
    ("agent_tool", "embedding"),
)


def upgrade() -> None:
    for table, column in VECTOR_COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE MAIN")
    # A new value (not the same TOAST pointer) is stored with the column's new storage.
    op.execute(
        "UPDATE agent_tool SET embedding = CAST(CAST(embedding AS text) AS vector) "
        "WHERE embedding IS NOT NULL"
    )


def downgrade() -> None:
    for table, column in VECTOR_COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE EXTERNAL")
