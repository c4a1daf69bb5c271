"""`quire keys …` (through the API or on the local database) and `quire tenant-create` (local only)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Protocol

import typer

from quire.app.cli_common import (
    JsonOption,
    TenantOption,
    api_client,
    fail,
    friendly,
    out,
    print_json,
    settings_for,
)
from quire.core.errors import NotFound
from quire.core.models import Role

if TYPE_CHECKING:
    from quire.client import Quire
    from quire.client.models import ApiKey

keys_app = typer.Typer(help="API keys of a tenant.", no_args_is_help=True)


class Keys(Protocol):
    where: str  # how the printed lines name the tenant: "" through the API, the tenant's name here

    def create(self, *, role: Role, name: str) -> str: ...

    def list(self) -> list[ApiKey]: ...

    def revoke_id(self, key_id: uuid.UUID) -> tuple[str, str | None]:
        """Revoke one key; return its prefix and, if it was revoked before, when."""
        ...

    def revoke_prefix(self, prefix: str) -> int: ...


class ApiKeys:
    where = ""

    def __init__(self, client: Quire) -> None:
        self.client = client

    def create(self, *, role: Role, name: str) -> str:
        return self.client.create_key(role=role.value, name=name).key

    def list(self) -> list[ApiKey]:
        return list(self.client.keys())

    def revoke_id(self, key_id: uuid.UUID) -> tuple[str, str | None]:
        found = next((k for k in self.list() if k.id == str(key_id)), None)
        if found is None:
            raise NotFound(f"no key with id {key_id} in this tenant")
        if found.revoked_at is None:
            self.client.revoke_key(found.id)
        return found.prefix, f"{found.revoked_at:%Y-%m-%d %H:%M:%S}" if found.revoked_at else None

    def revoke_prefix(self, prefix: str) -> int:
        live = [k for k in self.list() if k.prefix == prefix[:10] and k.revoked_at is None]
        for key in live:
            self.client.revoke_key(key.id)
        return len(live)


class LocalKeys:
    def __init__(self, tenant: str) -> None:
        from quire.core.db import Database
        from quire.core.tenancy import get_tenant_by_name

        self.where = f" in tenant {tenant}"
        self.database = Database.from_settings(settings_for("keys"), pool_size=1)
        try:
            with self.database.system_session() as system:
                self.tenant_id = get_tenant_by_name(session=system, name=tenant).id
        except BaseException:
            self.database.dispose()
            raise

    def close(self) -> None:
        self.database.dispose()

    def create(self, *, role: Role, name: str) -> str:
        from quire.core.tenancy import create_api_key, create_principal

        with self.database.tenant_session(self.tenant_id) as session:
            principal = create_principal(session=session, name=name, role=role)
            key = create_api_key(session=session, principal=principal)
            session.commit()
        return key

    def list(self) -> list[ApiKey]:
        from quire.client.models import ApiKey
        from quire.core.models import ApiKeyPublic
        from quire.core.tenancy import list_api_keys

        with self.database.tenant_session(self.tenant_id) as session:
            rows = list_api_keys(session=session)
        return [
            ApiKey.model_validate(
                ApiKeyPublic(
                    id=key.id,
                    prefix=key.prefix,
                    principal_id=principal.id,
                    name=principal.name,
                    role=principal.role,
                    created_at=key.created_at,
                    revoked_at=key.revoked_at,
                ).model_dump(mode="json")
            )
            for key, principal in rows
        ]

    def revoke_id(self, key_id: uuid.UUID) -> tuple[str, str | None]:
        from quire.core.tenancy import get_api_key, revoke_api_key_by_id

        with self.database.tenant_session(self.tenant_id) as session:
            before = get_api_key(session=session, key_id=key_id).revoked_at
            revoked = revoke_api_key_by_id(session=session, key_id=key_id)
            session.commit()
        return revoked.prefix, f"{before:%Y-%m-%d %H:%M:%S}" if before else None

    def revoke_prefix(self, prefix: str) -> int:
        from quire.core.tenancy import revoke_api_key

        with self.database.tenant_session(self.tenant_id) as session:
            count = revoke_api_key(session=session, prefix=prefix)
            session.commit()
        return count


def keys_backend(tenant: str) -> ApiKeys | LocalKeys:
    client = api_client()
    return ApiKeys(client) if client else LocalKeys(tenant)


def _close(keys: ApiKeys | LocalKeys) -> None:
    if isinstance(keys, LocalKeys):
        keys.close()
    else:
        keys.client.close()


@keys_app.command("create")
@friendly
def keys_create(
    role: Annotated[
        Role, typer.Option("--role", "-r", metavar="ROLE", help="reader, contributor, reviewer or admin.")
    ],
    name: Annotated[str, typer.Option("--name", metavar="NAME", help="Who or what uses the key.")] = "",
    as_json: JsonOption = False,
    tenant: TenantOption = "default",
) -> None:
    """Create a principal with ROLE and print its API key (once)."""
    keys = keys_backend(tenant)
    try:
        key = keys.create(role=role, name=name or role.value)
    finally:
        _close(keys)
    if as_json:
        print_json({"name": name or role.value, "role": role.value, "key": key})
        return
    out.print(f"API key for {name or role.value} ({role.value}){keys.where}:", highlight=False)
    out.print(key, highlight=False)


@keys_app.command("list")
@friendly
def keys_list(as_json: JsonOption = False, tenant: TenantOption = "default") -> None:
    """List the tenant's API keys, revoked ones included (prefixes only: Quire keeps only hashes)."""
    from rich.table import Table

    keys = keys_backend(tenant)
    try:
        rows = keys.list()
    finally:
        _close(keys)
    if as_json:
        print_json({"data": [row.model_dump(mode="json") for row in rows], "count": len(rows)})
        return
    table = Table("id", "prefix", "name", "role", "created", "status", title=f"{len(rows)} keys{keys.where}")
    for row in rows:
        status = f"revoked {row.revoked_at:%Y-%m-%d %H:%M:%S}" if row.revoked_at else "live"
        table.add_row(row.id, row.prefix, row.name, row.role, f"{row.created_at:%Y-%m-%d %H:%M:%S}", status)
    out.print(table)


