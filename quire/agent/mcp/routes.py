"""HTTP API of the MCP servers a tenant imports tools from (administrators only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from quire.agent.mcp import service
from quire.agent.mcp.access import mcp_access
from quire.agent.mcp.hub import get_hub
from quire.agent.mcp.models import McpServerCreate, McpServerPublic, McpServersPublic, McpSyncPublic
from quire.content.environment import ContentDep
from quire.core.deps import AdminDep, SettingsDep, TenantSessionDep
from quire.core.pages import DEFAULT_LIMIT, CursorQuery, LimitQuery

router = APIRouter(prefix="/v1/tools/mcp-servers", tags=["tools"])


@router.post(
    "",
    status_code=201,
    responses={
        409: {"description": "A server of that name exists already"},
        422: {"description": "Malformed, or its URL is one Quire does not connect to (an internal address)"},
    },
)
def register_mcp_server(
    body: McpServerCreate,
    caller: AdminDep,
    session: TenantSessionDep,
    settings: SettingsDep,
    content: ContentDep,
    sync: Annotated[bool, Query(description="Import its tools now.")] = True,
) -> McpSyncPublic:
    """Register an MCP server (stdio command or streamable-HTTP URL) and import its tools."""
    access = mcp_access(settings)
    server = service.register_server(
        session, tenant_id=caller.tenant_id, spec=body, access=access, allow_stdio=settings.mcp_allow_stdio
    )
    session.commit()
    if not sync:
        return McpSyncPublic(server=McpServerPublic.of(server))
    outcome = service.sync_server(
        session, server=server, embedder=content.embedder, hub=get_hub(), access=access
    )
    session.commit()
    return outcome


@router.get("")
def list_mcp_servers(
    caller: AdminDep, session: TenantSessionDep, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> McpServersPublic:
    """The tenant's MCP servers, by name."""
    page = service.page_servers(session, cursor=cursor, limit=limit)
    return McpServersPublic(
        data=[McpServerPublic.of(s) for s in page.rows], count=page.count, next_cursor=page.next_cursor
    )


@router.get("/{name}")
def get_mcp_server(name: str, caller: AdminDep, session: TenantSessionDep) -> McpServerPublic:
    """An MCP server of the tenant's, with its tools' count and its last sync."""
    return McpServerPublic.of(service.get_server(session, name=name))


@router.post("/{name}/sync")
def sync_mcp_server(
    name: str, caller: AdminDep, session: TenantSessionDep, settings: SettingsDep, content: ContentDep
) -> McpSyncPublic:
    """List the server's tools again and bring the catalog in line (workers also do this on their own)."""
    server = service.get_server(session, name=name)
    outcome = service.sync_server(
        session, server=server, embedder=content.embedder, hub=get_hub(), access=mcp_access(settings)
    )
    session.commit()
    return outcome


@router.delete("/{name}", status_code=204)
def remove_mcp_server(
    name: str, caller: AdminDep, session: TenantSessionDep, content: ContentDep
) -> Response:
    """Remove the server and its tools from the catalog."""
    server = service.get_server(session, name=name)
    service.remove_server(session, server=server, embedder=content.embedder, hub=get_hub())
    session.commit()
    return Response(status_code=204)
