"""A tiny MCP server on stdio for tests: a currency converter, a switch that turns on a weather
forecast tool (and says the tool list changed), a tool with a dotted name, and (with
FAKE_MCP_SLOW set) a tool that takes as long as it is told to.

    python mcp_tools_server.py            # the official SDK's server (2026-era and older clients)
    python mcp_tools_server.py --legacy   # hand-written JSON-RPC, 2025-06-18 only, as most servers are

State that survives the process (whether forecasts are on) is kept in the JSON file named by
FAKE_MCP_STATE, so every connection to the server sees the same tool list.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

RATES = {"EUR": 1.10, "USD": 1.0, "GBP": 1.25}

TOOLS: dict[str, dict[str, Any]] = {
    "convert_currency": {
        "name": "convert_currency",
        "description": "Convert an amount of money from one currency to another. Uses today's fixed rates.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "amount": {"type": "number"},
                "from_currency": {"type": "string", "description": "ISO code, like EUR"},
                "to_currency": {"type": "string", "description": "ISO code, like USD"},
            },
            "required": ["amount", "from_currency", "to_currency"],
        },
        "annotations": {"readOnlyHint": True},
    },
    "enable_forecasts": {
        "name": "enable_forecasts",
        "description": "Turn on the weather forecast tool.",
        "inputSchema": {"type": "object", "properties": {}},
        "annotations": {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": True},
    },
    "fake.whoami": {
        "name": "fake.whoami",
        "description": "Say whether the server got its token.",
        "inputSchema": {"type": "object", "properties": {}},
    },
    "slow_echo": {
        "name": "slow_echo",
        "description": "Say the text back after waiting the given number of seconds.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string"}, "seconds": {"type": "number"}},
            "required": ["text", "seconds"],
        },
        "annotations": {"readOnlyHint": True},
    },
    "weather_forecast": {
        "name": "weather_forecast",
        "description": "Tomorrow's weather forecast for a city.",
        "inputSchema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "annotations": {"readOnlyHint": True},
    },
}


def state_file() -> Path:
    return Path(os.environ["FAKE_MCP_STATE"])


def forecasts_on() -> bool:
    path = state_file()
    return path.exists() and bool(json.loads(path.read_text()).get("forecasts"))


def listed() -> list[dict[str, Any]]:
    hidden = {"weather_forecast"} if not forecasts_on() else set()
    if not os.environ.get("FAKE_MCP_SLOW"):
        hidden.add("slow_echo")
    return [tool for name, tool in TOOLS.items() if name not in hidden]


def run_tool(name: str, arguments: dict[str, Any]) -> tuple[str, bool]:
    """(text, is_error) for a call; raises KeyError for a tool the server does not offer now."""
    if name not in {tool["name"] for tool in listed()}:
        raise KeyError(name)
    if name == "convert_currency":
        source, target = arguments["from_currency"].upper(), arguments["to_currency"].upper()
        if source not in RATES or target not in RATES:
            return f"unknown currency {source if source not in RATES else target}", True
        value = float(arguments["amount"]) * RATES[source] / RATES[target]
        return f"{float(arguments['amount']):.2f} {source} = {value:.2f} {target}", False
    if name == "enable_forecasts":
        state_file().write_text(json.dumps({"forecasts": True}))
        return "Weather forecasts are on.", False
    if name == "fake.whoami":
        return ("token: yes" if os.environ.get("FAKE_MCP_TOKEN") else "token: no"), False
    if name == "slow_echo":
        return str(arguments["text"]), False
    return f"Tomorrow in {arguments['city']}: sunny, 21 °C.", False


def serve_with_sdk() -> None:
    import anyio
    import mcp_types as types
    from mcp.server import Server
    from mcp.server.stdio import stdio_server
    from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
    from mcp.shared.exceptions import MCPError
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    bus = InMemorySubscriptionBus()

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool.model_validate(t) for t in listed()])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        if params.name == "slow_echo":
            await anyio.sleep(float((params.arguments or {}).get("seconds", 0)))
        try:
            text, is_error = run_tool(params.name, params.arguments or {})
        except KeyError:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}") from None
        if params.name == "enable_forecasts":
            if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
                await bus.publish(ToolsListChanged())
            else:
                await ctx.session.send_tool_list_changed()
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)],
            structured_content={"text": text},
            is_error=is_error,
        )

    server: Server[Any] = Server(
        "fake-tools",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_subscriptions_listen=ListenHandler(bus),
    )

    async def main() -> None:
        from mcp.server.lowlevel.server import NotificationOptions

        options = server.create_initialization_options(NotificationOptions(tools_changed=True))
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, options)

    anyio.run(main)


def serve_legacy() -> None:
    """JSON-RPC by hand: initialize, tools/list, tools/call, and nothing of the 2026 protocol."""

    def send(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
        sys.stdout.flush()

    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        method, ident, params = message.get("method"), message.get("id"), message.get("params") or {}
        if ident is None:
            continue  # notifications (initialized, cancelled)
        if method == "initialize":
            result: dict[str, Any] = {
                "protocolVersion": "2025-06-18",
                "capabilities": {"tools": {"listChanged": True}},
                "serverInfo": {"name": "fake-legacy-tools", "version": "1.0"},
            }
        elif method == "ping":
            result = {}
        elif method == "tools/list":
            result = {"tools": listed()}
        elif method == "tools/call":
            try:
                text, is_error = run_tool(params["name"], params.get("arguments") or {})
            except KeyError:
                send({"id": ident, "error": {"code": -32602, "message": f"Unknown tool: {params['name']}"}})
                continue
            if params["name"] == "enable_forecasts":
                send({"method": "notifications/tools/list_changed"})
            result = {"content": [{"type": "text", "text": text}], "isError": is_error}
        else:
            send({"id": ident, "error": {"code": -32601, "message": "Method not found"}})
            continue
        send({"id": ident, "result": result})


if __name__ == "__main__":
    if "--legacy" in sys.argv:
        serve_legacy()
    else:
        serve_with_sdk()
