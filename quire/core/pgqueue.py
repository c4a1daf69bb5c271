"""A Dramatiq broker whose queues are rows in Quire's own PostgreSQL database.

It is the broker of the embedded default, so a single machine needs nothing but PostgreSQL.
Messages are claimed with `FOR UPDATE SKIP LOCKED` and a visibility deadline that the consumer
extends while it holds them; a worker that dies stops extending, and its messages become
visible again after `visibility_timeout` seconds. LISTEN/NOTIFY wakes idle consumers at once;
polling covers a missed notification. An ack deletes the row; a nack keeps it as `dead`.

`enqueue_in` writes a message inside a caller's own transaction, so a message can be committed
together with the state change it announces.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

import psycopg
from dramatiq.broker import Broker, Consumer, MessageProxy
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message
from dramatiq.middleware import Middleware
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

logger = logging.getLogger(__name__)

TABLE = "core_queue_message"
CHANNEL = "quire_queue"
FULL_WAIT_SECONDS = 0.01

# Tenant transactions enqueue a run's next kick with its step; they may insert into the queue
# and read nothing of it (the consumers' role, quire_queue, reads it), so no RETURNING here.
ENQUEUE_SQL = f"""
INSERT INTO {TABLE} (queue_name, message_id, body, available_at)
VALUES (%(queue)s, %(message_id)s, %(body)s, now() + make_interval(secs => %(delay)s))
ON CONFLICT DO NOTHING
"""
NOTIFY_SQL = f"SELECT pg_notify('{CHANNEL}', %(queue)s)"

CLAIM_SQL = f"""
UPDATE {TABLE} SET
    claimed_by = %(consumer)s,
    claimed_until = now() + make_interval(secs => %(visibility)s),
    deliveries = deliveries + 1
WHERE id IN (
    SELECT id FROM {TABLE}
    WHERE queue_name = %(queue)s AND state = 'queued' AND available_at <= now()
      AND (claimed_until IS NULL OR claimed_until < now())
    ORDER BY available_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, body
"""

EXTEND_SQL = f"""
UPDATE {TABLE} SET claimed_until = now() + make_interval(secs => %(visibility)s)
WHERE id = ANY(%(ids)s) AND claimed_by = %(consumer)s
"""


def connection_closed(error: Exception) -> ConnectionClosed:
    """Dramatiq's signal to its consumer thread that it should reconnect."""
    return ConnectionClosed(error)  # type: ignore[no-untyped-call]


def _message_body(message: Message[Any]) -> Jsonb:
    return Jsonb(message.asdict())


def enqueue_in(conn: psycopg.Connection[Any], message: Message[Any], *, delay_ms: int = 0) -> None:
    """Insert `message` inside the caller's transaction on `conn`; it is visible at commit."""
    conn.execute(
        ENQUEUE_SQL,
        {
            "queue": message.queue_name,
            "message_id": message.message_id,
            "body": _message_body(message),
            "delay": delay_ms / 1000,
        },
    )
    conn.execute(NOTIFY_SQL, {"queue": message.queue_name})


def message_counts(conn: psycopg.Connection[Any]) -> list[tuple[str, str, int]]:
    """(queue, state, messages) on a connection of the broker's role (quire_queue)."""
    rows = conn.execute(f"SELECT queue_name, state, count(*) FROM {TABLE} GROUP BY 1, 2").fetchall()
    return [(str(q), str(s), int(n)) for q, s, n in rows]


class PostgresBroker(Broker):
    """Dramatiq broker on a PostgreSQL table (created by Quire's migrations)."""

    def __init__(
        self,
        *,
        url: str,
        middleware: list[Middleware] | None = None,
        visibility_timeout: float = 60.0,
        poll_interval: float = 1.0,
        pool_size: int = 4,
    ) -> None:
        super().__init__(middleware=middleware)
        self.url = url
        self.visibility_timeout = visibility_timeout
        self.poll_interval = poll_interval
        self.pool = ConnectionPool(
            url, min_size=0, max_size=pool_size, open=False, kwargs={"autocommit": True}
        )
        self._pool_lock = threading.Lock()

    def _ensure_pool(self) -> ConnectionPool:
        with self._pool_lock:
            if self.pool.closed:
                self.pool.open(wait=False)
        return self.pool

    def close(self) -> None:
        if not self.pool.closed:
            self.pool.close()

    def declare_queue(self, queue_name: str) -> None:
        # Every queue lives in the same table; declaring one only tells the middleware.
        if queue_name not in self.queues:
            self.emit_before("declare_queue", queue_name)
            self.queues[queue_name] = None
            self.emit_after("declare_queue", queue_name)

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        # Delays are kept in the table (available_at), not in a worker's memory.
        self.emit_before("enqueue", message, delay)
        try:
            with self._ensure_pool().connection() as conn:
                enqueue_in(conn, message, delay_ms=delay or 0)
        except psycopg.OperationalError as error:
            raise connection_closed(error) from error
        self.emit_after("enqueue", message, delay)
        return message

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 30000) -> Consumer:
        return PostgresConsumer(self, queue_name, prefetch=prefetch, timeout_ms=timeout)

    def get_declared_delay_queues(self) -> set[str]:
        return set()

    def pending(self, queue_name: str) -> int:
        """Messages waiting or in flight on `queue_name` (for tests and metrics)."""
        with self._ensure_pool().connection() as conn:
            row = conn.execute(
                f"SELECT count(*) FROM {TABLE} WHERE queue_name = %s AND state = 'queued'",
                (queue_name,),
            ).fetchone()
        return int(row[0]) if row else 0

    def flush(self, queue_name: str) -> None:
        with self._ensure_pool().connection() as conn:
            conn.execute(f"DELETE FROM {TABLE} WHERE queue_name = %s", (queue_name,))

    def flush_all(self) -> None:
        for queue_name in list(self.queues):
            self.flush(queue_name)

    def join(self, queue_name: str, *, timeout: int | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout / 1000
        while self.pending(queue_name):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"queue {queue_name} still has messages")
            time.sleep(0.05)


