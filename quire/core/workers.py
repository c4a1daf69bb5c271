"""Worker processes report that they are alive, so others can tell whether any is running."""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta

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


def alive_workers(database: Database, *, within: timedelta = timedelta(seconds=3 * BEAT_SECONDS)) -> int:
    with database.system_session() as session:
        count = session.execute(
            text("SELECT count(*) FROM core_worker WHERE seen_at > now() - make_interval(secs => :s)"),
            {"s": within.total_seconds()},
        ).scalar_one()
    return int(count)
