"""Tools: typed functions the model may call, described for it and checked before they run.

    @tool(summary="Search the documents")
    def search_content(ctx: ToolContext, args: SearchArgs) -> ToolOutput: ...

The arguments' JSON schema comes from the pydantic model; the long description from the
docstring. A tool states the role it needs and whether it has side effects (then it runs as an
idempotent step and may need a person's approval), and may bring its own retry policy and time
limit (else the agent's defaults hold: QUIRE_TOOL_RETRY, QUIRE_TOOL_TIMEOUT_SECONDS).
"""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, get_type_hints

from pydantic import BaseModel, Field, ValidationError

from quire.agent.citations import NumberedCitation, SourceCitation
from quire.agent.messages import ToolSpec
from quire.core.models import Role
from quire.runtime.retry import RetryPolicy

if TYPE_CHECKING:
    from quire.runtime.context import RunContext


class ToolOutput(BaseModel):
    content: str
    citations: list[SourceCitation] = Field(default_factory=list)
    data: Any = None
    is_error: bool = False


@dataclass
class ToolContext:
    """What a tool sees: the run (its step transaction), the caller's rights, the run's focus."""

    run: RunContext
    role: Role
    principal_id: uuid.UUID | None
    agent: str
    collections: list[str] = field(default_factory=list)
    # Seconds the call may take: a tool that waits on another service gives it this limit.
    timeout: float | None = None
    # The run's sources numbered so far (by earlier turns): read_result shows them by these numbers.
    sources: list[NumberedCitation] = field(default_factory=list)

    @property
    def session(self) -> Any:
        return self.run.session

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.run.tenant_id

    @property
    def services(self) -> Any:
        """The process's services (`quire.app.services.Services`): embedder, agent, …"""
        return self.run.services


ToolFunction = Callable[[ToolContext, Any], ToolOutput]


@dataclass(frozen=True)
class Tool:
    name: str
    summary: str
    description: str
    arguments: type[BaseModel] | None  # None for imported tools, described by `parameters` only
    function: ToolFunction
    tags: tuple[str, ...] = ()
    role: Role = Role.reader
    side_effects: bool = False
    requires_approval: bool = False
    examples: tuple[dict[str, Any], ...] = ()
    source: str = "builtin"
    parameters: dict[str, Any] | None = None
    retry: RetryPolicy | None = None  # None: the agent's default for tools
    timeout_seconds: float | None = None  # None: the agent's default for tools

    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.prompt_description(), parameters=self.schema())

    def schema(self) -> dict[str, Any]:
        if self.arguments is None:
            return dict(self.parameters or {"type": "object", "properties": {}})
        schema = self.arguments.model_json_schema()
        schema.pop("title", None)
        return schema

    def prompt_description(self) -> str:
        return self.summary if not self.description else f"{self.summary}\n\n{self.description}"

    def help(self) -> str:
        lines = [f"{self.name}: {self.summary}", "", self.description or "", "", "Arguments (JSON schema):"]
        lines.append(json.dumps(self.schema(), indent=2))
        for example in self.examples:
            lines.append(f"Example: {json.dumps(example)}")
        if self.side_effects:
            lines.append(
                "It has side effects" + (" and needs a person's approval." if self.requires_approval else ".")
            )
        return "\n".join(line for line in lines if line is not None).strip()

    def parse(self, arguments: dict[str, Any]) -> Any:
        """The arguments as the tool's model, or ValidationError (handed back to the model).

        Imported tools get their arguments as given: their own server checks them.
        """
        if self.arguments is None:
            return dict(arguments)
        return self.arguments.model_validate(arguments)


def argument_model(function: Callable[..., Any]) -> type[BaseModel]:
    parameters = list(inspect.signature(function).parameters)
    hints = get_type_hints(function)
    model = hints.get(parameters[1]) if len(parameters) == 2 else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"tool {function.__name__} must take (ctx, args: SomeModel)")
    return model


def tool(
    name: str | None = None,
    *,
    summary: str,
    tags: tuple[str, ...] = (),
    role: Role = Role.reader,
    side_effects: bool = False,
    requires_approval: bool | None = None,
    examples: tuple[dict[str, Any], ...] = (),
    retry: RetryPolicy | None = None,
    timeout_seconds: float | None = None,
) -> Callable[[ToolFunction], Tool]:
    """Turn a typed function into a Tool (a module lists its tools in `TOOLS`)."""

    def make(function: ToolFunction) -> Tool:
        made = Tool(
            name=name or function.__name__,
            summary=summary,
            description=inspect.cleandoc(function.__doc__ or ""),
            arguments=argument_model(function),
            function=function,
            tags=tags,
            role=role,
            side_effects=side_effects,
            requires_approval=side_effects if requires_approval is None else requires_approval,
            examples=examples,
            retry=retry,
            timeout_seconds=timeout_seconds,
        )
        return made

    return make


def validation_message(error: ValidationError) -> str:
    problems = [f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}" for e in error.errors()]
    return "invalid arguments: " + "; ".join(problems)
