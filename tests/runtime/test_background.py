"""Background programs: their runs wait until a worker has nothing else queued."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import psycopg
import pytest
from dramatiq import Worker
from pydantic import BaseModel

from quire.core.db import libpq_url
from quire.core.pgqueue import TABLE, PostgresBroker
from quire.runtime.context import RunContext
from quire.runtime.executor import Executor
from quire.runtime.kicks import BACKGROUND_QUEUE, QUEUE, Kicker
from quire.runtime.programs import program
from quire.runtime.service import create_run
from tests.harness import Harness

finished: list[str] = []
gate_entered = threading.Event()
gate_open = threading.Event()


class Named(BaseModel):
    name: str


def record(ctx: RunContext, name: str) -> None:
    finished.append(name)


@program("test.foreground")
def foreground(ctx: RunContext, state: Named) -> Named:
    ctx.step("record", record, ctx, state.name)
    return state


@program("test.background", background=True)
def background(ctx: RunContext, state: Named) -> Named:
    ctx.step("record", record, ctx, state.name)
    return state


@program("test.gate")
def gate(ctx: RunContext, state: Named) -> Named:
    def hold() -> None:
        gate_entered.set()
        assert gate_open.wait(30), "the test never opened the gate"

    ctx.step("hold", hold)
    ctx.step("record", record, ctx, state.name)
    return state


@pytest.fixture(autouse=True)
def reset() -> None:
    finished.clear()
    gate_entered.clear()
    gate_open.clear()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def unclaimed(url: str) -> int:
    """Kicks on the runtime's queues that no consumer has taken in yet."""
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM {TABLE} WHERE queue_name = ANY(%s) AND state = 'queued' "
            "AND (claimed_until IS NULL OR claimed_until < now())",
            ([QUEUE, BACKGROUND_QUEUE],),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_background_run_is_kicked_on_its_own_queue_and_driven_last(harness: Harness) -> None:
    kicker = Kicker(PostgresBroker(url="postgresql://unused"))  # builds messages; sends none
    assert kicker.message(uuid.uuid4(), 0, "test.background").queue_name == BACKGROUND_QUEUE
    assert kicker.message(uuid.uuid4(), 0, "test.foreground").queue_name == QUEUE
    assert kicker.message(uuid.uuid4(), 0, "no.such.program").queue_name == QUEUE

    harness.start("test.background", Named(name="derived"))
    harness.start("test.foreground", Named(name="asked for"))
    harness.drive()
    assert finished == ["asked for", "derived"]


def test_a_worker_takes_background_kicks_only_when_nothing_else_is_queued(
    harness: Harness, runtime_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = PostgresBroker(url=libpq_url(runtime_database_url), poll_interval=0.1)
    for queue in (QUEUE, BACKGROUND_QUEUE):
        broker.declare_queue(queue)
        broker.flush(queue)
    kicker = Kicker(broker)
    executor = Executor(harness.database, kicker, lease_ttl=5.0)
    monkeypatch.setattr("quire.runtime.kicks._advance", executor.advance)
    executor.start()
    worker = Worker(broker, queues={QUEUE, BACKGROUND_QUEUE}, worker_threads=1)
    worker.start()

    def start(program: str, name: str) -> None:
        with harness.database.tenant_session(harness.tenant_id) as session:
            create_run(session, program=program, state=Named(name=name), kicker=kicker)
            session.commit()

    try:
        # The only worker thread is busy, while two background kicks and then a foreground one
        # arrive; both consumers take them in (each prefetches two).
        start("test.gate", "gate")
        assert gate_entered.wait(20), "the worker never started the gate run"
        start("test.background", "derived 1")
        start("test.background", "derived 2")
        start("test.foreground", "asked for")
        wait_until(lambda: unclaimed(runtime_database_url) == 0, "the consumers to take the kicks in")
        gate_open.set()
        wait_until(lambda: len(finished) == 4, "every run to finish")
        assert finished == ["gate", "asked for", "derived 1", "derived 2"]
    finally:
        gate_open.set()
        worker.stop()
        executor.stop()
        for queue in (QUEUE, BACKGROUND_QUEUE):
            broker.flush(queue)
        broker.close()
