"""The MCP servers of a tenant: register, list, sync their tools into the catalog, remove.

A sync lists the server's tools and makes the catalog's `mcp:<name>` source exactly those. When
the server cannot be reached, the error is kept on the server (`last_error`, only what a tenant
may see: `public_error`) and the catalog keeps the tools it had.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import text
from sqlmodel import Session, col, select

from quire.agent.mcp.access import McpAccess
from quire.agent.mcp.credentials import McpCredentials, credential_columns
from quire.agent.mcp.endpoints import endpoint_of, public_error
from quire.agent.mcp.errors import InvalidMcpServer, McpServerExists, McpServerNotFound
from quire.agent.mcp.hub import McpHub
from quire.agent.mcp.importing import describe_tool
from quire.agent.mcp.models import McpServer, McpServerCreate, McpServerPublic, McpSyncPublic
from quire.agent.tools.catalog import CatalogTool, ToolDescription, sync_source
from quire.core.embeddings import Embedder
from quire.core.models import utcnow
from quire.core.pages import Keyset, Page, read_page

logger = logging.getLogger(__name__)


def register_server(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    spec: McpServerCreate,
    access: McpAccess,
    allow_stdio: bool = True,
) -> McpServer:
    """Add an MCP server to the tenant (its tools arrive with the first sync), its secrets encrypted.

    An HTTP server's URL must pass the outbound policy now (OutboundRefused); every connection
    is checked again when it is made.
    """
    if spec.transport == "stdio" and not allow_stdio:
        raise InvalidMcpServer("this installation does not start MCP servers as local commands (stdio)")
    if spec.transport == "http" and spec.url:
        access.outbound.check_url(spec.url)
    if find_server(session, name=spec.name) is not None:
        raise McpServerExists(f"an MCP server named {spec.name!r} exists already")
    server = McpServer(
        tenant_id=tenant_id,
        name=spec.name,
        transport=spec.transport,
        command=spec.command,
        args=spec.args,
        enabled=spec.enabled,
        **credential_columns(
            access.credentials, McpCredentials(env=spec.env, headers=spec.headers, url=spec.url)
        ),
    )
    session.add(server)
    session.flush()
    return server


def find_server(session: Session, *, name: str) -> McpServer | None:
    return session.exec(select(McpServer).where(McpServer.name == name)).first()


def get_server(session: Session, *, name: str) -> McpServer:
    server = find_server(session, name=name)
    if server is None:
        raise McpServerNotFound(f"no MCP server named {name!r}")
    return server


def list_servers(session: Session) -> list[McpServer]:
    return list(session.exec(select(McpServer).order_by(col(McpServer.name))))


# A tenant's servers by name, which is unique in it.
SERVER_PAGES = Keyset((col(McpServer.name),), descending=False)


def page_servers(session: Session, *, cursor: str | None = None, limit: int = 50) -> Page[McpServer]:
    return read_page(session, select(McpServer), keyset=SERVER_PAGES, cursor=cursor, limit=limit)


def sync_server(
    session: Session,
    *,
    server: McpServer,
    embedder: Embedder,
    hub: McpHub,
    access: McpAccess,
    keep_open: bool = False,
) -> McpSyncPublic:
    """Make the catalog hold exactly the tools the server lists now (none when it is disabled).

    `keep_open` leaves the connection open, listening for changes (workers do; the API does not).
    """
    descriptions: list[ToolDescription] = []
    if server.enabled:
        endpoint = endpoint_of(server, access)
        try:
            listed = hub.tools(endpoint, refresh=True, keep_open=keep_open)
        except Exception as error:
            server.last_error = public_error(error, endpoint)
            session.add(server)
            session.flush()
            logger.warning("syncing MCP server %s failed: %s", endpoint.label(), server.last_error)
            return McpSyncPublic(server=McpServerPublic.of(server), error=server.last_error)
        descriptions = [describe_tool(tool, server=server.name) for tool in listed]
    wanted, skipped = _distinct(descriptions)
    # One sync of a server at a time; the listing above happens outside the lock.
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
        {"key": f"quire-mcp-sync:{server.tenant_id}:{server.name}"},
    )
    taken = _taken(session, source=server.source, names=[d.name for d in wanted])
    report = sync_source(
        session, tenant_id=server.tenant_id, source=server.source, tools=wanted, embedder=embedder
    )
    skipped += sorted(taken)
    server.tool_count = len(wanted) - len(taken)
    server.last_synced_at = utcnow()
    server.last_error = None
    session.add(server)
    session.flush()
    if skipped:
        logger.warning("MCP server %s: tools left out (names taken): %s", server.name, ", ".join(skipped))
    return McpSyncPublic(
        server=McpServerPublic.of(server),
        added=report.added,
        changed=report.changed,
        removed=report.removed,
        unchanged=report.unchanged,
        skipped=skipped,
    )


def remove_server(session: Session, *, server: McpServer, embedder: Embedder, hub: McpHub | None) -> None:
    """Remove the server and its tools from the catalog (and close this process's connection)."""
    sync_source(session, tenant_id=server.tenant_id, source=server.source, tools=[], embedder=embedder)
    session.delete(server)
    session.flush()
    if hub is not None:
        hub.close((server.tenant_id, server.name))


def server_tools(session: Session, *, server: McpServer) -> list[CatalogTool]:
    return list(
        session.exec(
            select(CatalogTool).where(CatalogTool.source == server.source).order_by(col(CatalogTool.name))
        )
    )


def _distinct(descriptions: list[ToolDescription]) -> tuple[list[ToolDescription], list[str]]:
    """The tools with distinct catalog names, and the names that came twice (rewritten names can)."""
    seen: dict[str, ToolDescription] = {}
    twice: list[str] = []
    for description in descriptions:
        if description.name in seen:
            twice.append(description.name)
        else:
            seen[description.name] = description
    return list(seen.values()), twice


def _taken(session: Session, *, source: str, names: list[str]) -> set[str]:
    rows = session.execute(
        text("SELECT name FROM agent_tool WHERE source <> :source AND name = ANY(CAST(:names AS text[]))"),
        {"source": source, "names": names},
    )
    return {row[0] for row in rows}
