"""Plain factory functions that tests use to make rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from quire.core.db import Database
from quire.core.models import Role
from quire.core.tenancy import create_api_key, create_principal


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
