"""Choosing the broker by URL, and telling the user clearly when it cannot be reached."""

from __future__ import annotations

import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from quire.core.broker import build_broker, check_broker
from quire.core.errors import ServiceUnavailable
from quire.core.pgqueue import PostgresBroker

REDIS = "redis://127.0.0.1:6379/0"
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/%2F"


def test_the_url_picks_the_broker(database_url: str) -> None:
    assert isinstance(build_broker(broker_url="", database_url=database_url), PostgresBroker)
    assert isinstance(build_broker(broker_url=REDIS, database_url=database_url), RedisBroker)
    rabbit = build_broker(broker_url=RABBITMQ, database_url=database_url)
    assert isinstance(rabbit, RabbitmqBroker)
    rabbit.close()


@pytest.mark.parametrize("url", ["", REDIS, RABBITMQ])
def test_reachable_brokers_pass_the_check(url: str, database_url: str) -> None:
    check_broker(broker_url=url, database_url=database_url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0"),
        ("amqp://guest:secret@127.0.0.1:1/%2F", "amqp://guest:***@127.0.0.1:1/%2F"),
    ],
)
def test_an_unreachable_broker_is_one_clear_sentence(url: str, shown: str, database_url: str) -> None:
    with pytest.raises(ServiceUnavailable) as caught:
        check_broker(broker_url=url, database_url=database_url, timeout=1)
    message = str(caught.value)
    assert message.startswith(f"cannot reach the broker at {shown}")
    assert "QUIRE_BROKER_URL" in message
    assert "secret" not in message and "\n" not in message
