"""Plain factory functions that tests use to make rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from quire.core import contexts
from quire.core.db import Database, with_user
from quire.core.models import Role
from quire.core.secrets import derive
from quire.core.tenancy import Caller, create_api_key, create_principal

# Every test process (and every Quire process a test starts) signs tenant contexts with this.
TEST_SECRET_KEY = "quire-tests-secret-key-0123456789abcdef"
CONTEXT_KEY = derive(TEST_SECRET_KEY.encode(), contexts.PURPOSE)


def open_database(url: str, **kwargs: object) -> Database:
    """The database at `url` as the API and workers open it: signing with the test key."""
    return Database(url, context_key=CONTEXT_KEY, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TenantFixture:
    id: uuid.UUID
    name: str


def make_key(database: Database, tenant: TenantFixture, role: Role, name: str = "") -> str:
    """A principal with `role` in `tenant`; returns its API key."""
    with database.tenant_session(tenant.id) as session:
        principal = create_principal(session=session, name=name or role.value, role=role)
        key = create_api_key(session=session, principal=principal)
        session.commit()
    return key


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True)
class Person:
    """A principal with a key: who they are (as `quire.core.tenancy.Caller`) and their header."""

    caller: Caller
    headers: dict[str, str]

    @property
    def id(self) -> uuid.UUID:
        return self.caller.principal_id


def make_person(database: Database, tenant: TenantFixture, role: Role, name: str = "") -> Person:
    with database.tenant_session(tenant.id) as session:
        principal = create_principal(session=session, name=name or role.value, role=role)
        key = create_api_key(session=session, principal=principal)
        session.commit()
    caller = Caller(principal_id=principal.id, tenant_id=tenant.id, name=principal.name, role=role)
    return Person(caller=caller, headers=auth(key))


def owner_url(url: str) -> str:
    """The same test database as its owner (the embedded server's superuser): for tests that
    play someone with the owner's rights, such as a tamperer."""
    return with_user(url, "postgres")
