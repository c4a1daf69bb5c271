"""Worker processes report that they are alive, so others can tell whether any is running."""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text

from quire.core.db import Database

logger = logging.getLogger(__name__)

BEAT_SECONDS = 5.0


class WorkerHeartbeat:
    def __init__(self, database: Database, *, worker_id: str) -> None:
        self.database = database
        self.worker_id = worker_id
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="quire-heartbeat", daemon=True)

    def start(self) -> None:
        self.beat()
        self.thread.start()

    def beat(self) -> None:
        with self.database.system_session() as session:
            session.execute(
                text(
                    "INSERT INTO core_worker (id, hostname, pid, started_at, seen_at) "
                    "VALUES (:id, :host, :pid, now(), now()) "
                    "ON CONFLICT (id) DO UPDATE SET seen_at = now()"
                ),
                {"id": self.worker_id, "host": socket.gethostname(), "pid": os.getpid()},
            )
            session.commit()

    def stop(self) -> None:
        self.stopping.set()
        try:
            with self.database.system_session() as session:
                session.execute(text("DELETE FROM core_worker WHERE id = :id"), {"id": self.worker_id})
                session.commit()
        except Exception:
            logger.debug("could not remove worker %s", self.worker_id, exc_info=True)

    def _run(self) -> None:
        while not self.stopping.wait(BEAT_SECONDS):
            try:
                self.beat()
            except Exception:
                logger.warning("worker heartbeat failed", exc_info=True)


ALIVE_WITHIN = timedelta(seconds=3 * BEAT_SECONDS)  # three heartbeats

LIVE_WORKERS_SQL = text(
    "SELECT id, hostname, pid, started_at, seen_at FROM core_worker "
    "WHERE seen_at > now() - make_interval(secs => :within) ORDER BY started_at"
)


@dataclass(frozen=True)
class Worker:
    id: str
    hostname: str
    pid: int
    started_at: datetime
    seen_at: datetime


def live_workers(database: Database, *, within: timedelta = ALIVE_WITHIN) -> list[Worker]:
    """Worker processes that reported within the last three heartbeats; they serve every tenant."""
    with database.system_session() as session:
        rows = session.execute(LIVE_WORKERS_SQL, {"within": within.total_seconds()}).all()
    return [Worker(id=r[0], hostname=r[1], pid=int(r[2]), started_at=r[3], seen_at=r[4]) for r in rows]


def alive_workers(database: Database, *, within: timedelta = ALIVE_WITHIN) -> int:
    return len(live_workers(database, within=within))
