"""honest runs: an error code beside each error, working time, a wall-clock deadline, and why a
cancellation was asked for

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runtime_run", sa.Column("error_code", sa.String(60), nullable=True))
    # Seconds a worker spent moving the run; waits (people, timers, throttling) do not count.
    op.add_column("runtime_run", sa.Column("worked_seconds", sa.Float(), nullable=False, server_default="0"))
    op.add_column("runtime_run", sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("runtime_run", sa.Column("cancel_reason", sa.String(60), nullable=True))
    op.add_column("runtime_step", sa.Column("error_code", sa.String(60), nullable=True))
    op.create_index(
        "ix_runtime_run_deadline",
        "runtime_run",
        ["deadline_at"],
        postgresql_where=sa.text(
            "deadline_at IS NOT NULL AND status NOT IN ('completed', 'failed', 'cancelled')"
        ),
    )


def downgrade() -> None:
    op.drop_index("ix_runtime_run_deadline", table_name="runtime_run")
    op.drop_column("runtime_step", "error_code")
    op.drop_column("runtime_run", "cancel_reason")
    op.drop_column("runtime_run", "deadline_at")
    op.drop_column("runtime_run", "worked_seconds")
    op.drop_column("runtime_run", "error_code")
