"""How a process is composed: the programs it knows, its content environment, its services."""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from dramatiq.broker import Broker

from quire.content.environment import ContentEnvironment, configure
from quire.core.blobs import blob_store
from quire.core.broker import build_broker
from quire.core.db import Database
from quire.core.settings import Settings
from quire.core.workers import WorkerHeartbeat, alive_workers
from quire.runtime.executor import Executor
from quire.runtime.kicks import BACKGROUND_QUEUE, QUEUE, Kicker, install_executor
from quire.runtime.local import LocalKicker
from quire.runtime.sweeper import Sweeper

if TYPE_CHECKING:  # the MCP SDK takes most of a second to import; short commands skip it
    from quire.agent.mcp.watcher import McpWatcher

logger = logging.getLogger(__name__)

# Modules whose import registers Quire's own durable programs.
BUILTIN_PROGRAM_MODULES: list[str] = [
    "quire.content.ingestion",
    "quire.memory.lifecycle",
    "quire.memory.programs",
    "quire.agent.loop",
]


def load_programs(settings: Settings) -> None:
    extra = [name.strip() for name in settings.program_modules.split(",") if name.strip()]
    for module in [*BUILTIN_PROGRAM_MODULES, *extra]:
        importlib.import_module(module)


def content_environment(
    settings: Settings, database: Database | None, *, embedding_threads: int = 0
) -> ContentEnvironment:
    environment = ContentEnvironment(
        blobs=blob_store(settings.blob_store, data_dir=settings.data_dir, database=database),
        embedding_model=settings.embedding_model,
        embedding_runtime=settings.embedding_runtime,
        embedding_threads=embedding_threads,
        model_cache_dir=settings.model_cache_dir,
        parse_timeout=settings.parse_timeout_seconds,
        parse_memory_mb=settings.parse_memory_mb,
        max_upload_bytes=int(settings.max_upload_mb * 1024 * 1024),
        search_ef=settings.search_ef,
        dense_weight=settings.search_dense_weight,
        recall_dense_weight=settings.recall_dense_weight,
        tool_dense_weight=settings.tool_search_dense_weight,
    )
    configure(environment)
    return environment


def configure_process(
    settings: Settings,
    database: Database | None = None,
    *,
    short_lived: bool = False,
    embedding_threads: int = 0,
) -> ContentEnvironment:
    """Programs, agent and content environment for this process.

    A `short_lived` command (`quire ingest`) does not load the MCP SDK (most of a second) until
    it calls an imported MCP tool, which it rarely does.
    """
    from quire.agent.budgets import BudgetPolicy
    from quire.agent.config import load_models
    from quire.agent.environment import configure_agent

    load_programs(settings)
    configure_agent(
        load_models(models_file=settings.models, model=settings.model),
        database,
        budgets=BudgetPolicy.from_settings(settings),
    )
    if database is not None and short_lived:
        from quire.agent.tools.remote import callers

        callers["mcp"] = partial(_install_mcp_and_call, settings, database)
    elif database is not None:
        from quire.agent.mcp.access import mcp_access
        from quire.agent.mcp.calls import install_mcp

        # Calls to imported MCP tools; a server's change notice re-syncs it.
        install_mcp(database, mcp_access(settings))
    return content_environment(settings, database, embedding_threads=embedding_threads)


def _install_mcp_and_call(settings: Settings, database: Database, *args: Any) -> Any:
    from quire.agent.mcp.access import mcp_access
    from quire.agent.mcp.calls import call_mcp_tool, install_mcp

    access = mcp_access(settings)
    install_mcp(database, access)  # from now on the real caller
    return call_mcp_tool(*args, access=access)


def warm_up_in_background(environment: ContentEnvironment, *, parser: bool) -> None:
    """Load the embedding model (and the parser) now, not on the first request that needs them."""

    def warm() -> None:
        try:
            environment.embedder.embed_one("warm up")
            if parser:
                environment.parser().warm_up()
        except Exception:
            logger.warning("warming up failed; the first document will pay for it", exc_info=True)

    threading.Thread(target=warm, name="quire-warm-up", daemon=True).start()


def worker_queues() -> set[str]:
    return {QUEUE, BACKGROUND_QUEUE}


@dataclass
class BackgroundServices:
    executor: Executor
    sweeper: Sweeper
    heartbeat: WorkerHeartbeat
    environment: ContentEnvironment
    mcp_watcher: McpWatcher

    def stop(self) -> None:
        self.mcp_watcher.stop()
        self.sweeper.stop()
        self.executor.stop()
        self.heartbeat.stop()
        self.environment.close()


def start_background_services(
    *, settings: Settings, database: Database, broker: Broker
) -> BackgroundServices:
    # A worker embeds on several threads at once (one document each) beside its parsing child:
    # one compute thread per call keeps them from splitting every matrix product across cores
    # they are already contending for (bench/ingest: worker CPU 29.5-30.2 -> 27.2-27.8 s).
    from quire.agent.mcp.access import mcp_access
    from quire.agent.mcp.credentials import check_credentials_key

    access = mcp_access(settings)
    check_credentials_key(database, access.credentials)  # a wrong QUIRE_SECRET_KEY stops it here
    threads = 1 if settings.worker_threads > 1 else 0
    environment = configure_process(settings, database, embedding_threads=threads)
    warm_up_in_background(environment, parser=True)
    kicker = Kicker(broker)
    executor = Executor(database, kicker, lease_ttl=settings.lease_seconds)
    install_executor(executor.advance)
    executor.start()
    sweeper = Sweeper(
        database, kicker, interval=settings.sweep_seconds, max_recoveries=settings.max_recoveries
    )
    sweeper.start()
    heartbeat = WorkerHeartbeat(database, worker_id=executor.owner)
    heartbeat.start()
    # Holds a connection to each enabled MCP server (for change notices) and re-syncs them now and then.
    from quire.agent.mcp.watcher import start_mcp_watcher

    mcp_watcher = start_mcp_watcher(database, access=access, interval=300)
    return BackgroundServices(
        executor=executor,
        sweeper=sweeper,
        heartbeat=heartbeat,
        environment=environment,
        mcp_watcher=mcp_watcher,
    )


def command_kicker(settings: Settings, database: Database) -> tuple[Kicker, bool]:
    """How a CLI command starts runs, and whether it must drive them itself.

    Through the broker when a worker is alive; otherwise in this process, so that the command
    works on a bare machine.
    """
    if alive_workers(database) == 0:
        return LocalKicker(), True
    return Kicker(build_broker(broker_url=settings.broker_url, database_url=database.url)), False
