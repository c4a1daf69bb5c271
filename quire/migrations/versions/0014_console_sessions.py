"""console sessions: one row per login, so that logging out ends the session on the server

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from quire.migrations.tenancy import APP_ROLE, enable_tenant_isolation

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "core_console_session",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "tenant_id", sa.Uuid(), sa.ForeignKey("core_tenant.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "api_key_id", sa.Uuid(), sa.ForeignKey("core_api_key.id", ondelete="CASCADE"), nullable=False
        ),
        # The SHA-256 of the random token in the cookie: a copy of this table opens no session.
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_console_session_tenant_id", "core_console_session", ["tenant_id"])
    op.create_index("ix_console_session_api_key_id", "core_console_session", ["api_key_id"])
    enable_tenant_isolation("core_console_session")

    # A request's session is looked up before its tenant is known, like an API key in
    # `quire_authenticate` (0001): with the owner's rights, reading these three tables only, and
    # answering only for a live session of a live key. The joins also require one tenant on every
    # row, so a session row could never borrow another tenant's key.
    op.execute(
        """
        CREATE FUNCTION quire_console_session(token_hash text)
        RETURNS TABLE (session_id uuid, principal_id uuid, tenant_id uuid, name text, role text)
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = public, pg_temp
        AS $$
            SELECT s.id, p.id, p.tenant_id, p.name::text, p.role::text
            FROM core_console_session AS s
            JOIN core_api_key AS k ON k.id = s.api_key_id AND k.tenant_id = s.tenant_id
            JOIN core_principal AS p ON p.id = k.principal_id AND p.tenant_id = k.tenant_id
            WHERE s.token_hash = $1
              AND s.ended_at IS NULL
              AND s.expires_at > now()
              AND k.revoked_at IS NULL
        $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION quire_console_session(text) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION quire_console_session(text) TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS quire_console_session(text)")
    op.drop_table("core_console_session")
