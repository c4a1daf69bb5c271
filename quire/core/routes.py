"""Health, readiness, and the caller's own tenant: principals and keys."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from quire.core.broker import check_broker
from quire.core.db import check_database
from quire.core.deps import AdminDep, CallerDep, SettingsDep, TenantSessionDep
from quire.core.errors import ServiceUnavailable
from quire.core.models import ApiKeyPublic, PrincipalPublic, Role, TenantSettings
from quire.core.pages import DEFAULT_LIMIT, CursorQuery, LimitQuery, ListPage
from quire.core.tenancy import (
    create_api_key,
    create_principal,
    page_api_keys,
    page_principals,
    principal_keys,
    revoke_api_key_by_id,
    tenant_settings,
    update_tenant_settings,
)

router = APIRouter()


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    broker: str


@router.get("/healthz", tags=["health"])
def get_health() -> Health:
    """The API process is up."""
    return Health(status="ok")


@router.get("/readyz", tags=["health"], response_model=Readiness)
def get_readiness(request: Request, settings: SettingsDep) -> JSONResponse:
    """The database and the broker both answer."""
    database_url = request.app.state.database.url
    result = {"status": "ready", "database": "ok", "broker": "ok"}
    try:
        check_database(database_url, timeout=2)
    except ServiceUnavailable as error:
        result.update(status="unavailable", database=str(error))
    try:
        check_broker(broker_url=settings.broker_url, database_url=database_url, timeout=2)
    except ServiceUnavailable as error:
        result.update(status="unavailable", broker=str(error))
    return JSONResponse(result, status_code=200 if result["status"] == "ready" else 503)


@router.get("/v1/me", tags=["tenancy"])
def get_me(caller: CallerDep) -> PrincipalPublic:
    """The principal the API key belongs to."""
    return PrincipalPublic(
        id=caller.principal_id, tenant_id=caller.tenant_id, name=caller.name, role=caller.role
    )


class PrincipalsPublic(ListPage):
    data: list[PrincipalPublic]


@router.get("/v1/principals", tags=["tenancy"])
def list_principals(
    caller: AdminDep, session: TenantSessionDep, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> PrincipalsPublic:
    """Everyone in the caller's tenant, oldest first."""
    page = page_principals(session=session, cursor=cursor, limit=limit)
    return PrincipalsPublic(
        data=[PrincipalPublic.model_validate(p) for p in page.rows],
        count=page.count,
        next_cursor=page.next_cursor,
    )


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role


class KeyCreated(BaseModel):
    id: uuid.UUID = Field(description="The key's id: DELETE /v1/keys/{id} revokes it.")
    principal_id: uuid.UUID
    role: Role
    key: str = Field(description="Shown once; Quire keeps only its hash.")


@router.post("/v1/keys", tags=["tenancy"], status_code=201)
def create_key(body: KeyCreate, caller: AdminDep, session: TenantSessionDep) -> KeyCreated:
    """A new principal in the caller's tenant, with its API key."""
    principal = create_principal(session=session, name=body.name, role=body.role)
    key = create_api_key(session=session, principal=principal)
    (made,) = principal_keys(session=session, principal_id=principal.id)  # a new principal: one key
    session.commit()
    return KeyCreated(id=made.id, principal_id=principal.id, role=principal.role, key=key)


class ApiKeysPublic(ListPage):
    data: list[ApiKeyPublic]


@router.get("/v1/keys", tags=["tenancy"])
def list_keys(
    caller: AdminDep, session: TenantSessionDep, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> ApiKeysPublic:
    """The API keys of the caller's tenant, oldest first, revoked ones included; never a key or
    its hash."""
    page = page_api_keys(session=session, cursor=cursor, limit=limit)
    keys = [
        ApiKeyPublic(
            id=key.id,
            prefix=key.prefix,
            principal_id=principal.id,
            name=principal.name,
            role=principal.role,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
        )
        for key, principal in page.rows
    ]
    return ApiKeysPublic(data=keys, count=page.count, next_cursor=page.next_cursor)


@router.delete("/v1/keys/{key_id}", tags=["tenancy"], status_code=204)
def revoke_key(key_id: uuid.UUID, caller: AdminDep, session: TenantSessionDep) -> Response:
    """Revoke a key of the caller's tenant: its API calls and console sessions end at once."""
    revoke_api_key_by_id(session=session, key_id=key_id)
    session.commit()
    return Response(status_code=204)


@router.get("/v1/tenant/settings", tags=["tenancy"])
def get_tenant_settings(caller: CallerDep, session: TenantSessionDep) -> TenantSettings:
    """The caller's tenant's settings (separation of duties, …)."""
    return tenant_settings(session=session)


@router.put("/v1/tenant/settings", tags=["tenancy"])
def put_tenant_settings(body: TenantSettings, caller: AdminDep, session: TenantSessionDep) -> TenantSettings:
    """Change the tenant's settings (administrators)."""
    updated = update_tenant_settings(session=session, settings=body)
    session.commit()
    return updated
