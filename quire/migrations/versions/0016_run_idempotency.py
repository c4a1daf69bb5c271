"""runtime: an idempotency key belongs to one program and is bound to a hash of its request

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Runs started before have no hash: their keys match any request, as they did.
    op.add_column("runtime_run", sa.Column("request_hash", sa.String(64), nullable=True))
    op.drop_constraint("uq_runtime_run_idempotency", "runtime_run", type_="unique")
    op.create_unique_constraint(
        "uq_runtime_run_idempotency", "runtime_run", ["tenant_id", "program", "idempotency_key"]
    )


def downgrade() -> None:
    # One key per tenant again: where programs share a key, the oldest run keeps it.
    op.execute(
        """
        UPDATE runtime_run SET idempotency_key = NULL
        WHERE id IN (
            SELECT id FROM (
                SELECT id, row_number() OVER (
                    PARTITION BY tenant_id, idempotency_key ORDER BY created_at, id
                ) AS n
                FROM runtime_run WHERE idempotency_key IS NOT NULL
            ) numbered
            WHERE n > 1
        )
        """
    )
    op.drop_constraint("uq_runtime_run_idempotency", "runtime_run", type_="unique")
    op.create_unique_constraint("uq_runtime_run_idempotency", "runtime_run", ["tenant_id", "idempotency_key"])
    op.drop_column("runtime_run", "request_hash")
