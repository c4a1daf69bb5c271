"""Console sessions as rows: found only while live, only through their own tenant's key."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlmodel import select

from quire.core.db import Database
from quire.core.models import ApiKey, Role
from quire.core.sessions import end_console_session, find_console_session, open_console_session
from quire.core.tenancy import hash_key
from tests.factories import TenantFixture, make_key

HOURS = 8 * 3600


def test_a_session_is_found_until_it_ends(database: Database, tenants: dict[str, TenantFixture]) -> None:
    key = make_key(database, tenants["acme"], Role.reviewer, name="rita")
    with database.tenant_session(tenants["acme"].id) as session:
        opened = open_console_session(
            session=session, key_hash=hash_key(key), token_hash="t" * 64, seconds=HOURS
        )
        session.commit()
    assert opened is not None
    with database.system_session() as session:
        found = find_console_session(session=session, token_hash="t" * 64)
    assert found is not None and found.id == opened
    assert (found.caller.name, found.caller.role, found.caller.tenant_id) == (
        "rita",
        Role.reviewer,
        tenants["acme"].id,
    )

    with database.tenant_session(tenants["acme"].id) as session:
        end_console_session(session=session, session_id=opened)
        session.commit()
    with database.system_session() as session:
        assert find_console_session(session=session, token_hash="t" * 64) is None


def test_a_tenant_opens_no_session_with_another_tenants_key(
    database: Database, tenants: dict[str, TenantFixture]
) -> None:
    globex_key = make_key(database, tenants["globex"], Role.admin)
    with database.tenant_session(tenants["acme"].id) as session:
        assert (
            open_console_session(
                session=session, key_hash=hash_key(globex_key), token_hash="a" * 64, seconds=HOURS
            )
            is None
        )
    # Even a row planted by hand, in acme's name and pointing at globex's key, resolves to nobody.
    with database.tenant_session(tenants["globex"].id) as session:
        globex_key_id = session.exec(select(ApiKey.id).where(ApiKey.key_hash == hash_key(globex_key))).one()
    with database.tenant_session(tenants["acme"].id) as session:
        session.execute(
            text(
                "INSERT INTO core_console_session (id, tenant_id, api_key_id, token_hash, expires_at) "
                "VALUES (:id, :tenant, :key, :token, now() + interval '1 hour')"
            ),
            {"id": uuid.uuid4(), "tenant": tenants["acme"].id, "key": globex_key_id, "token": "p" * 64},
        )
        session.commit()
    with database.system_session() as session:
        assert find_console_session(session=session, token_hash="p" * 64) is None
