"""The PostgreSQL broker: delivery, acknowledgement, delays, dead letters and redelivery."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import dramatiq
import psycopg
import pytest
from dramatiq import Worker
from dramatiq.message import Message

from quire.core.db import libpq_url
from quire.core.pgqueue import PostgresBroker, enqueue_in


def open_broker(database_url: str, *, visibility_timeout: float) -> Iterator[PostgresBroker]:
    broker = PostgresBroker(
        url=libpq_url(database_url), visibility_timeout=visibility_timeout, poll_interval=0.2
    )
    broker.declare_queue("test")
    broker.flush("test")
    yield broker
    broker.flush("test")
    broker.close()


@pytest.fixture
def broker(database_url: str) -> Iterator[PostgresBroker]:
    yield from open_broker(database_url, visibility_timeout=2)


@pytest.fixture
def patient_broker(database_url: str) -> Iterator[PostgresBroker]:
    # A long visibility timeout: the holder's claim must lapse only after a stall of seconds,
    # far longer than a busy machine's scheduling hiccup.
    yield from open_broker(database_url, visibility_timeout=4)


def message(n: int) -> Message[object]:
    return Message(queue_name="test", actor_name="noop", args=(n,), kwargs={}, options={})


def next_message(consumer: object, timeout: float = 5.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = next(consumer)  # type: ignore[call-overload]
        if got is not None:
            return got
    raise AssertionError("no message arrived")


def test_a_message_is_delivered_once_and_gone_after_ack(broker: PostgresBroker) -> None:
    broker.enqueue(message(1))
    consumer = broker.consume("test", prefetch=1, timeout=200)
    got = next_message(consumer)
    assert list(got.args) == [1]  # type: ignore[attr-defined]
    consumer.ack(got)  # type: ignore[arg-type]
    assert broker.pending("test") == 0
    consumer.close()


def test_an_unacknowledged_message_comes_back_after_its_consumer_dies(
    broker: PostgresBroker,
) -> None:
    broker.enqueue(message(2))
    dead = broker.consume("test", prefetch=1, timeout=200)
    started = time.monotonic()  # before the claim, whose now() + 2 s is the claim's deadline
    first = next_message(dead)
    dead.close()  # the consumer vanishes without ack (as a SIGKILLed worker does)

    other = broker.consume("test", prefetch=1, timeout=200)
    again = next_message(other, timeout=10)
    assert again.message_id == first.message_id  # type: ignore[attr-defined]
    # Not before the visibility timeout (2 s) has run from the claim (0.1 s for clock rounding).
    assert time.monotonic() - started >= 1.9
    other.ack(again)  # type: ignore[arg-type]
    other.close()


def test_a_consumer_that_holds_a_message_keeps_it(patient_broker: PostgresBroker) -> None:
    broker = patient_broker
    broker.enqueue(message(3))
    holder = broker.consume("test", prefetch=1, timeout=200)
    held = next_message(holder)
    other = broker.consume("test", prefetch=1, timeout=200)
    deadline = time.monotonic() + 8  # twice the visibility timeout
    while time.monotonic() < deadline:
        assert next(holder) is None  # the holder's polling extends its claim
        assert next(other) is None
    holder.ack(held)  # type: ignore[arg-type]
    holder.close()
    other.close()


def test_delayed_messages_wait_in_the_table(broker: PostgresBroker) -> None:
    # Taken before the enqueue, whose now() + 1.5 s is the message's available_at.
    started = time.monotonic()
    broker.enqueue(message(4), delay=1500)
    consumer = broker.consume("test", prefetch=1, timeout=200)
    got = next_message(consumer, timeout=5)
    # Not before the whole delay has run (0.1 s for clock rounding); on a slow machine the
    # first poll may already come after it, so "the first poll finds nothing" is not asserted.
    assert time.monotonic() - started >= 1.4
    consumer.ack(got)  # type: ignore[arg-type]
    consumer.close()


def test_nack_keeps_the_message_as_dead(broker: PostgresBroker, database_url: str) -> None:
    broker.enqueue(message(5))
    consumer = broker.consume("test", prefetch=1, timeout=200)
    got = next_message(consumer)
    consumer.nack(got)  # type: ignore[arg-type]
    with psycopg.connect(libpq_url(database_url)) as conn:
        state = conn.execute(
            "SELECT state FROM core_queue_message WHERE message_id = %s",
            (got.message_id,),  # type: ignore[attr-defined]
        ).fetchone()
    assert state == ("dead",)
    assert broker.pending("test") == 0
    consumer.close()


def test_a_message_enqueued_in_a_rolled_back_transaction_never_arrives(
    broker: PostgresBroker, database_url: str
) -> None:
    with psycopg.connect(libpq_url(database_url)) as conn:
        enqueue_in(conn, message(6))
        conn.rollback()
        enqueue_in(conn, message(7))
        conn.commit()
    consumer = broker.consume("test", prefetch=5, timeout=200)
    got = next_message(consumer)
    assert list(got.args) == [7]  # type: ignore[attr-defined]
    consumer.ack(got)  # type: ignore[arg-type]
    assert broker.pending("test") == 0
    consumer.close()


def test_a_dramatiq_worker_runs_actors_from_it(broker: PostgresBroker) -> None:
    seen: list[int] = []
    done = threading.Event()

    def record(n: int) -> None:
        seen.append(n)
        if len(seen) == 20:
            done.set()

    actor = dramatiq.Actor(
        record,
        broker=broker,
        actor_name="record",
        queue_name="test",
        priority=0,
        options={"max_retries": 0},
    )
    worker = Worker(broker, worker_threads=4)
    worker.start()
    try:
        for n in range(20):
            actor.send(n)
        assert done.wait(15)
        broker.join("test", timeout=5000)
    finally:
        worker.stop()
    assert sorted(seen) == list(range(20))
