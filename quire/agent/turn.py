"""One turn's tool calls: checked, asked of a person when they must be, run as parallel steps
(imported tools as steps that call out), and turned into tool messages with numbered sources."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from quire.agent.citations import NumberedCitation, SourceCitation, numbered_text
from quire.agent.context import truncate_result
from quire.agent.environment import agent_of
from quire.agent.events import AgentEventType
from quire.agent.messages import Message, ToolCall
from quire.agent.state import AgentState
from quire.agent.tools.base import Tool, ToolContext, ToolOutput, validation_message
from quire.agent.tools.builtin import ask_human
from quire.agent.tools.deadline import call_within
from quire.core.errors import Conflict, Forbidden, InvalidRequest, NotFound
from quire.core.models import Role
from quire.runtime.context import RunContext
from quire.runtime.errors import NonRetryable, StepFailed

# What a tool raises that no retry can fix (a missing document, a refused request): answered to
# the model as the tool's error. Anything else (a service down) is retried by the step's policy.
PERMANENT = (NotFound, InvalidRequest, Forbidden, Conflict)


def execute_tool(
    ctx: RunContext,
    state: AgentState,
    call_id: str,
    tool: Tool,
    arguments: dict[str, Any],
    timeout: float | None = None,
    sources: list[NumberedCitation] | None = None,
) -> dict[str, Any]:
    """One tool call, as a step: its output, the call it answers, and the step's seq (the handle
    `r<seq>` read_result reads it by). The tool comes from the turn's toolbox: built in, or
    imported from an MCP server through the catalog. After `timeout` seconds the attempt is
    abandoned (ToolTimedOut, retried by the tool's policy). `sources` are the run's numbered
    sources of earlier turns."""
    tool_context = ToolContext(
        run=ctx,
        role=state.role,
        principal_id=state.principal_id,
        agent=state.agent,
        collections=state.collections,
        timeout=timeout,
        sources=list(sources or ()),
    )
    try:
        if timeout is None:
            output = tool.function(tool_context, tool.parse(arguments))
        else:
            output = call_within(
                ctx, timeout, tool.name, lambda: tool.function(tool_context, tool.parse(arguments))
            )
    except NonRetryable:
        raise
    except ValidationError as error:  # the arguments passed the schema but not the tool's own checks
        output = ToolOutput(content=validation_message(error), is_error=True)
    except PERMANENT as error:  # another attempt cannot help: the model hears of it at once
        output = ToolOutput(content=str(error), is_error=True)
    except LookupError as error:
        output = ToolOutput(content=f"not found: {error}", is_error=True)
    return {"call_id": call_id, "seq": ctx.current_seq, **output.model_dump(mode="json")}


class Turn:
    """The tool calls of one assistant message, turned into tool messages for the history."""

    def __init__(
        self, ctx: RunContext, state: AgentState, tools: dict[str, Tool], sources: list[NumberedCitation]
    ):
        self.ctx, self.state, self.tools, self.sources = ctx, state, tools, sources
        self.invalid = 0

    def run(self, calls: list[ToolCall], turn: int) -> list[Message]:
        messages: dict[str, Message] = {}
        queued: list[tuple[ToolCall, Tool]] = []
        for call in calls:
            self.ctx.emit(
                AgentEventType.tool_call, {"id": call.id, "name": call.name, "arguments": call.arguments}
            )
            problem = self._problem(call)
            if problem is not None:
                self.invalid += 1
                messages[call.id] = Message.tool_result(call, problem, is_error=True)
                continue
            tool = self.tools[call.name]
            if tool.name == ask_human.name:
                messages[call.id] = self._ask(call)
                continue
            if tool.requires_approval and not self._approved(call):
                messages[call.id] = Message.tool_result(call, "A person declined this action.", is_error=True)
                continue
            queued.append((call, tool))
        retries = agent_of(self.ctx.services).retries
        numbered = list(self.sources)
        outcomes = self.ctx.parallel(
            [
                (
                    f"tool:{turn}:{index}:{tool.name}",
                    execute_tool,
                    (
                        self.ctx,
                        self.state,
                        call.id,
                        tool,
                        call.arguments,
                        retries.timeout_for(tool),
                        numbered,
                    ),
                )
                for index, (call, tool) in enumerate(queued)
            ],
            retry=[retries.for_tool(tool) for _, tool in queued],
            # Imported tools call out to their servers: no transaction held while they work.
            io=[tool.source != "builtin" for _, tool in queued],
        )
        for (call, _), outcome in zip(queued, outcomes, strict=True):
            messages[call.id] = self._result(call, outcome)
        return [messages[call.id] for call in calls]

    def _problem(self, call: ToolCall) -> str | None:
        tool = self.tools.get(call.name)
        if tool is None:
            return f"There is no tool {call.name!r}. Available: {', '.join(sorted(self.tools))}."
        if call.parse_error:
            return f"{call.parse_error}. Send the arguments as a JSON object."
        if not self.state.role.allows(tool.role):
            return f"{call.name} needs the {tool.role.value} role; this run has {self.state.role.value}."
        try:
            tool.parse(call.arguments)
        except ValidationError as error:
            return validation_message(error)
        return None

    def _ask(self, call: ToolCall) -> Message:
        question = str(call.arguments.get("question", ""))
        due = self.state.ask_human_due_seconds
        escalate = self.state.if_unanswered == "escalate"
        decision = self.ctx.human_task(
            question,
            role=Role.reader,
            options=["answer"],
            assignee=self.state.principal_id,
            payload={"question": question, "kind": "ask_human"},
            due=timedelta(seconds=due) if due else None,
            escalate_to=Role.reviewer if escalate and due else None,
            give_up=not escalate,
        )
        if decision.get("expired"):
            return Message.tool_result(
                call, f"Nobody answered within {due:.0f} s; go on without it, and say so.", is_error=True
            )
        answer = decision.get("comment") or ""
        return Message.tool_result(
            call, f"A person answered: {answer}" if answer else "A person gave no answer."
        )

    def _approved(self, call: ToolCall) -> bool:
        decision = self.ctx.human_task(
            f"Allow the agent to call {call.name}?",
            role=Role.reviewer,
            options=["allow", "deny"],
            payload={"tool": call.name, "arguments": call.arguments},
        )
        return decision.get("decision") == "allow"

    def _result(self, call: ToolCall, outcome: Any) -> Message:
        if isinstance(outcome, StepFailed):
            self.ctx.emit(
                AgentEventType.tool_result, {"id": call.id, "name": call.name, "error": outcome.error}
            )
            return Message.tool_result(call, f"The tool failed: {outcome.error}", is_error=True)
        output = ToolOutput.model_validate({k: v for k, v in outcome.items() if k not in ("call_id", "seq")})
        numbered = [self._number(c) for c in output.citations]
        content = numbered_text(output.content, numbered)
        # Results recorded before the seq was kept have no handle read_result knows.
        handle = f"r{outcome['seq']}" if outcome.get("seq") is not None else call.id
        message = Message.tool_result(call, truncate_result(content, handle=handle), is_error=output.is_error)
        message.metadata["quire"] = {
            "citations": [c.model_dump(mode="json") for c in numbered],
            "data": output.data,
        }
        self.ctx.emit(
            AgentEventType.tool_result,
            {
                "id": call.id,
                "name": call.name,
                "is_error": output.is_error,
                "chars": len(content),
                "sources": [c.ref for c in numbered],
            },
        )
        return message

    def _number(self, citation: SourceCitation) -> NumberedCitation:
        for existing in self.sources:
            if existing.key == citation.key:
                return existing
        numbered = NumberedCitation(ref=len(self.sources) + 1, **citation.model_dump())
        self.sources.append(numbered)
        return numbered
