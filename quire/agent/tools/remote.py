"""Tools that live elsewhere (imported from MCP servers): described by the catalog, called
through whatever the process registered for their source."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quire.agent.tools.base import Tool, ToolContext, ToolOutput
from quire.agent.tools.catalog import ToolDescription

# How to call a tool of a source kind ("mcp"): (ctx, source, name, arguments). The process's
# agent environment holds one per kind (`AgentEnvironment.remote_callers`).
RemoteCaller = Callable[[ToolContext, str, str, dict[str, Any]], ToolOutput]


def remote_tool(description: ToolDescription, source: str) -> Tool:
    def call(ctx: ToolContext, arguments: Any) -> ToolOutput:
        from quire.agent.environment import agent_of

        kind = source.split(":", 1)[0]
        caller = agent_of(ctx.run.services).remote_callers.get(kind)
        if caller is None:
            return ToolOutput(
                content=f"tools from {source} cannot be called from this process", is_error=True
            )
        return caller(ctx, source, description.name, dict(arguments))

    return Tool(
        name=description.name,
        summary=description.summary,
        description=description.description,
        arguments=None,
        function=call,
        tags=tuple(description.tags),
        role=description.role,
        side_effects=description.side_effects,
        requires_approval=description.requires_approval,
        examples=tuple(e for e in description.examples if isinstance(e, dict)),
        source=source,
        parameters=description.parameters,
    )
