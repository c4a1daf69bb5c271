"""An MCP tool as the catalog keeps it.

Names: providers accept tool names of `[A-Za-z0-9_-]{1,64}`; MCP allows more (dots, longer
names), so such names are rewritten for the catalog and matched back when called.

Side effects: MCP's annotations are hints. A tool that says it is read-only is treated as
such (role reader, no approval). One that says it is not destructive has side effects but needs
no approval (role contributor). Anything else, including a tool with no annotations (MCP's
own default for `destructiveHint` is true), has side effects and needs a person's approval.
"""

from __future__ import annotations

import re
from typing import Any

import mcp_types as types

from quire.agent.tools.catalog import ToolDescription
from quire.core.models import Role

MAX_SUMMARY = 200
MAX_DESCRIPTION = 2000


def catalog_name(name: str) -> str:
    """The tool's name as providers accept it."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "tool"


def summary_of(text: str) -> str:
    """The first sentence (or line) of a description."""
    first = text.strip().split("\n", 1)[0].strip()
    sentence = re.split(r"(?<=[.!?])\s+", first, maxsplit=1)[0]
    return sentence if len(sentence) <= MAX_SUMMARY else sentence[: MAX_SUMMARY - 1].rstrip() + "…"


def parameters_of(tool: types.Tool) -> dict[str, Any]:
    schema = dict(tool.input_schema or {})
    schema.pop("title", None)
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    return schema


def describe_tool(tool: types.Tool, *, server: str) -> ToolDescription:
    text = (tool.description or "").strip()
    title = (tool.annotations.title if tool.annotations else None) or tool.title
    summary = summary_of(text) if text else (title or f"{tool.name} (from the MCP server {server})")
    description = text if text and text != summary else ""
    if len(description) > MAX_DESCRIPTION:
        description = description[: MAX_DESCRIPTION - 1].rstrip() + "…"
    hints = tool.annotations or types.ToolAnnotations()
    read_only = hints.read_only_hint is True
    tags = ["mcp", server] + (["read-only"] if read_only else [])
    return ToolDescription(
        name=catalog_name(tool.name),
        summary=summary,
        description=description,
        parameters=parameters_of(tool),
        tags=tags,
        role=Role.reader if read_only else Role.contributor,
        side_effects=not read_only,
        requires_approval=not read_only and hints.destructive_hint is not False,
    )


def match_name(tools: list[types.Tool], name: str) -> str | None:
    """The server's own name of the tool the catalog calls `name`."""
    for tool in tools:
        if tool.name == name:
            return tool.name
    for tool in tools:
        if catalog_name(tool.name) == name:
            return tool.name
    return None
