"""What can go wrong with MCP servers: Quire's own (importing, calling) and as a server."""

from __future__ import annotations

from quire.core.errors import Conflict, InvalidRequest, NotFound, QuireError, ServiceUnavailable


class McpError(QuireError):
    """Base class for MCP errors."""

    code = "mcp_error"


class McpServerNotFound(McpError, NotFound):
    """No MCP server of that name is registered for the tenant."""

    code = "mcp_server_not_found"


class McpServerExists(McpError, Conflict):
    """An MCP server of that name is registered already."""

    code = "mcp_server_exists"


class InvalidMcpServer(McpError, InvalidRequest):
    """The server's configuration cannot work (a stdio server without a command, …)."""

    code = "invalid_mcp_server"


class McpUnavailable(McpError, ServiceUnavailable):
    """The MCP server could not be reached, or it closed the connection, or it did not answer in time."""

    code = "mcp_unavailable"
