"""Tenants, principals and API keys: creating them and recognising a key."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session, col, select

from quire.core.db import SystemSession, TenantSession
from quire.core.errors import Conflict, Forbidden, NotFound, Unauthenticated
from quire.core.models import ApiKey, Principal, Role, Tenant, TenantSettings, utcnow
from quire.core.pages import Keyset, Page, read_page

KEY_PREFIX = "qk_"
DEFAULT_TENANT = "default"


@dataclass(frozen=True)
class Caller:
    """Who is making a request: one principal of one tenant, with a role."""

    principal_id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    role: Role

    def allows(self, required: Role) -> bool:
        return self.role.allows(required)


def require_role(caller: Caller | None, role: Role) -> None:
    """Refuse a caller without `role` (None: Quire itself, which may). Services check it where the
    action is taken, not only at the route that usually leads there."""
    if caller is not None and not caller.allows(role):
        raise Forbidden(f"this needs the {role.value} role; the key's role is {caller.role.value}")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_tenant(*, session: SystemSession, name: str) -> Tenant:
    if session.exec(select(Tenant).where(Tenant.name == name)).first() is not None:
        raise Conflict(f"a tenant named {name!r} exists already")
    tenant = Tenant(name=name)
    session.add(tenant)
    session.flush()
    return tenant


def ensure_tenant(*, session: SystemSession, name: str) -> tuple[Tenant, bool]:
    """The tenant called `name`, made if missing (one maker at a time); and whether it was made."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('quire-tenant:' || :name))"), {"name": name})
    tenant = session.exec(select(Tenant).where(Tenant.name == name)).first()
    if tenant is not None:
        return tenant, False
    return create_tenant(session=session, name=name), True


def principal_named(*, session: TenantSession, name: str) -> Principal | None:
    """The tenant's first principal called `name`, if any."""
    return session.exec(
        select(Principal).where(Principal.name == name).order_by(col(Principal.created_at))
    ).first()


def principals_by_id(*, session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, Principal]:
    """The tenant's principals with these ids (unknown ids are left out)."""
    rows = session.exec(select(Principal).where(col(Principal.id).in_(ids))).all()
    return {p.id: p for p in rows}


def get_tenant_by_name(*, session: SystemSession, name: str) -> Tenant:
    tenant = session.exec(select(Tenant).where(Tenant.name == name)).first()
    if tenant is None:
        raise NotFound(f"no tenant named {name!r}")
    return tenant


def create_principal(*, session: TenantSession, name: str, role: Role) -> Principal:
    principal = Principal(tenant_id=session.tenant_id, name=name, role=role)
    session.add(principal)
    session.flush()
    return principal


def create_api_key(*, session: Session, principal: Principal) -> str:
    """Make a key for `principal` and return it: the only time its plain text exists."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            tenant_id=principal.tenant_id,
            principal_id=principal.id,
            prefix=key[:10],
            key_hash=hash_key(key),
        )
    )
    session.flush()
    return key


def principal_keys(*, session: Session, principal_id: uuid.UUID) -> list[ApiKey]:
    """A principal's keys, oldest first."""
    query = select(ApiKey).where(ApiKey.principal_id == principal_id).order_by(col(ApiKey.created_at))
    return list(session.exec(query).all())


def revoke_api_key(*, session: TenantSession, prefix: str) -> int:
    """Revoke the tenant's keys that start with `prefix`; return how many."""
    keys = session.exec(
        select(ApiKey).where(ApiKey.prefix == prefix[:10], ApiKey.revoked_at.is_(None))  # type: ignore[union-attr]
    ).all()
    for key in keys:
        key.revoked_at = utcnow()
        session.add(key)
    session.flush()
    return len(keys)


def list_api_keys(*, session: TenantSession) -> list[tuple[ApiKey, Principal]]:
    """The tenant's keys, revoked ones included, each with its principal; oldest first."""
    rows = session.exec(
        select(ApiKey, Principal)
        .join(Principal, col(Principal.id) == col(ApiKey.principal_id))
        .order_by(col(ApiKey.created_at), col(ApiKey.id))
    ).all()
    return [(key, principal) for key, principal in rows]


# Keys and principals oldest first, as they were made.
KEY_PAGES = Keyset((col(ApiKey.created_at), col(ApiKey.id)), descending=False)
PRINCIPAL_PAGES = Keyset((col(Principal.created_at), col(Principal.id)), descending=False)


def page_api_keys(
    *, session: TenantSession, cursor: str | None, limit: int
) -> Page[tuple[ApiKey, Principal]]:
    """A page of the keys `list_api_keys` lists, after `cursor`."""
    query = select(ApiKey, Principal).join(Principal, col(Principal.id) == col(ApiKey.principal_id))
    return read_page(session, query, keyset=KEY_PAGES, cursor=cursor, limit=limit)


def page_principals(*, session: TenantSession, cursor: str | None, limit: int) -> Page[Principal]:
    """A page of the tenant's principals, oldest first."""
    return read_page(session, select(Principal), keyset=PRINCIPAL_PAGES, cursor=cursor, limit=limit)


def get_api_key(*, session: TenantSession, key_id: uuid.UUID) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no key with id {key_id} in this tenant")
    return key


def revoke_api_key_by_id(*, session: TenantSession, key_id: uuid.UUID) -> ApiKey:
    """Revoke one of the tenant's keys; a key revoked before keeps its first revocation time."""
    key = get_api_key(session=session, key_id=key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(key)
        session.flush()
    return key


def authenticate(*, session: Session, key: str) -> Caller:
    """The caller an API key belongs to.

    Runs before the tenant is known, so it goes through `quire_authenticate`, a SECURITY
    DEFINER function that reads the key tables and nothing else.
    """
    if not key.startswith(KEY_PREFIX):
        raise Unauthenticated("the API key is malformed: Quire keys start with 'qk_'")
    row = session.execute(
        text("SELECT principal_id, tenant_id, name, role FROM quire_authenticate(:key_hash)"),
        {"key_hash": hash_key(key)},
    ).first()
    if row is None:
        raise Unauthenticated("the API key is unknown or revoked")
    return Caller(principal_id=row[0], tenant_id=row[1], name=row[2], role=Role(row[3]))


def bootstrap_default_tenant(*, session: SystemSession) -> str | None:
    """On the very first start, make the default tenant and an admin; return the admin's key.

    Returns None when any tenant exists already, so the key is printed only once.
    """
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('quire-bootstrap'))"))
    if session.exec(select(Tenant)).first() is not None:
        return None
    tenant = create_tenant(session=session, name=DEFAULT_TENANT)
    principal = Principal(tenant_id=tenant.id, name="admin", role=Role.admin)
    session.add(principal)
    session.flush()
    return create_api_key(session=session, principal=principal)


def tenant_settings(*, session: TenantSession) -> TenantSettings:
    """The settings of the session's tenant (its own row is all a tenant session sees)."""
    tenant = session.get(Tenant, session.tenant_id)
    if tenant is None:
        raise NotFound(f"no tenant {session.tenant_id}")
    return TenantSettings.model_validate(tenant)


def update_tenant_settings(*, session: TenantSession, settings: TenantSettings) -> TenantSettings:
    tenant = session.get(Tenant, session.tenant_id)
    if tenant is None:
        raise NotFound(f"no tenant {session.tenant_id}")
    tenant.separation_of_duties = settings.separation_of_duties
    session.add(tenant)
    session.flush()
    return TenantSettings.model_validate(tenant)
