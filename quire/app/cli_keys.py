"""`quire keys …` and `quire tenant-create`: tenants and their API keys, on the local database."""

from __future__ import annotations

from typing import Annotated

import typer

from quire.app.cli_common import fail, friendly, out, settings_for
from quire.core.models import Role

keys_app = typer.Typer(help="API keys of a tenant.", no_args_is_help=True)


@keys_app.command("create")
@friendly
def keys_create(
    role: Annotated[Role, typer.Option(help="What the key may do.")],
    name: Annotated[str, typer.Option(help="Who or what uses the key.")] = "",
    tenant: Annotated[str, typer.Option(help="Tenant name.")] = "default",
) -> None:
    """Create a principal with ROLE in TENANT and print its API key (once)."""
    from quire.core.db import Database
    from quire.core.tenancy import create_api_key, create_principal, get_tenant_by_name

    settings = settings_for("keys")
    database = Database.from_settings(settings, pool_size=1)
    with database.system_session() as system:
        tenant_row = get_tenant_by_name(session=system, name=tenant)
    with database.tenant_session(tenant_row.id) as session:
        principal = create_principal(session=session, name=name or role.value, role=role)
        key = create_api_key(session=session, principal=principal)
        session.commit()
    out.print(f"API key for {principal.name} ({role.value}) in tenant {tenant}:")
    out.print(key, highlight=False)
    database.dispose()


@keys_app.command("list")
@friendly
def keys_list(tenant: Annotated[str, typer.Option(help="Tenant name.")] = "default") -> None:
    """List the API keys of TENANT, revoked ones included (prefixes only: Quire keeps only hashes)."""
    from rich.table import Table

    from quire.core.db import Database
    from quire.core.tenancy import get_tenant_by_name, list_api_keys

    settings = settings_for("keys")
    database = Database.from_settings(settings, pool_size=1)
    with database.system_session() as system:
        tenant_row = get_tenant_by_name(session=system, name=tenant)
    with database.tenant_session(tenant_row.id) as session:
        keys = list_api_keys(session=session)
    database.dispose()
    table = Table(
        "id", "prefix", "name", "role", "created", "status", title=f"{len(keys)} keys in tenant {tenant}"
    )
    for key, principal in keys:
        status = f"revoked {key.revoked_at:%Y-%m-%d %H:%M:%S}" if key.revoked_at else "live"
        table.add_row(
            str(key.id),
            key.prefix,
            principal.name,
            principal.role.value,
            f"{key.created_at:%Y-%m-%d %H:%M:%S}",
            status,
        )
    out.print(table)


@keys_app.command("revoke")
@friendly
def keys_revoke(
    key: Annotated[
        str,
        typer.Argument(help="The key's id (from `quire keys list`), the key, or its first 10 characters."),
    ],
    tenant: Annotated[str, typer.Option(help="Tenant name.")] = "default",
) -> None:
    """Revoke an API key: its API calls and console sessions end at once."""
    import uuid

    from quire.core.db import Database
    from quire.core.tenancy import get_api_key, get_tenant_by_name, revoke_api_key, revoke_api_key_by_id

    try:
        key_id: uuid.UUID | None = uuid.UUID(key)
    except ValueError:
        key_id = None
    settings = settings_for("keys")
    database = Database.from_settings(settings, pool_size=1)
    try:
        with database.system_session() as system:
            tenant_row = get_tenant_by_name(session=system, name=tenant)
        with database.tenant_session(tenant_row.id) as session:
            if key_id is None:
                count = revoke_api_key(session=session, prefix=key)
                session.commit()
            else:
                revoked_before = get_api_key(session=session, key_id=key_id).revoked_at
                revoked = revoke_api_key_by_id(session=session, key_id=key_id)
                session.commit()
    finally:
        database.dispose()
    if key_id is not None:
        if revoked_before is not None:
            out.print(f"Key {revoked.prefix} was already revoked on {revoked_before:%Y-%m-%d %H:%M:%S}.")
        else:
            out.print(f"Revoked key {revoked.prefix}.")
    elif count:
        out.print(f"Revoked {count} key(s).")
    else:
        fail(f"no active key starts with {key[:10]!r} in tenant {tenant}")


@friendly
def tenant_create(name: Annotated[str, typer.Argument(help="The new tenant's name.")]) -> None:
    """Create a tenant with an admin, and print the admin's API key (once)."""
    from quire.core.db import Database
    from quire.core.tenancy import create_api_key, create_tenant

    settings = settings_for("tenant")
    database = Database.from_settings(settings, pool_size=1)
    with database.system_session() as system:
        tenant = create_tenant(session=system, name=name)
        system.commit()
    with database.tenant_session(tenant.id) as session:
        from quire.core.tenancy import create_principal

        principal = create_principal(session=session, name="admin", role=Role.admin)
        key = create_api_key(session=session, principal=principal)
        session.commit()
    database.dispose()
    out.print(f"Tenant {name} created. Admin API key:")
    out.print(key, highlight=False)
