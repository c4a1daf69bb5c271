"""Quire as an MCP server: its documents and governed memory for other agents.

Four tools, each run as the caller (the API key's principal, tenant and role), in a tenant
session, through the same functions the agent loop's built-in tools use: `search`, `read`,
`recall` (approved memory only) and `propose_memory` (contributors and above; the proposal
waits for a reviewer like any other). An MCP call is not a durable run: the built-in tools get
a `CallerRun` in place of a run context, and a proposal's evidence is the quoted passage.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import anyio
import mcp_types as types
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, Field, ValidationError

from quire.agent.citations import answer_citation, number_locally, numbered_text
from quire.agent.tools.base import Tool, ToolContext, ToolOutput, validation_message
from quire.agent.tools.builtin import (
    ProposeArgs,
    RecallArgs,
    SearchArgs,
    SectionArgs,
    read_section,
    recall_memory,
    search_content,
)
from quire.core.db import Database, TenantSession
from quire.core.errors import QuireError
from quire.core.models import Role
from quire.core.tenancy import Caller
from quire.memory.models import EvidenceIn, MemoryProposal
from quire.memory.proposals import propose
from quire.runtime.kicks import Kicker

if TYPE_CHECKING:
    from quire.runtime.context import RunContext

logger = logging.getLogger(__name__)

AGENT_NAME = "mcp"
INSTRUCTIONS = (
    "Quire holds the organisation's documents and its reviewed memory. Use `search` to find passages "
    "(each with its document, version, section and pages: cite them), `read` for a whole section, "
    "`recall` for approved facts, rules and preferences, and `propose_memory` to suggest a new one "
    "with the passage that says so; a person reviews proposals before anyone can recall them."
)

Identify = Callable[[ServerRequestContext[Any, Any]], Caller]


@dataclass
class CallerRun:
    """What the built-in tools read from a run, for a call that is not part of one."""

    session: TenantSession
    tenant_id: uuid.UUID
    services: Any = None  # the process's services (`quire.app.services.Services`)
    run_id: uuid.UUID | None = None
    _current_seq: int | None = None

    @contextmanager
    def transaction(self) -> Iterator[TenantSession]:
        """What a run's short transaction is for its steps: here, the call's own session."""
        yield self.session


class SourcedProposeArgs(ProposeArgs):
    """An agent's proposal cites its run's step; a call from outside a run has none to cite,
    so the document passage it rests on is required."""

    document_id: uuid.UUID = Field(description="The document that says so (from a search hit).")
    quote: str = Field(min_length=1, max_length=5000, description="The exact passage of that document.")


# (session, caller, arguments, kicker, the process's services) -> what the tool answers
Run = Callable[[TenantSession, Caller, Any, Kicker | None, Any], ToolOutput]


@dataclass(frozen=True)
class ServedTool:
    name: str
    summary: str
    description: str
    arguments: type[BaseModel]
    role: Role
    run: Run
    read_only: bool = True

    def listing(self) -> types.Tool:
        schema = self.arguments.model_json_schema()
        schema.pop("title", None)
        description = f"{self.summary}\n\n{self.description}".strip()
        if self.role != Role.reader:
            description += f"\n\nNeeds an API key with the {self.role.value} role or above."
        return types.Tool(
            name=self.name,
            description=description,
            input_schema=schema,
            annotations=types.ToolAnnotations(
                read_only_hint=self.read_only,
                destructive_hint=None if self.read_only else False,
                idempotent_hint=None if self.read_only else False,
                open_world_hint=False,
            ),
        )


def _builtin(tool: Tool) -> Run:
    def run(
        session: TenantSession, caller: Caller, args: Any, kicker: Kicker | None, services: Any
    ) -> ToolOutput:
        context = ToolContext(
            run=cast("RunContext", CallerRun(session=session, tenant_id=caller.tenant_id, services=services)),
            role=caller.role,
            principal_id=caller.principal_id,
            agent=AGENT_NAME,
        )
        return tool.function(context, args)

    return run


def _propose(
    session: TenantSession, caller: Caller, args: SourcedProposeArgs, kicker: Kicker | None, services: Any
) -> ToolOutput:
    item, version = propose(
        session,
        tenant_id=caller.tenant_id,
        proposal=MemoryProposal(
            text=args.text,
            kind=args.kind,
            subject_key=args.subject_key,
            evidence=[EvidenceIn(document_id=args.document_id, quote=args.quote, note="proposed over MCP")],
        ),
        proposed_by=str(caller.principal_id),
        kicker=kicker,
        extractor="mcp",
        caller=caller,
    )
    return ToolOutput(
        content=f"Proposed memory {item.id} (version {version.number}); it waits for a reviewer.",
        data={"item_id": str(item.id), "version_id": str(version.id)},
    )


def _served(name: str, tool: Tool, arguments: type[BaseModel]) -> ServedTool:
    return ServedTool(name, tool.summary, tool.description, arguments, tool.role, _builtin(tool))


SERVED: dict[str, ServedTool] = {
    tool.name: tool
    for tool in (
        _served("search", search_content, SearchArgs),
        _served("read", read_section, SectionArgs),
        _served("recall", recall_memory, RecallArgs),
        ServedTool(
            name="propose_memory",
            summary="Propose a new memory with the passage that supports it; a person reviews it first.",
            description="Cite the document and quote its exact words. Until a reviewer approves the "
            "proposal, nobody can recall it.",
            arguments=SourcedProposeArgs,
            role=Role.contributor,
            run=cast(Run, _propose),
            read_only=False,
        ),
    )
}


def result_of(output: ToolOutput) -> types.CallToolResult:
    # One shape for a citation: the structured sources are an answer's citations, numbered as
    # the text part numbers them.
    numbered = number_locally(output.citations)
    structured = {
        "citations": [answer_citation(c).model_dump(mode="json", exclude_none=True) for c in numbered],
        "data": output.data,
    }
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=numbered_text(output.content, numbered))],
        structured_content=structured,
        is_error=output.is_error,
    )


def refusal(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


class QuireMcpServer:
    """The MCP server object: who the caller is comes from `identify`, per request."""

    def __init__(
        self,
        *,
        database: Database,
        identify: Identify,
        services: Any,
        kicker: Callable[[], Kicker | None] = lambda: None,
    ) -> None:
        self.database = database
        self.services = services
        self.identify = identify
        self.kicker = kicker
        self.server: Server[Any] = Server(
            "quire",
            version="0.1.0",
            title="Quire",
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool.listing() for tool in SERVED.values()])

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        tool = SERVED.get(params.name)
        if tool is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
        caller = self.identify(ctx)
        if not caller.allows(tool.role):
            return refusal(
                f"{tool.name} needs the {tool.role.value} role or above; this API key's role is "
                f"{caller.role.value}."
            )
        try:
            args = tool.arguments.model_validate(params.arguments or {})
        except ValidationError as error:
            return refusal(validation_message(error))
        output = await anyio.to_thread.run_sync(self._run, tool, caller, args)
        return result_of(output)

    def _run(self, tool: ServedTool, caller: Caller, args: BaseModel) -> ToolOutput:
        with self.database.tenant_session(caller.tenant_id) as session:
            try:
                output = tool.run(
                    session, caller, args, self.kicker() if not tool.read_only else None, self.services
                )
                session.commit()
            except (QuireError, LookupError) as error:
                session.rollback()
                return ToolOutput(content=str(error), is_error=True)
            except Exception:
                session.rollback()
                logger.exception("the MCP tool %s failed", tool.name)
                return ToolOutput(
                    content=f"{tool.name} hit an unexpected error; it is in Quire's log.", is_error=True
                )
        logger.info(
            "MCP %s by %s", tool.name, caller.principal_id, extra={"principal_id": caller.principal_id}
        )
        return output
