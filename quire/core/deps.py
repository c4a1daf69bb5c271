"""FastAPI dependencies every package's routes share: the database, the caller, their role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from quire.core.db import Database, TenantSession
from quire.core.errors import Forbidden, Unauthenticated
from quire.core.logcontext import bind
from quire.core.models import Role
from quire.core.settings import Settings
from quire.core.tenancy import Caller, authenticate

bearer = HTTPBearer(auto_error=False, description="A Quire API key: `Authorization: Bearer qk_…`")


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DatabaseDep = Annotated[Database, Depends(get_database)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_caller(
    request: Request,
    database: DatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Caller:
    if credentials is None:
        raise Unauthenticated("send an API key in the header `Authorization: Bearer <key>`")
    with database.system_session() as session:
        caller = authenticate(session=session, key=credentials.credentials)
    request.state.caller = caller
    bind(tenant_id=caller.tenant_id, principal_id=caller.principal_id)
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


def require(role: Role) -> Callable[[Caller], Caller]:
    """A dependency that lets through callers whose role includes `role`."""

    def check(caller: CallerDep) -> Caller:
        if not caller.allows(role):
            raise Forbidden(f"this needs the {role.value} role; the key's role is {caller.role.value}")
        return caller

    return check


ReaderDep = Annotated[Caller, Depends(require(Role.reader))]
ContributorDep = Annotated[Caller, Depends(require(Role.contributor))]
ReviewerDep = Annotated[Caller, Depends(require(Role.reviewer))]
AdminDep = Annotated[Caller, Depends(require(Role.admin))]


def get_tenant_session(database: DatabaseDep, caller: CallerDep) -> Iterator[TenantSession]:
    with database.tenant_session(caller.tenant_id) as session:
        yield session


TenantSessionDep = Annotated[TenantSession, Depends(get_tenant_session)]
