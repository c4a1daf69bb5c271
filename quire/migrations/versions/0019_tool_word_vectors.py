"""agent: a catalog tool carries a second vector, of static word-piece embeddings (core/word_vectors.py)

Tools synced before have none until their next sync re-indexes them (catalog.INDEXED_AS changed);
find_tools' word leg skips a tool without one.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("agent_tool", sa.Column("word_embedding", pgvector.sqlalchemy.Vector(256), nullable=True))
    # Both vectors in the row itself: with two of them a row passes PostgreSQL's 2 kB TOAST
    # threshold, and a vector moved out of line costs a fetch per row at every search (the word
    # leg's scan of 199 tools went from 0.1 to 0.65 ms). PLAIN storage keeps them in the row;
    # long descriptions and schemas can still move out.
    op.execute("ALTER TABLE agent_tool ALTER COLUMN embedding SET STORAGE PLAIN")
    op.execute("ALTER TABLE agent_tool ALTER COLUMN word_embedding SET STORAGE PLAIN")
    op.create_index(
        "ix_agent_tool_word_embedding",
        "agent_tool",
        ["word_embedding"],
        postgresql_using="hnsw",
        postgresql_ops={"word_embedding": "vector_cosine_ops"},
    )


def downgrade() -> None:
    op.execute("ALTER TABLE agent_tool ALTER COLUMN embedding SET STORAGE EXTERNAL")
    op.drop_index("ix_agent_tool_word_embedding", table_name="agent_tool")
    op.drop_column("agent_tool", "word_embedding")
