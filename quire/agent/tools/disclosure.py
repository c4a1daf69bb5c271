"""Progressive disclosure: the agent finds tools in the catalog, loads the few it needs, and reads
a tool's long help only when it asks. The loop keeps the loaded set (with a cap and
least-recently-used eviction) and shows loaded tools with full schemas from the next turn on."""

from __future__ import annotations

from pydantic import BaseModel, Field

from quire.agent.tools.base import ToolContext, ToolOutput, tool
from quire.agent.tools.catalog import get_tool
from quire.agent.tools.catalog_search import search_tools
from quire.content.environment import content_of


class FindArgs(BaseModel):
    # No upper limit: a longer request is cut to its informative part (catalog_search.REQUEST_LIMIT).
    query: str = Field(min_length=2, description="What you need a tool for, in plain words.")
    k: int = Field(default=5, ge=1, le=15)


@tool(
    summary="Find tools for a task in the tool catalog (names and one-line summaries).",
    tags=("tools", "discovery", "catalog"),
    examples=({"query": "convert currencies"},),
)
def find_tools(ctx: ToolContext, args: FindArgs) -> ToolOutput:
    """Searches every tool available to this run, built-in or imported. Load the ones you want
    with load_tools; their full definitions appear from your next turn."""
    environment = content_of(ctx.services)
    found = search_tools(
        ctx.session,
        query=args.query,
        embedder=environment.embedder,
        k=args.k,
        role=ctx.role,
        dense_weight=environment.tool_dense_weight,
        word_weight=environment.tool_word_weight,
    )
    if not found:
        return ToolOutput(content=f"No tool matches {args.query!r}.", data={"names": []})
    lines = [f"{len(found)} tools for {args.query!r} (load them with load_tools):"]
    lines += [f"- {f.name}: {f.summary}" for f in found]
    return ToolOutput(content="\n".join(lines), data={"names": [f.name for f in found]})


class LoadArgs(BaseModel):
    names: list[str] = Field(min_length=1, max_length=10, description="Names from find_tools.")


@tool(
    summary="Load tools by name so you can call them from your next turn.", tags=("tools", "load", "catalog")
)
def load_tools(ctx: ToolContext, args: LoadArgs) -> ToolOutput:
    """Only a few tools stay loaded at once; loading more unloads the ones used least recently."""
    known: list[str] = []
    unknown: list[str] = []
    for name in dict.fromkeys(args.names):
        entry = get_tool(ctx.session, name=name)
        (known if entry is not None and ctx.role.allows(entry.role) else unknown).append(name)
    message = f"Loaded: {', '.join(known) or 'nothing'}."
    if unknown:
        message += f" Not available: {', '.join(unknown)} (use find_tools)."
    return ToolOutput(content=message, data={"loaded": known, "unknown": unknown}, is_error=not known)


class HelpArgs(BaseModel):
    name: str = Field(description="A tool's name.")


@tool(summary="Read a tool's full description, arguments and examples.", tags=("tools", "help", "catalog"))
def tool_help(ctx: ToolContext, args: HelpArgs) -> ToolOutput:
    entry = get_tool(ctx.session, name=args.name)
    if entry is None:
        return ToolOutput(content=f"There is no tool {args.name!r} (use find_tools).", is_error=True)
    import json

    parts = [
        f"{entry.name}: {entry.summary}",
        entry.description,
        "Arguments (JSON schema):",
        json.dumps(entry.parameters, indent=2),
    ]
    parts += [f"Example: {json.dumps(e) if not isinstance(e, str) else e}" for e in entry.examples[:5]]
    if entry.side_effects:
        parts.append(
            "It has side effects" + (" and needs a person's approval." if entry.requires_approval else ".")
        )
    parts.append(f"Source: {entry.source}; needs the {entry.role.value} role.")
    return ToolOutput(content="\n\n".join(p for p in parts if p))


# The tools that disclose the catalog to a run.
TOOLS = (find_tools, load_tools, tool_help)


def touch(loaded: list[str], names: list[str], *, cap: int) -> tuple[list[str], list[str]]:
    """The loaded set after loading or using `names`: newest last, at most `cap`; and the evicted."""
    order = [n for n in loaded if n not in names] + [n for n in dict.fromkeys(names)]
    evicted = order[: max(0, len(order) - cap)]
    return order[len(evicted) :], evicted
