"""`quire mcp` (serve Quire over stdio) and `quire tools mcp …` (the MCP servers tools come from).

The commands are registered on the `quire` app by `register_mcp_commands`, with the CLI's own
helpers passed in, so that this module does not import `quire.app.cli`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console

from quire.core.settings import Settings

KeyOption = Annotated[
    str | None, typer.Option("--key", help="The API key calls run as (default: QUIRE_API_KEY).")
]
TenantOption = Annotated[str, typer.Option(help="Tenant name.")]


def _pairs(values: list[str] | None, what: str, fail: Callable[[str], None]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values or []:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            fail(f"{what} {value!r} is not NAME=VALUE")
        pairs[name] = rest
    return pairs


@contextmanager
def _tenant_session(settings: Settings, tenant: str) -> Iterator[Any]:
    from quire.core.db import Database
    from quire.core.tenancy import get_tenant_by_name

    database = Database.from_settings(settings, pool_size=2)
    try:
        with database.system_session() as system:
            tenant_row = get_tenant_by_name(session=system, name=tenant)
        with database.tenant_session(tenant_row.id) as session:
            yield session
    finally:
        database.dispose()


def _print_sync(out: Console, outcome: Any) -> None:
    if outcome.error:
        out.print(
            f"[red]{outcome.server.name}: {outcome.error}[/] (the catalog keeps its tools)", highlight=False
        )
        return
    out.print(
        f"{outcome.server.name}: {outcome.server.tool_count} tools "
        f"({outcome.added} added, {outcome.changed} changed, {outcome.removed} removed)",
        highlight=False,
    )
    if outcome.skipped:
        out.print(f"[yellow]left out (names taken): {', '.join(outcome.skipped)}[/]", highlight=False)


def register_mcp_commands(
    app: typer.Typer,
    *,
    friendly: Callable[[Any], Any],
    settings_for: Callable[[str], Settings],
    out: Console,
    fail: Callable[[str], None],
) -> None:
    tools_app = typer.Typer(help="The tool catalog.", no_args_is_help=True)
    servers_app = typer.Typer(help="MCP servers that tools are imported from.", no_args_is_help=True)
    tools_app.add_typer(servers_app, name="mcp")
    app.add_typer(tools_app, name="tools")

    @app.command("mcp")
    @friendly
    def mcp(key: KeyOption = None) -> None:
        """Serve Quire (search, read, recall, propose_memory) to one MCP client over stdio."""
        from quire.app.mcp import serve_stdio

        settings = settings_for("mcp")
        key = key or settings.api_key
        if not key:
            fail("give the API key the calls run as: --key or QUIRE_API_KEY")
            return
        serve_stdio(settings, key=key)

    @servers_app.command("add")
    @friendly
    def add(
        name: Annotated[str, typer.Argument(help="A name for the server; its tools' source is mcp:<name>.")],
        command: Annotated[str | None, typer.Option(help="stdio: the program to start.")] = None,
        arg: Annotated[list[str] | None, typer.Option(help="stdio: an argument (repeatable).")] = None,
        env: Annotated[list[str] | None, typer.Option(help="stdio: NAME=VALUE (repeatable; secret).")] = None,
        url: Annotated[str | None, typer.Option(help="http: the streamable-HTTP endpoint.")] = None,
        header: Annotated[
            list[str] | None, typer.Option(help="http: NAME=VALUE (repeatable; secret).")
        ] = None,
        sync: Annotated[bool, typer.Option(help="Import its tools now.")] = True,
        tenant: TenantOption = "default",
    ) -> None:
        """Register an MCP server and import its tools."""
        from pydantic import ValidationError

        from quire.agent.mcp.access import mcp_access
        from quire.agent.mcp.hub import get_hub
        from quire.agent.mcp.models import McpServerCreate
        from quire.agent.mcp.service import register_server, sync_server
        from quire.app.services import content_environment

        try:
            spec = McpServerCreate(
                name=name,
                transport="http" if url else "stdio",
                command=command,
                args=list(arg or []),
                env=_pairs(env, "--env", fail),
                url=url,
                headers=_pairs(header, "--header", fail),
            )
        except ValidationError as error:
            fail("; ".join(e["msg"] for e in error.errors()))
            return
        settings = settings_for("tools")
        access = mcp_access(settings)
        with _tenant_session(settings, tenant) as session:
            server = register_server(session, tenant_id=session.tenant_id, spec=spec, access=access)
            session.commit()
            out.print(f"Registered {name}.")
            if sync:
                environment = content_environment(settings, None)
                outcome = sync_server(
                    session, server=server, embedder=environment.embedder, hub=get_hub(), access=access
                )
                session.commit()
                _print_sync(out, outcome)

    @servers_app.command("list")
    @friendly
    def list_(
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
        tenant: TenantOption = "default",
    ) -> None:
        """The tenant's MCP servers, their tool counts and last errors."""
        import json

        from rich.table import Table

        from quire.agent.mcp.models import McpServerPublic
        from quire.agent.mcp.service import list_servers

        with _tenant_session(settings_for("tools"), tenant) as session:
            servers = [McpServerPublic.of(s) for s in list_servers(session)]
        if as_json:
            data = [s.model_dump(mode="json") for s in servers]
            print(json.dumps({"data": data, "count": len(data)}, indent=2))
            return
        table = Table(
            "name", "transport", "where", "tools", "synced", "error", title=f"{len(servers)} MCP servers"
        )
        for s in servers:
            table.add_row(
                s.name + ("" if s.enabled else " (disabled)"),
                s.transport,
                (s.command or "") if s.transport == "stdio" else (s.url or ""),
                str(s.tool_count),
                s.last_synced_at.strftime("%Y-%m-%d %H:%M:%S") if s.last_synced_at else "never",
                (s.last_error or "")[:60],
            )
        out.print(table)

    @servers_app.command("sync")
    @friendly
    def sync_(
        name: Annotated[str, typer.Argument(help="The server.")], tenant: TenantOption = "default"
    ) -> None:
        """List the server's tools again and bring the catalog in line."""
        from quire.agent.mcp.access import mcp_access
        from quire.agent.mcp.hub import get_hub
        from quire.agent.mcp.service import get_server, sync_server
        from quire.app.services import content_environment

        settings = settings_for("tools")
        environment = content_environment(settings, None)
        with _tenant_session(settings, tenant) as session:
            outcome = sync_server(
                session,
                server=get_server(session, name=name),
                embedder=environment.embedder,
                hub=get_hub(),
                access=mcp_access(settings),
            )
            session.commit()
        _print_sync(out, outcome)
        if outcome.error:
            raise typer.Exit(1)

    @servers_app.command("remove")
    @friendly
    def remove(
        name: Annotated[str, typer.Argument(help="The server.")], tenant: TenantOption = "default"
    ) -> None:
        """Remove the server and its tools from the catalog."""
        from quire.agent.mcp.service import get_server, remove_server
        from quire.app.services import content_environment

        settings = settings_for("tools")
        environment = content_environment(settings, None)
        with _tenant_session(settings, tenant) as session:
            remove_server(
                session, server=get_server(session, name=name), embedder=environment.embedder, hub=None
            )
            session.commit()
        out.print(f"Removed {name} and its tools.")
