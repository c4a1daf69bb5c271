"""What the agent needs from its process: the model configuration, the router, the tool set, the
budget policy, how to call tools that live elsewhere, and how steps are tried again.

`app` builds one AgentEnvironment when a process starts, as part of the process's services;
programs and tools read it from their run (`agent_of(ctx.services)`), routes from the app
(`AgentDep`). Nothing here is a module global: a test builds the environment it needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from quire.agent.budgets import BudgetPolicy
from quire.agent.circuit import CircuitBreaker
from quire.agent.config import ModelsConfig
from quire.agent.providers.base import Provider
from quire.agent.retries import StepRetries
from quire.agent.routing import Router
from quire.agent.tools.base import Tool
from quire.agent.tools.remote import RemoteCaller
from quire.core.db import Database


@dataclass
class AgentEnvironment:
    models: ModelsConfig
    router: Router
    tools: dict[str, Tool] = field(default_factory=dict)
    budgets: BudgetPolicy = field(default_factory=BudgetPolicy)
    # source kind ("mcp") -> how this process calls an imported tool of that kind
    remote_callers: dict[str, RemoteCaller] = field(default_factory=dict)
    retries: StepRetries = field(default_factory=StepRetries)


def builtin_tools() -> dict[str, Tool]:
    """Quire's own tools by name: the core ones, and the ones that disclose the catalog."""
    from quire.agent.tools import builtin, disclosure

    return {tool.name: tool for tool in (*builtin.TOOLS, *disclosure.TOOLS)}


def build_agent(
    models: ModelsConfig,
    database: Database | None,
    *,
    budgets: BudgetPolicy | None = None,
    providers: Mapping[str, type[Provider]] | None = None,
    remote_callers: dict[str, RemoteCaller] | None = None,
    retries: StepRetries | None = None,
) -> AgentEnvironment:
    """The agent's environment for `models`; the circuit breaker is shared through `database`."""
    breaker = CircuitBreaker(database) if database is not None else None
    return AgentEnvironment(
        models=models,
        router=Router(models, breaker, providers),
        tools=builtin_tools(),
        budgets=budgets or BudgetPolicy(),
        remote_callers=dict(remote_callers or {}),
        retries=retries or StepRetries(),
    )


def agent_of(services: Any) -> AgentEnvironment:
    """The agent's part of a process's services (a program's `ctx.services`, the app's)."""
    environment = getattr(services, "agent", None)
    if not isinstance(environment, AgentEnvironment):
        raise RuntimeError("this process's services hold no agent environment")
    return environment


def get_agent(request: Request) -> AgentEnvironment:
    return agent_of(request.app.state.services)


AgentDep = Annotated[AgentEnvironment, Depends(get_agent)]
