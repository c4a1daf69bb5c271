"""`quire memories list`: a tenant's memories, through the API or on the local database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Protocol

import typer

from quire.app.cli_common import JsonOption, TenantOption, api_client, friendly, out, print_json, settings_for

if TYPE_CHECKING:
    from quire.client import Quire
    from quire.client.models import Memory

memories_app = typer.Typer(
    help="Governed memories: list them (review them in the console).", no_args_is_help=True
)


class Memories(Protocol):
    def list(self, *, state: str | None, q: str | None, limit: int) -> tuple[list[Memory], int]: ...


class ApiMemories:
    def __init__(self, client: Quire) -> None:
        self.client = client

    def list(self, *, state: str | None, q: str | None, limit: int) -> tuple[list[Memory], int]:
        pages = self.client.memories(state=state, q=q, limit=min(limit, 100))
        rows = pages.first(limit)
        return rows, pages.count if pages.count is not None else len(rows)


class LocalMemories:
    def __init__(self, tenant: str) -> None:
        self.tenant = tenant

    def list(self, *, state: str | None, q: str | None, limit: int) -> tuple[list[Memory], int]:
        import uuid

        from quire.app.cli_runs import tenant_context
        from quire.client.models import Memory
        from quire.core.models import Role
        from quire.core.tenancy import Caller
        from quire.memory.models import VersionState
        from quire.memory.service import item_public, list_items

        with tenant_context(settings_for("memories"), self.tenant) as (session, _):
            # The command speaks for the installation's operator: an administrator sees every scope.
            caller = Caller(
                principal_id=uuid.uuid4(), tenant_id=session.tenant_id, name="cli", role=Role.admin
            )
            rows, count = list_items(
                session, caller=caller, state=VersionState(state) if state else None, q=q, limit=limit
            )
            items = [item_public(session, item, version) for item, version in rows]
        return [Memory.model_validate(item.model_dump(mode="json")) for item in items], count


@memories_app.command("list")
@friendly
def memories_list(
    state: Annotated[
        str | None,
        typer.Option("--state", "-s", metavar="STATE", help="in_review, approved, rejected, superseded, …"),
    ] = None,
    query: Annotated[
        str | None, typer.Option("--query", "-q", metavar="WORDS", help="Words the text holds.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", help="How many, newest first.")] = 20,
    as_json: JsonOption = False,
    tenant: TenantOption = "default",
) -> None:
    """List memories with their state and text."""
    from rich.table import Table

    client = api_client()
    backend: Memories = ApiMemories(client) if client else LocalMemories(tenant)
    rows, count = backend.list(state=state, q=query, limit=limit)
    if as_json:
        print_json({"data": [row.model_dump(mode="json") for row in rows], "count": count})
        return
    if not rows:
        out.print("No memories.")
        return
    table = Table("id", "kind", "scope", "state", "text", title=f"{len(rows)} of {count} memories")
    for row in rows:
        latest = row.latest
        table.add_row(
            row.id, row.kind, row.scope, latest.state if latest else "", (latest.text if latest else "")[:80]
        )
    out.print(table)
