"""trust: signed transaction contexts, a queue role, run owners, signal senders, tenant settings

Until now a transaction's tenant was whatever the setting `quire.tenant_id` said, and any role
may change a setting: one injected `set_config` reached another tenant, and the API logged in
as a superuser that `RESET ROLE` gave back. From here on:

- A context is signed. `quire.tenant_id` counts only beside `quire.context`, an HMAC-SHA256 of
  it under a key that lives in `core_context_key`, which only the tables' owner can read (the
  application knows the key from QUIRE_SECRET_KEY; `quire migrate` stores it). The policies
  call `quire_current_tenant()`, which checks the signature, once per statement.
- A "system" context (signed the same way) is the runtime's and the operator's cross-tenant
  bookkeeping: it reaches the runtime's tables, tenants, principals, keys and MCP servers, and
  the tables that belong to no tenant, and nothing else (no documents, no memories).
- The broker's queue is the role `quire_queue`'s: tenant transactions (role `quire_app`) may
  only add kicks to it.
- A run records who started it (its owner) and with which role; a signal records who sent it.
- A tenant has settings; the first is separation of duties (on).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from quire.migrations.tenancy import (
    APP_ROLE,
    QUEUE_ROLE,
    SYSTEM_TABLES,
    create_context_functions,
    enable_system_access,
)

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables that belong to no tenant: only a system context reaches them.
GLOBAL_TABLES = ("agent_circuit", "core_blob", "core_worker")


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE core_context_key (
            id integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            key bytea NOT NULL,
            inner_pad bytea NOT NULL,
            outer_pad bytea NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("REVOKE ALL ON core_context_key FROM PUBLIC")
    create_context_functions()

    # Every tenant policy asks the signed context, once per statement (an InitPlan).
    conn = op.get_bind()
    policies = conn.execute(
        sa.text(
            "SELECT tablename, qual, with_check FROM pg_policies "
            "WHERE schemaname = 'public' AND policyname = 'tenant_isolation'"
        )
    ).all()
    for table, qual, with_check in policies:
        using = qual.replace("quire_current_tenant()", "(SELECT quire_current_tenant())")
        clause = f"ALTER POLICY tenant_isolation ON {table} USING ({using})"
        if with_check:
            check = with_check.replace("quire_current_tenant()", "(SELECT quire_current_tenant())")
            clause += f" WITH CHECK ({check})"
        op.execute(clause)

    # Tenants: a tenant context reads its own row and changes its settings, nothing more.
    op.add_column(
        "core_tenant",
        sa.Column("separation_of_duties", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.execute("DROP POLICY tenant_isolation ON core_tenant")
    op.execute(
        "CREATE POLICY tenant_isolation ON core_tenant FOR SELECT "
        "USING (id = (SELECT quire_current_tenant()))"
    )
    op.execute(
        "CREATE POLICY tenant_settings ON core_tenant FOR UPDATE "
        "USING (id = (SELECT quire_current_tenant())) WITH CHECK (id = (SELECT quire_current_tenant()))"
    )
    op.execute(f"GRANT SELECT, INSERT, DELETE ON core_tenant TO {APP_ROLE}")
    op.execute(f"GRANT UPDATE (separation_of_duties) ON core_tenant TO {APP_ROLE}")

    for table in GLOBAL_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")
    for table in (*SYSTEM_TABLES, *GLOBAL_TABLES):
        enable_system_access(table)

    # The queue: tenant transactions add kicks; the broker's consumers (role quire_queue) read them.
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{QUEUE_ROLE}') THEN
                CREATE ROLE {QUEUE_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS;
            END IF;
            IF NOT pg_has_role(current_user, '{QUEUE_ROLE}', 'MEMBER') THEN
                EXECUTE format('GRANT {QUEUE_ROLE} TO %I', current_user);
            END IF;
        END
        $$;
        """
    )
    op.execute(f"REVOKE SELECT ON core_queue_message FROM {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON core_queue_message TO {QUEUE_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON SEQUENCE core_queue_message_id_seq TO {QUEUE_ROLE}")
    # What a tenant may know of the queue: how many kicks of its own runs wait, and since when.
    op.execute(
        """
        CREATE FUNCTION quire_queue_depth(actors text[])
        RETURNS TABLE (ready bigint, in_flight bigint, delayed bigint, dead bigint, oldest timestamptz)
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = pg_catalog, public, pg_temp
        AS $$
            SELECT
                count(*) FILTER (WHERE m.state = 'queued' AND m.available_at <= now()
                                 AND (m.claimed_until IS NULL OR m.claimed_until < now())),
                count(*) FILTER (WHERE m.state = 'queued' AND m.claimed_until >= now()),
                count(*) FILTER (WHERE m.state = 'queued' AND m.available_at > now()),
                count(*) FILTER (WHERE m.state = 'dead'),
                min(m.enqueued_at) FILTER (WHERE m.state = 'queued' AND m.available_at <= now()
                                           AND (m.claimed_until IS NULL OR m.claimed_until < now()))
            FROM core_queue_message m
            JOIN runtime_run r ON r.id::text = m.body -> 'args' ->> 0
            WHERE m.body ->> 'actor_name' = ANY(actors) AND r.tenant_id = quire_current_tenant()
        $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION quire_queue_depth(text[]) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION quire_queue_depth(text[]) TO {APP_ROLE}")

    # The operator's metrics count document versions across tenants, and read nothing else of them.
    op.execute(
        """
        CREATE FUNCTION quire_version_counts()
        RETURNS TABLE (status text, versions bigint, pages bigint)
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = pg_catalog, public, pg_temp
        AS $$ SELECT status::text, count(*), coalesce(sum(page_count), 0) FROM content_version GROUP BY 1 $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION quire_version_counts() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION quire_version_counts() TO {APP_ROLE}")

    # Who started a run, with which role; who sent a signal, with which role (NULL: Quire itself).
    op.add_column("runtime_run", sa.Column("started_by", sa.Uuid(), nullable=True))
    op.add_column("runtime_run", sa.Column("started_role", sa.String(40), nullable=True))
    op.create_index("ix_runtime_run_started_by", "runtime_run", ["started_by", "created_at"])
    op.add_column("runtime_signal", sa.Column("sender_id", sa.Uuid(), nullable=True))
    op.add_column("runtime_signal", sa.Column("sender_role", sa.String(40), nullable=True))
    op.add_column("runtime_task", sa.Column("decided_through", sa.String(300), nullable=True))


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS quire_queue_depth(text[])")
    op.execute("DROP FUNCTION IF EXISTS quire_version_counts()")
    op.drop_column("runtime_task", "decided_through")
    op.drop_column("runtime_signal", "sender_role")
    op.drop_column("runtime_signal", "sender_id")
    op.drop_index("ix_runtime_run_started_by", table_name="runtime_run")
    op.drop_column("runtime_run", "started_role")
    op.drop_column("runtime_run", "started_by")
    op.execute(f"GRANT SELECT ON core_queue_message TO {APP_ROLE}")
    for table in (*SYSTEM_TABLES, *GLOBAL_TABLES):
        op.execute(f"DROP POLICY IF EXISTS system_access ON {table}")
    for table in GLOBAL_TABLES:
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute("DROP POLICY tenant_settings ON core_tenant")
    op.drop_column("core_tenant", "separation_of_duties")
    op.execute("DROP FUNCTION IF EXISTS quire_system_context()")
    op.execute(
        """
        CREATE OR REPLACE FUNCTION quire_current_tenant() RETURNS uuid
        LANGUAGE sql STABLE PARALLEL SAFE SECURITY INVOKER
        AS $$ SELECT NULLIF(current_setting('quire.tenant_id', true), '')::uuid $$
        """
    )
    op.execute("DROP TABLE core_context_key")
