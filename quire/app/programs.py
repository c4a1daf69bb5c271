"""The background work of a worker process (executor, sweeper, heartbeat, MCP watcher), and how
a CLI command runs programs; what they share is built in `quire.app.services`."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dramatiq.broker import Broker

from quire.app.services import Services, build_services
from quire.content.environment import ContentEnvironment
from quire.core.broker import build_broker
from quire.core.db import Database
from quire.core.memory import return_memory_promptly
from quire.core.settings import Settings
from quire.core.workers import WorkerHeartbeat, alive_workers
from quire.runtime.executor import Executor
from quire.runtime.kicks import BACKGROUND_QUEUE, QUEUE, Kicker, install_executor
from quire.runtime.local import LocalKicker
from quire.runtime.sweeper import Sweeper

if TYPE_CHECKING:  # the MCP SDK takes most of a second to import; short commands skip it
    from quire.agent.mcp.watcher import McpWatcher

logger = logging.getLogger(__name__)


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
    services: Services
    mcp_watcher: McpWatcher

    def stop(self) -> None:
        self.mcp_watcher.stop()
        self.sweeper.stop()
        self.executor.stop()
        self.heartbeat.stop()
        self.services.content.close()


def start_background_services(
    *, settings: Settings, database: Database, broker: Broker
) -> BackgroundServices:
    # A worker embeds on several threads at once (one document each) beside its parsing child:
    # one compute thread per call keeps them from splitting every matrix product across cores
    # they are already contending for (bench/ingest: worker CPU 29.5-30.2 -> 27.2-27.8 s).
    from quire.agent.mcp.access import mcp_access
    from quire.agent.mcp.credentials import check_credentials_key

    return_memory_promptly()  # a large document's memory goes back when it is done (core.memory)
    access = mcp_access(settings)
    check_credentials_key(database, access.credentials)  # a wrong QUIRE_SECRET_KEY stops it here
    threads = 1 if settings.worker_threads > 1 else 0
    services = build_services(settings, database, embedding_threads=threads, warm_models=True)
    warm_up_in_background(services.content, parser=True)
    kicker = Kicker(broker)
    executor = Executor(
        database, kicker, lease_ttl=settings.lease_seconds, programs=services.programs, services=services
    )
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

    mcp_watcher = start_mcp_watcher(database, access=access, content=services.content, interval=300)
    return BackgroundServices(
        executor=executor,
        sweeper=sweeper,
        heartbeat=heartbeat,
        services=services,
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
