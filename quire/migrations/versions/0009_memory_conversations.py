"""memory: find a reader's memories by scope without reading every item of the tenant

Recall filters memory items by scope and scope_ref (a reader of one collection, one user, one
agent); with a hundred thousand memories the dense leg's exact scan over the few the reader may
see, and the lexical leg's join, need this index to find them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_memory_item_scope", "memory_item", ["tenant_id", "scope", "scope_ref"])


def downgrade() -> None:
    op.drop_index("ix_memory_item_scope", table_name="memory_item")
