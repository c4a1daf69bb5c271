"""core: pgvector, the app role, tenants, principals and API keys

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlalchemy.dialects.postgresql
from alembic import op

from quire.migrations.tenancy import create_app_role, enable_tenant_isolation

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    create_app_role()

    op.create_table(
        "core_tenant",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    # A tenant transaction may read its own tenant row and nothing else.
    op.execute("ALTER TABLE core_tenant ENABLE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY tenant_isolation ON core_tenant USING (id = quire_current_tenant())")
    op.execute("GRANT SELECT ON core_tenant TO quire_app")

    role = sa.Enum("reader", "contributor", "reviewer", "admin", name="core_role")
    op.create_table(
        "core_principal",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.Uuid(),
            sa.ForeignKey("core_tenant.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", role, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_core_principal_tenant_id", "core_principal", ["tenant_id"])
    enable_tenant_isolation("core_principal")

    op.create_table(
        "core_api_key",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.Uuid(),
            sa.ForeignKey("core_tenant.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "principal_id",
            sa.Uuid(),
            sa.ForeignKey("core_principal.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_core_api_key_tenant_id", "core_api_key", ["tenant_id"])
    op.create_index("ix_core_api_key_principal_id", "core_api_key", ["principal_id"])
    enable_tenant_isolation("core_api_key")

    # Authentication happens before the tenant is known: this function reads the key tables
    # with the owner's rights and returns the one principal a key belongs to.
    op.execute(
        """
        CREATE FUNCTION quire_authenticate(key_hash text)
        RETURNS TABLE (principal_id uuid, tenant_id uuid, name text, role text)
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = public, pg_temp
        AS $$
            SELECT p.id, p.tenant_id, p.name::text, p.role::text
            FROM core_api_key AS k JOIN core_principal AS p ON p.id = k.principal_id
            WHERE k.key_hash = $1 AND k.revoked_at IS NULL
        $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION quire_authenticate(text) FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION quire_authenticate(text) TO quire_app")

    # The queues of the embedded default broker (quire/core/pgqueue.py).
    op.create_table(
        "core_queue_message",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("queue_name", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False, unique=True),
        sa.Column("body", sa.dialects.postgresql.JSONB(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False, server_default="queued"),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deliveries", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_index(
        "ix_core_queue_message_ready",
        "core_queue_message",
        ["queue_name", "available_at", "id"],
        postgresql_where=sa.text("state = 'queued'"),
    )
    # Tenant transactions may enqueue (a run's next kick commits with its step), nothing more.
    op.execute("GRANT SELECT, INSERT ON core_queue_message TO quire_app")
    op.execute("GRANT USAGE ON SEQUENCE core_queue_message_id_seq TO quire_app")


def downgrade() -> None:
    op.drop_table("core_queue_message")
    op.execute("DROP FUNCTION IF EXISTS quire_authenticate(text)")
    op.drop_table("core_api_key")
    op.drop_table("core_principal")
    op.execute("DROP TYPE IF EXISTS core_role")
    op.drop_table("core_tenant")
    op.execute("DROP FUNCTION IF EXISTS quire_current_tenant()")