class PostgresConsumer(Consumer):
    """Claims messages for one queue of one worker process over a dedicated connection."""

    def __init__(self, broker: PostgresBroker, queue_name: str, *, prefetch: int, timeout_ms: int):
        self.broker = broker
        self.queue_name = queue_name
        self.prefetch = prefetch
        self.timeout = timeout_ms / 1000
        self.consumer_id = f"{queue_name}:{id(self):x}:{time.time_ns()}"
        self.buffer: list[tuple[int, Message[Any]]] = []
        self.in_flight: dict[str, int] = {}  # message id -> row id
        self.lock = threading.Lock()
        self.conn: psycopg.Connection[Any] | None = None
        self.last_extended = time.monotonic()

    def _connection(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed:
            try:
                self.conn = psycopg.connect(self.broker.url, autocommit=True, connect_timeout=5)
                self.conn.execute(f"LISTEN {CHANNEL}")
            except psycopg.OperationalError as error:
                self.conn = None
                raise connection_closed(error) from error
        return self.conn

    def __next__(self) -> MessageProxy | None:
        try:
            conn = self._connection()
            self._extend_claims(conn)
            if not self.buffer:
                self._claim(conn)
            if self.buffer:
                _, message = self.buffer.pop(0)
                return MessageProxy(message)
            with self.lock:
                full = len(self.in_flight) >= self.prefetch
            # Dramatiq acknowledges finished messages between calls to __next__: with every
            # slot taken, come back soon for them; with nothing to claim, sleep until an
            # enqueue notification or the poll interval.
            wait = FULL_WAIT_SECONDS if full else min(self.timeout, self.broker.poll_interval)
            for _ in conn.notifies(timeout=wait, stop_after=1):
                pass
            return None
        except psycopg.OperationalError as error:
            self._drop_connection()
            raise connection_closed(error) from error

    def _claim(self, conn: psycopg.Connection[Any]) -> None:
        with self.lock:
            capacity = self.prefetch - len(self.in_flight)
        if capacity <= 0:
            return
        rows = conn.execute(
            CLAIM_SQL,
            {
                "consumer": self.consumer_id,
                "visibility": self.broker.visibility_timeout,
                "queue": self.queue_name,
                "limit": capacity,
            },
        ).fetchall()
        for row_id, body in rows:
            message: Message[Any] = Message(**body)
            with self.lock:
                self.in_flight[message.message_id] = row_id
            self.buffer.append((row_id, message))

    def _extend_claims(self, conn: psycopg.Connection[Any]) -> None:
        if time.monotonic() - self.last_extended < self.broker.visibility_timeout / 3:
            return
        self.last_extended = time.monotonic()
        with self.lock:
            ids = list(self.in_flight.values())
        if ids:
            conn.execute(
                EXTEND_SQL,
                {
                    "ids": ids,
                    "consumer": self.consumer_id,
                    "visibility": self.broker.visibility_timeout,
                },
            )

    def _finish(self, message: MessageProxy, sql: str) -> None:
        with self.lock:
            row_id = self.in_flight.pop(message.message_id, None)
        if row_id is not None:
            with self.broker._ensure_pool().connection() as conn:
                conn.execute(sql, {"id": row_id, "consumer": self.consumer_id})

    def ack(self, message: MessageProxy) -> None:
        self._finish(message, f"DELETE FROM {TABLE} WHERE id = %(id)s AND claimed_by = %(consumer)s")

    def nack(self, message: MessageProxy) -> None:
        self._finish(
            message,
            f"UPDATE {TABLE} SET state = 'dead', claimed_by = NULL, claimed_until = NULL "
            "WHERE id = %(id)s AND claimed_by = %(consumer)s",
        )

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        with self.lock:
            ids = [self.in_flight.pop(m.message_id) for m in messages if m.message_id in self.in_flight]
            ids += [self.in_flight.pop(m.message_id, row_id) for row_id, m in self.buffer]
        self.buffer.clear()
        if not ids:
            return
        with self.broker._ensure_pool().connection() as conn:
            conn.execute(
                f"UPDATE {TABLE} SET claimed_by = NULL, claimed_until = NULL "
                "WHERE id = ANY(%(ids)s) AND claimed_by = %(consumer)s",
                {"ids": ids, "consumer": self.consumer_id},
            )

    def _drop_connection(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None

    def close(self) -> None:
        self._drop_connection()
