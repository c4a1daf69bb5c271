"""The Dramatiq broker Quire's workers and API share, chosen by QUIRE_BROKER_URL.

`redis://…` → Redis, `amqp://…` → RabbitMQ, empty → queues in the PostgreSQL database
(`quire.core.pgqueue`). Actors are declared on the broker explicitly (see
`quire.runtime.kicks`), so no module depends on Dramatiq's global broker at import time.
"""

from __future__ import annotations

import logging

import dramatiq
from dramatiq.broker import Broker

from quire.core.db import libpq_url
from quire.core.errors import ServiceUnavailable
from quire.core.pgqueue import TABLE, PostgresBroker
from quire.core.urls import without_password

logger = logging.getLogger(__name__)


def describe_broker_url(url: str) -> str:
    """The broker as messages name it: its URL as written, without its password."""
    return without_password(url) if url else "the PostgreSQL queue"


def build_broker(*, broker_url: str, database_url: str) -> Broker:
    """Build the broker for `broker_url` and make it Dramatiq's global broker."""
    broker: Broker
    if broker_url.startswith(("redis://", "rediss://")):
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=broker_url)  # type: ignore[no-untyped-call]
    elif broker_url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=broker_url, confirm_delivery=True)
    else:
        broker = PostgresBroker(url=libpq_url(database_url))
    dramatiq.set_broker(broker)
    return broker


def check_broker(*, broker_url: str, database_url: str, timeout: float = 3.0) -> None:
    """Raise ServiceUnavailable with one readable sentence unless the broker answers."""
    where = describe_broker_url(broker_url)
    try:
        if broker_url.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(broker_url, socket_connect_timeout=timeout, socket_timeout=timeout)
            try:
                client.ping()
            finally:
                client.close()
        elif broker_url.startswith(("amqp://", "amqps://")):
            import pika

            parameters = pika.URLParameters(broker_url)
            parameters.connection_attempts = 1
            parameters.socket_timeout = timeout
            parameters.blocked_connection_timeout = timeout
            pika.BlockingConnection(parameters).close()
        else:
            import psycopg

            with psycopg.connect(libpq_url(database_url), connect_timeout=int(timeout)) as conn:
                conn.execute(f"SELECT 1 FROM {TABLE} LIMIT 1")
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        hint = (
            "check QUIRE_BROKER_URL, or unset it to queue work in PostgreSQL"
            if broker_url
            else "run `quire migrate`"
        )
        raise ServiceUnavailable(f"cannot reach the broker at {where}: {reason}; {hint}") from None
