"""agent: usage per tenant, model and day; tenant budgets; circuit breakers per model target

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from quire.migrations.tenancy import enable_tenant_isolation

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_usage",
        sa.Column(
            "tenant_id", sa.Uuid(), sa.ForeignKey("core_tenant.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(18, 8), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", "target", "model"),
    )
    enable_tenant_isolation("agent_usage")

    op.create_table(
        "agent_tenant_budget",
        sa.Column(
            "tenant_id", sa.Uuid(), sa.ForeignKey("core_tenant.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("daily_usd", sa.Numeric(18, 6), nullable=False),
    )
    enable_tenant_isolation("agent_tenant_budget")

    # Shared by every tenant and worker: a target's health is not a tenant's business.
    op.create_table(
        "agent_circuit",
        sa.Column("target", sa.String(200), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("agent_circuit", "agent_tenant_budget", "agent_usage"):
        op.drop_table(table)
