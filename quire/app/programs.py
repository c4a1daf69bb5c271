"""What a worker process runs: the queues it consumes and its background services."""

from __future__ import annotations

from dataclasses import dataclass, field
from threading import Event

from dramatiq.broker import Broker

from quire.core.db import Database
from quire.core.settings import Settings


@dataclass
class BackgroundServices:
    stopped: Event = field(default_factory=Event)

    def stop(self) -> None:
        self.stopped.set()


def worker_queues() -> set[str]:
    return set()


def start_background_services(
    *, settings: Settings, database: Database, broker: Broker
) -> BackgroundServices:
    return BackgroundServices()
