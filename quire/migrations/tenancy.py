"""Migration helpers for the tenant convention: row-level security and the app role's grants."""

from __future__ import annotations

from alembic import op

APP_ROLE = "quire_app"


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
        f"USING ({column} = quire_current_tenant()) "
        f"WITH CHECK ({column} = quire_current_tenant())"
    )
    grant_app_access(table, append_only=append_only)
