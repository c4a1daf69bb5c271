"""Kicks: the only messages the runtime sends. `advance(run_id, epoch)` asks a worker to move a
run forward; a kick that finds nothing to do (a stale epoch, a run already moving) is dropped,
so duplicates are harmless.

With the PostgreSQL broker a kick is written inside the transaction that made it necessary and
is visible exactly when that transaction commits. With Redis or RabbitMQ it is sent right after
the commit; if the process dies in between, the sweeper re-kicks the run.

Runs of a background program (`@program(..., background=True)`) are kicked on a queue of their
own, through an actor of lower priority: a worker takes them only when it holds no other kick.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import dramatiq
import psycopg
from dramatiq.broker import Broker
from dramatiq.message import Message
from sqlalchemy import event
from sqlalchemy.orm import Session

from quire.core.db import SystemSession, TenantSession
from quire.core.pgqueue import PostgresBroker, enqueue_in
from quire.runtime.programs import registry

logger = logging.getLogger(__name__)

QUEUE = "runtime"
ACTOR = "runtime.advance"
BACKGROUND_QUEUE = "runtime.background"
BACKGROUND_ACTOR = "runtime.advance-background"
# Dramatiq's workers run the prefetched message of the lowest priority number first.
BACKGROUND_PRIORITY = 100
# Far below RabbitMQ's 30-minute consumer timeout; a slice of work ends long before this (see
# Executor.slice_seconds), so the limit only catches a step stuck for good.
TIME_LIMIT_MS = 15 * 60 * 1000

_advance: Callable[[uuid.UUID, int], object] | None = None


def install_executor(advance: Callable[[uuid.UUID, int], object]) -> None:
    """Tell this process's actor what to call (worker processes only)."""
    global _advance
    _advance = advance


def _advance_actor(run_id: str, epoch: int) -> None:
    if _advance is None:
        raise RuntimeError("this process has no runtime executor installed")
    _advance(uuid.UUID(run_id), epoch)


class Kicker:
    """Sends kicks through the broker, inside or right after a transaction."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.actor = self._actor(ACTOR, QUEUE, priority=0)
        self.background_actor = self._actor(BACKGROUND_ACTOR, BACKGROUND_QUEUE, priority=BACKGROUND_PRIORITY)
        self.transactional = isinstance(broker, PostgresBroker)

    def _actor(self, name: str, queue: str, *, priority: int) -> dramatiq.Actor[[str, int], None]:
        return dramatiq.Actor(
            _advance_actor,
            broker=self.broker,
            actor_name=name,
            queue_name=queue,
            priority=priority,
            # The runtime owns retries and recovery; Dramatiq must not redo an advance.
            options={"max_retries": 0, "time_limit": TIME_LIMIT_MS},
        )

    def message(self, run_id: uuid.UUID, epoch: int, program: str) -> Message[Any]:
        actor = self.background_actor if registry.is_background(program) else self.actor
        return actor.message(str(run_id), epoch)

    def kick(self, run_id: uuid.UUID, epoch: int, *, program: str, session: Session | None = None) -> None:
        """Kick `run_id` (a run of `program`); with a session, the kick takes effect when that
        session commits."""
        message = self.message(run_id, epoch, program)
        if session is None:
            self.broker.enqueue(message)
        elif self.transactional:
            driver = session.connection().connection.driver_connection
            assert isinstance(driver, psycopg.Connection)
            enqueue_in(driver, message)
        else:
            session.info.setdefault("kicks_after_commit", []).append((self, message))

    def resend(self, run_id: uuid.UUID, epoch: int) -> None:
        """Send a kick again, now, for another worker (the run's program is not known here, so
        on the main queue: a background run moves once at normal priority)."""
        self.send_now(self.actor.message(str(run_id), epoch))

    def send_now(self, message: Message[Any]) -> None:
        try:
            self.broker.enqueue(message)
        except Exception:  # the sweeper re-kicks runs whose kick was lost
            logger.warning("could not send kick %s; the sweeper will retry", message.args, exc_info=True)


def _send_kicks(session: Session) -> None:
    for kicker, message in session.info.pop("kicks_after_commit", []):
        kicker.send_now(message)


def _drop_kicks(session: Session) -> None:
    session.info.pop("kicks_after_commit", None)


for session_class in (TenantSession, SystemSession):
    event.listen(session_class, "after_commit", _send_kicks)
    event.listen(session_class, "after_soft_rollback", lambda session, previous: _drop_kicks(session))
