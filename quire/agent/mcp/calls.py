"""Calling imported MCP tools from the agent loop, and keeping their catalog entries current.

`install_mcp(database, access, content)` returns the caller for `mcp:<server>` sources and makes a change
notice from any connected server re-sync that server's tools.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError

from quire.agent.errors import ToolTimedOut
from quire.agent.mcp.access import McpAccess
from quire.agent.mcp.endpoints import Endpoint, endpoint_of
from quire.agent.mcp.hub import McpHub, get_hub, set_change_handler
from quire.agent.mcp.importing import match_name
from quire.agent.mcp.service import find_server, sync_server
from quire.agent.tools.base import ToolContext, ToolOutput
from quire.agent.tools.remote import RemoteCaller
from quire.content.environment import ContentEnvironment
from quire.core.db import Database

logger = logging.getLogger(__name__)

IDEMPOTENCY_META_KEY = "quire/idempotency-key"
MAX_STRUCTURED_CHARS = 20_000


def call_mcp_tool(
    ctx: ToolContext, source: str, name: str, arguments: dict[str, Any], *, access: McpAccess
) -> ToolOutput:
    """Call `name` on the server behind `source` (`mcp:<server>`), as the run's step, within the
    step's time limit (`ctx.timeout`): past it the request is given up and ToolTimedOut raised."""
    server_name = source.split(":", 1)[1]
    with ctx.run.transaction() as session:  # short: nothing is held while the server works
        server = find_server(session, name=server_name)
    if server is None or not server.enabled:
        return ToolOutput(content=f"The MCP server {server_name!r} is not available any more.", is_error=True)
    endpoint = endpoint_of(server, access)
    hub = get_hub()
    exact = match_name(hub.tools(endpoint), name) or match_name(hub.tools(endpoint, refresh=True), name)
    if exact is None:
        hub.announce(endpoint)  # the catalog is behind the server: re-sync it
        return ToolOutput(content=f"The MCP server {server_name!r} no longer offers {name}.", is_error=True)
    meta = {IDEMPOTENCY_META_KEY: key} if (key := _idempotency_key(ctx)) else None
    try:
        result = hub.call_tool(endpoint, exact, arguments, meta=meta, timeout=ctx.timeout)
    except MCPError as error:
        if error.code == types.REQUEST_TIMEOUT and ctx.timeout is not None:
            raise ToolTimedOut(f"{name} did not finish within {ctx.timeout:g} s") from None
        # e.g. arguments the server's schema refuses: the model can correct them
        return ToolOutput(content=f"The MCP server refused the call: {error}", is_error=True)
    return output_of(result)


def output_of(result: types.CallToolResult) -> ToolOutput:
    """An MCP tool result as the loop takes it: its text, its structured content as data."""
    parts = [_text_of(block) for block in result.content]
    content = "\n\n".join(p for p in parts if p)
    if not content and result.structured_content is not None:
        content = json.dumps(result.structured_content, ensure_ascii=False)[:MAX_STRUCTURED_CHARS]
    if not content:
        content = "The tool failed and gave no reason." if result.is_error else "(no output)"
    return ToolOutput(content=content, data=result.structured_content, is_error=result.is_error)


def _text_of(block: types.ContentBlock) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ImageContent | types.AudioContent):
        kind = "image" if isinstance(block, types.ImageContent) else "audio"
        return f"[{kind} ({block.mime_type}) not shown]"
    if isinstance(block, types.ResourceLink):
        return f"[resource {block.name}: {block.uri}]"
    if isinstance(block, types.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, types.TextResourceContents):
            return resource.text
        return f"[binary resource {resource.uri} not shown]"
    return ""


def _idempotency_key(ctx: ToolContext) -> str | None:
    try:
        return str(ctx.run.idempotency_key)
    except (AttributeError, RuntimeError):
        return None


def resync(
    database: Database,
    endpoint: Endpoint,
    *,
    access: McpAccess,
    content: ContentEnvironment,
    hub: McpHub | None = None,
) -> None:
    """Re-sync one server's tools after it said they changed (or a call found one gone)."""
    with database.tenant_session(endpoint.tenant_id) as session:
        server = find_server(session, name=endpoint.name)
        if server is None or endpoint_of(server, access) != endpoint:
            return  # removed or reconfigured since; its own sync takes care of it
        outcome = sync_server(
            session,
            server=server,
            embedder=content.embedder,
            hub=hub or get_hub(),
            access=access,
            keep_open=True,
        )
        session.commit()
    logger.info(
        "MCP server %s changed its tools: %d added, %d changed, %d removed%s",
        endpoint.label(),
        outcome.added,
        outcome.changed,
        outcome.removed,
        f" (error: {outcome.error})" if outcome.error else "",
    )


def install_mcp(database: Database, access: McpAccess, content: ContentEnvironment) -> RemoteCaller:
    """Follow imported servers' changes in this process; return how it calls their tools."""
    set_change_handler(partial(resync, database, access=access, content=content))
    return partial(call_mcp_tool, access=access)
