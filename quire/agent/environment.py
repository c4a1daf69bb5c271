"""What the agent needs from its process: the model configuration, the router, the tool set."""

from __future__ import annotations

from dataclasses import dataclass, field

from quire.agent.budgets import BudgetPolicy
from quire.agent.circuit import CircuitBreaker
from quire.agent.config import ModelsConfig
from quire.agent.routing import Router
from quire.agent.tools.base import Tool, builtin_tools
from quire.core.db import Database


@dataclass
class AgentEnvironment:
    models: ModelsConfig
    router: Router
    tools: dict[str, Tool] = field(default_factory=dict)
    budgets: BudgetPolicy = field(default_factory=BudgetPolicy)


_current: AgentEnvironment | None = None


def configure_agent(
    models: ModelsConfig, database: Database | None, *, budgets: BudgetPolicy | None = None
) -> AgentEnvironment:
    import quire.agent.tools.builtin
    import quire.agent.tools.disclosure  # noqa: F401

    global _current
    breaker = CircuitBreaker(database) if database is not None else None
    _current = AgentEnvironment(
        models=models,
        router=Router(models, breaker),
        tools=dict(builtin_tools),
        budgets=budgets or BudgetPolicy(),
    )
    return _current


def current_agent() -> AgentEnvironment:
    if _current is None:
        raise RuntimeError("the agent environment is not configured in this process")
    return _current
