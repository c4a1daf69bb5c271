"""Tenant isolation through row-level security, and authentication by API key."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlmodel import func, select

from quire.core import contexts
from quire.core.db import Database, libpq_url
from quire.core.models import Principal, Role
from quire.core.tenancy import create_principal
from tests.factories import CONTEXT_KEY, TenantFixture, auth, make_key, open_database


def test_a_tenant_never_reads_lists_or_counts_another_tenants_rows(
    database: Database, tenants: dict[str, TenantFixture]
) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    with database.tenant_session(globex.id) as session:
        secret = create_principal(session=session, name="globex-secret", role=Role.admin)
        session.commit()

    with database.tenant_session(acme.id) as session:
        create_principal(session=session, name="acme-user", role=Role.reader)
        session.commit()
        names = session.exec(select(Principal.name)).all()
        assert "acme-user" in names and "globex-secret" not in names
        assert session.get(Principal, secret.id) is None
        orm_count = session.exec(select(func.count()).select_from(Principal)).one()
        raw_count = session.execute(text("SELECT count(*) FROM core_principal")).scalar_one()
        raw_rows = session.execute(
            text("SELECT name FROM core_principal WHERE id = :id"), {"id": secret.id}
        ).all()
        assert orm_count == raw_count == len(names)
        assert raw_rows == []
        updated = session.execute(
            text("UPDATE core_principal SET name = 'pwned' WHERE id = :id"), {"id": secret.id}
        )
        assert updated.rowcount == 0  # type: ignore[attr-defined]

    with database.tenant_session(globex.id) as session:
        assert session.get(Principal, secret.id).name == "globex-secret"  # type: ignore[union-attr]


def test_a_tenant_cannot_write_rows_into_another_tenant(
    database: Database, tenants: dict[str, TenantFixture]
) -> None:
    with database.tenant_session(tenants["acme"].id) as session:
        session.add(Principal(tenant_id=tenants["globex"].id, name="planted", role=Role.admin))
        with pytest.raises(ProgrammingError, match="row-level security"):
            session.flush()


def test_a_query_without_a_signed_tenant_sees_nothing(
    database_url: str, tenants: dict[str, TenantFixture]
) -> None:
    committed = open_database(database_url, pool_size=1)
    acme = str(tenants["acme"].id)
    try:
        with committed.tenant_session(tenants["acme"].id) as session:
            principal = create_principal(session=session, name="visible-to-acme", role=Role.reader)
            session.commit()
        with psycopg.connect(libpq_url(database_url)) as conn:
            for role in ("quire_app", "NONE"):
                conn.execute(f"SET ROLE {role}")
                for table in ("core_principal", "core_api_key", "core_tenant"):
                    count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
                    assert count == (0,), table
                conn.rollback()
            # The tenant setting alone, or with a wrong signature, opens nothing ...
            for proof in ("", "0" * 64, contexts.tenant_proof(b"another key", tenants["acme"].id)):
                conn.execute(
                    "SELECT set_config('quire.tenant_id', %s, false), set_config('quire.context', %s, false)",
                    (acme, proof),
                )
                count = conn.execute("SELECT count(*) FROM core_principal WHERE id = %s", (principal.id,))
                assert count.fetchone() == (0,)
            # ... the tenant signed with the installation's key does.
            conn.execute(
                "SELECT set_config('quire.context', %s, false)",
                (contexts.tenant_proof(CONTEXT_KEY, tenants["acme"].id),),
            )
            count = conn.execute("SELECT count(*) FROM core_principal WHERE id = %s", (principal.id,))
            assert count.fetchone() == (1,)
    finally:
        with committed.tenant_session(tenants["acme"].id) as session:
            session.execute(text("DELETE FROM core_principal WHERE name = 'visible-to-acme'"))
            session.commit()
        committed.dispose()


def test_every_table_with_a_tenant_column_is_isolated(database: Database) -> None:
    with database.system_session() as session:
        rows = session.execute(
            text(
                """
                SELECT c.relname, c.relrowsecurity,
                       EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid) AS has_policy
                FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                WHERE a.attname = 'tenant_id' AND c.relkind IN ('r', 'p')
                  AND c.relnamespace = 'public'::regnamespace
                """
            )
        ).all()
    assert rows, "expected tenant-owned tables"
    unprotected = [name for name, rls, policy in rows if not (rls and policy)]
    assert unprotected == []


def test_app_role_is_not_privileged(database: Database) -> None:
    with database.system_session() as session:
        row = session.execute(
            text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'quire_app'")
        ).one()
    assert tuple(row) == (False, False)


def test_missing_or_bad_key_gets_401_with_a_code(client: TestClient) -> None:
    missing = client.get("/v1/me")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthenticated"
    assert missing.headers["www-authenticate"] == "Bearer"

    for bad in ("nonsense", "qk_" + "x" * 43):
        response = client.get("/v1/me", headers=auth(bad))
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthenticated"


def test_revoked_key_gets_401(
    client: TestClient, database: Database, tenants: dict[str, TenantFixture]
) -> None:
    from quire.core.tenancy import revoke_api_key

    key = make_key(database, tenants["acme"], Role.reader)
    assert client.get("/v1/me", headers=auth(key)).status_code == 200
    with database.tenant_session(tenants["acme"].id) as session:
        assert revoke_api_key(session=session, prefix=key) == 1
        session.commit()
    assert client.get("/v1/me", headers=auth(key)).status_code == 401


def test_too_weak_role_gets_403_with_a_code(
    client: TestClient, database: Database, tenants: dict[str, TenantFixture]
) -> None:
    reader = make_key(database, tenants["acme"], Role.reader)
    response = client.get("/v1/principals", headers=auth(reader))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert "admin" in response.json()["error"]["message"]

    reviewer = make_key(database, tenants["acme"], Role.reviewer)
    response = client.post("/v1/keys", json={"name": "x", "role": "admin"}, headers=auth(reviewer))
    assert response.status_code == 403


def test_a_key_acts_as_its_principal_in_its_tenant_only(
    client: TestClient, database: Database, tenants: dict[str, TenantFixture]
) -> None:
    acme_admin = make_key(database, tenants["acme"], Role.admin, name="acme-admin")
    make_key(database, tenants["globex"], Role.reader, name="globex-reader")

    me = client.get("/v1/me", headers=auth(acme_admin)).json()
    assert me["tenant_id"] == str(tenants["acme"].id) and me["role"] == "admin"

    listing = client.get("/v1/principals", headers=auth(acme_admin)).json()
    names = [p["name"] for p in listing["data"]]
    assert "acme-admin" in names and "globex-reader" not in names
    assert listing["count"] == len(names)
    assert {p["tenant_id"] for p in listing["data"]} == {str(tenants["acme"].id)}


def test_admin_makes_keys_that_work(
    client: TestClient, database: Database, tenants: dict[str, TenantFixture]
) -> None:
    admin = make_key(database, tenants["acme"], Role.admin)
    created = client.post("/v1/keys", json={"name": "ci-bot", "role": "contributor"}, headers=auth(admin))
    assert created.status_code == 201
    new_key = created.json()["key"]
    me = client.get("/v1/me", headers=auth(new_key)).json()
    assert me["name"] == "ci-bot" and me["role"] == "contributor"


def test_roles_include_the_weaker_ones() -> None:
    assert Role.admin.allows(Role.reviewer)
    assert Role.reviewer.allows(Role.contributor)
    assert Role.contributor.allows(Role.reader)
    assert not Role.reader.allows(Role.contributor)
    assert not Role.reviewer.allows(Role.admin)


# The database login the API and workers use (issue 16, finding 4).


def test_the_login_role_is_not_a_superuser_and_owns_nothing(database: Database) -> None:
    with database.tenant_session(uuid.uuid4()) as session:
        session.execute(text("RESET ROLE"))
        login, superuser, bypass, create_role, create_db = session.execute(
            text(
                "SELECT rolname, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb "
                "FROM pg_roles WHERE rolname = session_user"
            )
        ).one()
        owned = session.execute(
            text(
                "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles "
                "WHERE rolname = session_user) AND relnamespace = 'public'::regnamespace"
            )
        ).scalar_one()
        memberships = session.execute(
            text(
                "SELECT array_agg(r.rolname ORDER BY r.rolname) FROM pg_auth_members m "
                "JOIN pg_roles r ON r.oid = m.roleid WHERE m.member = "
                "(SELECT oid FROM pg_roles WHERE rolname = session_user)"
            )
        ).scalar_one()
    assert (superuser, bypass, create_role, create_db) == (False, False, False, False), login
    assert owned == 0
    assert memberships == ["quire_app", "quire_queue"]


@pytest.mark.parametrize(
    "escape",
    [
        "RESET ROLE",
        "SET ROLE NONE",
        "SELECT set_config('quire.tenant_id', :other, true)",
        "SELECT set_config('quire.tenant_id', :other, false)",
    ],
)
def test_a_tenant_transaction_cannot_reach_another_tenant(
    database: Database, tenants: dict[str, TenantFixture], escape: str
) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    with database.tenant_session(globex.id) as session:
        secret = create_principal(session=session, name="globex-only", role=Role.admin)
        session.commit()
    with database.tenant_session(acme.id) as session:
        session.execute(text(escape), {"other": str(globex.id)})
        seen = session.execute(
            text("SELECT count(*) FROM core_principal WHERE id = :id"), {"id": secret.id}
        ).scalar_one()
        tenants_seen = session.execute(text("SELECT count(*) FROM core_tenant")).scalar_one()
        assert seen == 0
        assert tenants_seen <= 1


def test_the_broker_queue_is_out_of_a_tenant_transactions_reach(
    database: Database, tenants: dict[str, TenantFixture]
) -> None:
    with (
        database.tenant_session(tenants["acme"].id) as session,
        pytest.raises(ProgrammingError, match="permission denied"),
    ):
        session.execute(text("SELECT count(*) FROM core_queue_message")).scalar_one()
