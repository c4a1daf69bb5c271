"""Migration helpers for the tenant convention: row-level security and the app role's grants."""

from __future__ import annotations

from alembic import op

APP_ROLE = "quire_app"
QUEUE_ROLE = "quire_queue"

# Tenant tables that the signed system context reaches too: the runtime's bookkeeping (claims,
# the sweeper), tenants and their keys (set-up, the CLI), MCP servers (workers connect to every
# tenant's) and model usage (the operator's metrics). Documents and memories are not among them.
SYSTEM_TABLES = (
    "core_tenant",
    "core_principal",
    "core_api_key",
    "runtime_run",
    "runtime_step",
    "runtime_event",
    "runtime_signal",
    "runtime_task",
    "agent_mcp_server",
    "agent_usage",
)


def create_app_role() -> None:
    """The role every tenant transaction switches to (`SET LOCAL ROLE`); it owns nothing."""
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS;
            END IF;
            IF NOT pg_has_role(current_user, '{APP_ROLE}', 'MEMBER') THEN
                EXECUTE format('GRANT {APP_ROLE} TO %I', current_user);
            END IF;
        END
        $$;
        """
    )
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    op.execute(
        """
        CREATE OR REPLACE FUNCTION quire_current_tenant() RETURNS uuid
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $$ SELECT NULLIF(current_setting('quire.tenant_id', true), '')::uuid $$
        """
    )


def grant_app_access(table: str, *, append_only: bool = False) -> None:
    """Let the app role use `table`; an append-only table refuses it UPDATE and DELETE."""
    privileges = "SELECT, INSERT" if append_only else "SELECT, INSERT, UPDATE, DELETE"
    op.execute(f"GRANT {privileges} ON {table} TO {APP_ROLE}")
    op.execute(
        f"""
        DO $$
        DECLARE seq text;
        BEGIN
            FOR seq IN SELECT pg_get_serial_sequence('{table}', attname)
                       FROM pg_attribute
                       WHERE attrelid = '{table}'::regclass AND attnum > 0 AND NOT attisdropped
            LOOP
                IF seq IS NOT NULL THEN
                    EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO {APP_ROLE}', seq);
                END IF;
            END LOOP;
        END
        $$;
        """
    )


def enable_tenant_isolation(table: str, *, column: str = "tenant_id", append_only: bool = False) -> None:
    """Row-level security on `table`: a transaction sees and writes only its tenant's rows."""
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING ({column} = (SELECT quire_current_tenant())) "
        f"WITH CHECK ({column} = (SELECT quire_current_tenant()))"
    )
    grant_app_access(table, append_only=append_only)


# The signed context. `quire.context` must be the hex HMAC-SHA256 of "tenant:<id>" (or "system")
# under the key in core_context_key; HMAC is computed from the key's inner and outer pads
# (pgcrypto is not assumed). The functions run as the owner, the only role that reads the key,
# and reveal nothing but whether the signature holds.
_VERIFY = """
    SELECT k.outer_pad, k.inner_pad INTO outer_pad, inner_pad FROM public.core_context_key k WHERE k.id = 1;
    IF NOT FOUND OR proof IS NULL OR proof = '' THEN
        RETURN {none};
    END IF;
    IF encode(sha256(outer_pad || sha256(inner_pad || convert_to(message, 'UTF8'))), 'hex') <> proof THEN
        RETURN {none};
    END IF;
"""


def create_context_functions() -> None:
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION quire_current_tenant() RETURNS uuid
        LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL SAFE
        SET search_path = pg_catalog, pg_temp
        AS $$
        DECLARE
            tenant text := current_setting('quire.tenant_id', true);
            proof text := current_setting('quire.context', true);
            message text := 'tenant:' || coalesce(tenant, '');
            outer_pad bytea;
            inner_pad bytea;
        BEGIN
            IF tenant IS NULL OR tenant = '' THEN
                RETURN NULL;
            END IF;
            {_VERIFY.format(none="NULL")}
            RETURN tenant::uuid;
        END
        $$
        """
    )
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION quire_system_context() RETURNS boolean
        LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL SAFE
        SET search_path = pg_catalog, pg_temp
        AS $$
        DECLARE
            proof text := current_setting('quire.context', true);
            message text := 'system';
            outer_pad bytea;
            inner_pad bytea;
        BEGIN
            IF coalesce(current_setting('quire.tenant_id', true), '') <> '' THEN
                RETURN false;
            END IF;
            {_VERIFY.format(none="false")}
            RETURN true;
        END
        $$
        """
    )
    for function in ("quire_current_tenant()", "quire_system_context()"):
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {function} TO {APP_ROLE}")


def enable_system_access(table: str) -> None:
    """Let the signed system context reach every row of `table` (bookkeeping across tenants)."""
    op.execute(
        f"CREATE POLICY system_access ON {table} "
        "USING ((SELECT quire_system_context())) WITH CHECK ((SELECT quire_system_context()))"
    )
