"""The composition root: everything a Quire process's programs, tools and routes use, built once
when the process starts and handed down (to the executor as `ctx.services`, to the API as
`app.state.services`). No package reaches into another's module state; this is where the
packages meet.

- `content`: the blob store, the embedder, the parser, search settings, and which programs
  follow an ingestion or a deletion (the memory layer's, named here, so content knows none);
- `agent`: the models and their router, the built-in tools, budgets, how to call tools
  imported from MCP servers, and the retry policies and tool time limit;
- `programs`: the durable programs this process runs (its own and QUIRE_PROGRAM_MODULES').
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from functools import partial
from typing import Any

from quire.agent.budgets import BudgetPolicy
from quire.agent.config import load_models
from quire.agent.environment import AgentEnvironment, build_agent
from quire.agent.retries import StepRetries
from quire.content.environment import ContentEnvironment
from quire.core.blobs import blob_store
from quire.core.db import Database
from quire.core.settings import Settings
from quire.runtime.programs import Registry, registry

# Modules whose import registers Quire's own durable programs.
BUILTIN_PROGRAM_MODULES: tuple[str, ...] = (
    "quire.content.ingestion",
    "quire.memory.lifecycle",
    "quire.memory.programs",
    "quire.agent.loop",
)


@dataclass
class Services:
    content: ContentEnvironment
    agent: AgentEnvironment
    programs: Registry


def load_programs(settings: Settings) -> Registry:
    """Import the modules that declare the programs this process runs; their registry."""
    extra = [name.strip() for name in settings.program_modules.split(",") if name.strip()]
    for module in [*BUILTIN_PROGRAM_MODULES, *extra]:
        importlib.import_module(module)
    return registry


def content_environment(
    settings: Settings, database: Database | None, *, embedding_threads: int = 0
) -> ContentEnvironment:
    from quire.memory.follow_ups import AFTER_INDEX, ON_DELETE

    return ContentEnvironment(
        blobs=blob_store(settings.blob_store, data_dir=settings.data_dir, database=database),
        embedding_model=settings.embedding_model,
        embedding_runtime=settings.embedding_runtime,
        embedding_threads=embedding_threads,
        model_cache_dir=settings.model_cache_dir,
        parse_timeout=settings.parse_timeout_seconds,
        parse_memory_mb=settings.parse_memory_mb,
        parse_children=settings.parse_children or os.cpu_count() or 1,
        parse_range_pages=settings.parse_range_pages,
        max_upload_bytes=int(settings.max_upload_mb * 1024 * 1024),
        search_ef=settings.search_ef,
        dense_weight=settings.search_dense_weight,
        recall_dense_weight=settings.recall_dense_weight,
        tool_dense_weight=settings.tool_search_dense_weight,
        tool_word_weight=settings.tool_search_word_weight,
        after_index=AFTER_INDEX,
        on_delete=ON_DELETE,
    )


def build_services(
    settings: Settings,
    database: Database | None = None,
    *,
    short_lived: bool = False,
    embedding_threads: int = 0,
    warm_models: bool = False,
) -> Services:
    """The services of a process with these settings.

    A `short_lived` command (`quire ingest`) does not load the MCP SDK (most of a second) until
    it calls an imported MCP tool, which it rarely does. With `warm_models` (a worker), the
    configured model providers' SDKs are imported now, not in the first run's first model call.
    """
    programs = load_programs(settings)
    content = content_environment(settings, database, embedding_threads=embedding_threads)
    agent = build_agent(
        load_models(models_file=settings.models, model=settings.model),
        database,
        budgets=BudgetPolicy.from_settings(settings),
        retries=StepRetries.from_settings(settings),
    )
    if warm_models:
        agent.router.warm_up()
    if database is not None and short_lived:
        agent.remote_callers["mcp"] = partial(_install_mcp_and_call, settings, database, content, agent)
    elif database is not None:
        from quire.agent.mcp.access import mcp_access
        from quire.agent.mcp.calls import install_mcp

        # Calls to imported MCP tools; a server's change notice re-syncs it.
        agent.remote_callers["mcp"] = install_mcp(database, mcp_access(settings), content)
    return Services(content=content, agent=agent, programs=programs)


def _install_mcp_and_call(
    settings: Settings, database: Database, content: ContentEnvironment, agent: AgentEnvironment, *args: Any
) -> Any:
    from quire.agent.mcp.access import mcp_access
    from quire.agent.mcp.calls import install_mcp

    caller = install_mcp(database, mcp_access(settings), content)
    agent.remote_callers["mcp"] = caller  # from now on the real caller
    return caller(*args)
