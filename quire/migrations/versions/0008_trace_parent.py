"""runtime: the traceparent of the request that started a run, to continue its trace in workers

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runtime_run", sa.Column("trace_parent", sa.String(100), nullable=True))


def downgrade() -> None:
    op.drop_column("runtime_run", "trace_parent")