@keys_app.command("revoke")
@friendly
def keys_revoke(
    key: Annotated[
        str,
        typer.Argument(
            metavar="KEY", help="The key's id (from `quire keys list`), the key, or its first 10 characters."
        ),
    ],
    tenant: TenantOption = "default",
) -> None:
    """Revoke an API key: its API calls and console sessions end at once."""
    try:
        key_id: uuid.UUID | None = uuid.UUID(key)
    except ValueError:
        key_id = None
    keys = keys_backend(tenant)
    try:
        if key_id is not None:
            prefix, revoked_before = keys.revoke_id(key_id)
        else:
            count = keys.revoke_prefix(key)
    finally:
        _close(keys)
    if key_id is not None:
        out.print(
            f"Key {prefix} was already revoked on {revoked_before}."
            if revoked_before
            else f"Revoked key {prefix}."
        )
    elif count:
        out.print(f"Revoked {count} key(s).")
    else:
        fail(f"no active key starts with {key[:10]!r}{keys.where}")


@friendly
def tenant_create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The new tenant's name.")],
    as_json: JsonOption = False,
) -> None:
    """Create a tenant with an admin, and print the admin's API key (once; local database only)."""
    from quire.core.db import Database
    from quire.core.tenancy import create_api_key, create_principal, create_tenant

    settings = settings_for("tenant")
    database = Database.from_settings(settings, pool_size=1)
    with database.system_session() as system:
        tenant = create_tenant(session=system, name=name)
        system.commit()
    with database.tenant_session(tenant.id) as session:
        principal = create_principal(session=session, name="admin", role=Role.admin)
        key = create_api_key(session=session, principal=principal)
        session.commit()
    database.dispose()
    if as_json:
        print_json({"tenant": name, "name": "admin", "role": Role.admin.value, "key": key})
        return
    out.print(f"Tenant {name} created. Admin API key:")
    out.print(key, highlight=False)
