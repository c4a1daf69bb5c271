"""What a worker process runs: the programs it knows, the queues it consumes, its services."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from dramatiq.broker import Broker

from quire.core.db import Database
from quire.core.settings import Settings
from quire.runtime.executor import Executor
from quire.runtime.kicks import QUEUE, Kicker, install_executor
from quire.runtime.sweeper import Sweeper

# Modules whose import registers Quire's own durable programs.
BUILTIN_PROGRAM_MODULES: list[str] = []


def load_programs(settings: Settings) -> None:
    extra = [name.strip() for name in settings.program_modules.split(",") if name.strip()]
    for module in [*BUILTIN_PROGRAM_MODULES, *extra]:
        importlib.import_module(module)


def worker_queues() -> set[str]:
    return {QUEUE}


@dataclass
class BackgroundServices:
    executor: Executor
    sweeper: Sweeper

    def stop(self) -> None:
        self.sweeper.stop()
        self.executor.stop()


def start_background_services(
    *, settings: Settings, database: Database, broker: Broker
) -> BackgroundServices:
    load_programs(settings)
    kicker = Kicker(broker)
    executor = Executor(database, kicker, lease_ttl=settings.lease_seconds)
    install_executor(executor.advance)
    executor.start()
    sweeper = Sweeper(
        database, kicker, interval=settings.sweep_seconds, max_recoveries=settings.max_recoveries
    )
    sweeper.start()
    return BackgroundServices(executor=executor, sweeper=sweeper)
