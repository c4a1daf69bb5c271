"""runtime: runs, steps, signals, human tasks, run events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from quire.migrations.tenancy import enable_tenant_isolation

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def tenant_column() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "tenant_id", sa.Uuid(), sa.ForeignKey("core_tenant.id", ondelete="CASCADE"), nullable=False
    )


def run_column(name: str = "run_id") -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.Uuid(), sa.ForeignKey("runtime_run.id", ondelete="CASCADE"), nullable=False)


def ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "runtime_run",
        sa.Column("id", sa.Uuid(), primary_key=True),
        tenant_column(),
        sa.Column("program", sa.String(200), nullable=False),
        sa.Column("program_version", sa.Integer(), nullable=False),
        sa.Column("input", JSONB(), nullable=False),
        sa.Column("state", JSONB(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        ts("wake_at", True),
        ts("kicked_at", True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        ts("lease_expires_at", True),
        sa.Column("epoch", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("next_seq", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("recoveries", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default="false"),
        sa.Column("waiting_for", JSONB(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(300), nullable=True),
        sa.Column("parent_id", sa.Uuid(), sa.ForeignKey("runtime_run.id"), nullable=True),
        ts("created_at"),
        ts("updated_at"),
        ts("finished_at", True),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_runtime_run_idempotency"),
    )
    op.create_index("ix_runtime_run_tenant_id", "runtime_run", ["tenant_id"])
    op.create_index("ix_runtime_run_program", "runtime_run", ["program"])
    op.create_index("ix_runtime_run_status", "runtime_run", ["status"])
    op.create_index("ix_runtime_run_parent_id", "runtime_run", ["parent_id"])
    op.create_index("ix_runtime_run_created_at", "runtime_run", ["created_at"])
    op.create_index(
        "ix_runtime_run_due",
        "runtime_run",
        ["wake_at"],
        postgresql_where=sa.text("status IN ('queued','waiting','sleeping','throttled')"),
    )
    op.create_index(
        "ix_runtime_run_leased",
        "runtime_run",
        ["lease_expires_at"],
        postgresql_where=sa.text("status = 'running'"),
    )
    enable_tenant_isolation("runtime_run")

    op.create_table(
        "runtime_step",
        run_column(),
        sa.Column("seq", sa.Integer(), nullable=False),
        tenant_column(),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("result", JSONB(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        ts("started_at"),
        ts("finished_at"),
        sa.PrimaryKeyConstraint("run_id", "seq"),
    )
    op.create_index("ix_runtime_step_tenant_id", "runtime_step", ["tenant_id"])
    enable_tenant_isolation("runtime_step")

    op.create_table(
        "runtime_signal",
        sa.Column("id", sa.Uuid(), primary_key=True),
        tenant_column(),
        run_column(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("payload", JSONB(), nullable=True),
        sa.Column("consumed_seq", sa.Integer(), nullable=True),
        ts("created_at"),
        sa.UniqueConstraint("run_id", "key", name="uq_runtime_signal_key"),
    )
    op.create_index("ix_runtime_signal_tenant_id", "runtime_signal", ["tenant_id"])
    op.create_index("ix_runtime_signal_run_id", "runtime_signal", ["run_id"])
    enable_tenant_isolation("runtime_signal")

    op.create_table(
        "runtime_task",
        sa.Column("id", sa.Uuid(), primary_key=True),
        tenant_column(),
        run_column(),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("assignee", sa.Uuid(), nullable=True),
        sa.Column("payload", JSONB(), nullable=True),
        sa.Column("options", JSONB(), nullable=True),
        sa.Column("signal_name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        ts("due_at", True),
        sa.Column("escalate_to", sa.String(40), nullable=True),
        ts("escalated_at", True),
        sa.Column("decision", JSONB(), nullable=True),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        ts("decided_at", True),
        ts("created_at"),
        sa.UniqueConstraint("run_id", "seq", name="uq_runtime_task_step"),
    )
    op.create_index("ix_runtime_task_tenant_id", "runtime_task", ["tenant_id"])
    op.create_index("ix_runtime_task_run_id", "runtime_task", ["run_id"])
    op.create_index("ix_runtime_task_status", "runtime_task", ["status"])
    enable_tenant_isolation("runtime_task")

    op.create_table(
        "runtime_event",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        tenant_column(),
        run_column(),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("data", JSONB(), nullable=True),
        ts("created_at"),
    )
    op.create_index("ix_runtime_event_tenant_id", "runtime_event", ["tenant_id"])
    op.create_index("ix_runtime_event_run_id", "runtime_event", ["run_id", "id"])
    # The audit trail: the application may add to it, never change it.
    enable_tenant_isolation("runtime_event", append_only=True)


def downgrade() -> None:
    for table in ("runtime_event", "runtime_task", "runtime_signal", "runtime_step", "runtime_run"):
        op.drop_table(table)
