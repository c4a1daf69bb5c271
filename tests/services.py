"""The services a test process's programs and routes use: built explicitly, as `quire.app.services`
builds them for Quire's processes, with the scripted model provider beside the real ones."""

from __future__ import annotations

from quire.agent.budgets import BudgetPolicy
from quire.agent.config import ModelsConfig, offline_config
from quire.agent.environment import AgentEnvironment, build_agent
from quire.agent.providers.factory import builtin_providers
from quire.app.services import Services, load_programs
from quire.content.environment import ContentEnvironment
from quire.core.db import Database
from quire.core.settings import Settings
from quire.memory.follow_ups import AFTER_INDEX, ON_DELETE
from tests.agent.scripted import ScriptedProvider

PROVIDERS = {**builtin_providers(), "scripted": ScriptedProvider}


def make_services(
    content: ContentEnvironment, database: Database | None, models: ModelsConfig | None = None
) -> Services:
    """Services around a test's content environment: the offline model unless told otherwise,
    and the memory layer's follow-up programs, as in a Quire process."""
    content.after_index, content.on_delete = AFTER_INDEX, ON_DELETE
    programs = load_programs(Settings())
    agent = build_agent(models or offline_config(), database, providers=PROVIDERS)
    return Services(content=content, agent=agent, programs=programs)


def use_models(
    services: Services,
    models: ModelsConfig,
    database: Database | None,
    *,
    budgets: BudgetPolicy | None = None,
) -> AgentEnvironment:
    """Give the test's processes another model configuration (the tools and callers stay)."""
    agent = build_agent(
        models,
        database,
        budgets=budgets or services.agent.budgets,
        providers=PROVIDERS,
        remote_callers=services.agent.remote_callers,
        retries=services.agent.retries,
    )
    agent.tools = services.agent.tools
    services.agent = agent
    return agent
