"""A busy worker never looks dead: CPU-heavy steps on every thread of a worker, for a minute,
under a 6 s lease, and no run is recovered, no lease is lost, no step runs twice.

The steps are what an ingestion's are: each reads from its transaction first (its version, its
elements), then computes for a while in pure Python (holding the GIL as much as Python lets a
thread), some for longer than the lease. The worker is a real one: Dramatiq consumer threads on
the PostgreSQL queue, the executor with its lease keeper, and the sweeper, all in this process,
as `quire worker` runs them. About 65 s: marked e2e, so `pytest -m "not e2e"` leaves it out
while CI runs it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter

import pytest
from dramatiq import Worker
from pydantic import BaseModel
from sqlalchemy import text

from quire.core.db import libpq_url
from quire.core.pgqueue import PostgresBroker
from quire.runtime.context import RunContext
from quire.runtime.executor import Executor
from quire.runtime.kicks import BACKGROUND_QUEUE, QUEUE, Kicker
from quire.runtime.programs import program
from quire.runtime.service import create_run
from quire.runtime.sweeper import Sweeper
from tests.factories import open_database
from tests.harness import Harness

pytestmark = pytest.mark.e2e

LEASE_SECONDS = 6.0
THREADS = 4  # the worker's threads, every one of them busy: twice this machine's two cores
# Seconds of computing per step, a minute per run; a third of the steps outlast the lease, and
# two pairs run at once (`ctx.parallel`), on threads of their own beside the worker's.
STAGES = [[0.5], [2.0], [8.0], [1.0], [3.0, 3.0], [11.0], [0.3], [4.0], [9.0], [1.5], [7.0, 7.0]]
STAGES += [[10.0], [1.2], [2.0]]
LOAD_SECONDS = sum(max(stage) for stage in STAGES)

executed: Counter[tuple[str, int]] = Counter()
executed_lock = threading.Lock()


class Crunch(BaseModel):
    stages: list[list[float]]
    total: int = 0


def burn(ctx: RunContext, index: int, seconds: float) -> int:
    """Read first, as a step that loads its input does (its transaction has begun), then compute
    in pure Python for `seconds`."""
    ctx.session.execute(text("SELECT 1")).scalar_one()
    with executed_lock:
        executed[(str(ctx.run_id), index)] += 1
    deadline = time.monotonic() + seconds
    total = 0
    while time.monotonic() < deadline:
        for number in range(2_000):
            total = (total * 31 + number * number) % 1_000_003
    return total % 97


@program("test.busy.crunch")
def crunch(ctx: RunContext, state: Crunch) -> Crunch:
    index = 0
    for stage in state.stages:
        calls = []
        for seconds in stage:
            calls.append((f"crunch:{index}", burn, (ctx, index, seconds)))
            index += 1
        if len(calls) == 1:
            name, function, args = calls[0]
            state.total += ctx.step(name, function, *args)
        else:
            state.total += sum(ctx.parallel(calls))
    return state


def test_cpu_heavy_steps_on_every_thread_keep_their_leases_for_a_minute(
    harness: Harness,
    runtime_database_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING, logger="quire.runtime")
    executed.clear()
    # Sized as `quire worker` sizes its pool: the worker's threads and two more, four overflow.
    database = open_database(runtime_database_url, pool_size=THREADS + 2, max_overflow=4)
    broker = PostgresBroker(url=libpq_url(runtime_database_url), poll_interval=0.1)
    for queue in (QUEUE, BACKGROUND_QUEUE):
        broker.declare_queue(queue)
        broker.flush(queue)
    kicker = Kicker(broker)
    executor = Executor(database, kicker, lease_ttl=LEASE_SECONDS, programs=harness.services.programs)
    sweeper = Sweeper(database, kicker, interval=1.0, max_recoveries=5)
    worker = Worker(broker, queues={QUEUE, BACKGROUND_QUEUE}, worker_threads=THREADS)
    monkeypatch.setattr("quire.runtime.kicks._advance", executor.advance)
    executor.start()
    sweeper.start()
    worker.start()
    run_ids: list[uuid.UUID] = []
    try:
        with database.tenant_session(harness.tenant_id) as session:
            for _ in range(THREADS):
                run, _ = create_run(
                    session, program="test.busy.crunch", state=Crunch(stages=STAGES), kicker=kicker
                )
                run_ids.append(run.id)
            session.commit()
        deadline = time.monotonic() + LOAD_SECONDS * 2 + 30
        while time.monotonic() < deadline:
            statuses = [harness.run(run_id).status for run_id in run_ids]
            if all(status in ("completed", "failed", "cancelled") for status in statuses):
                break
            time.sleep(0.5)
    finally:
        worker.stop()
        sweeper.stop()
        executor.stop()
        for queue in (QUEUE, BACKGROUND_QUEUE):
            broker.flush(queue)
        broker.close()
        database.dispose()

    recovered = sum(harness.events(run_id).count("run.recovered") for run_id in run_ids)
    lost = [r.getMessage() for r in caplog.records if "lost the lease" in r.getMessage()]
    repeated = {key: count for key, count in executed.items() if count > 1}
    assert [harness.run(run_id).status for run_id in run_ids] == ["completed"] * THREADS
    gap = executor.leases.longest_gap
    assert (recovered, lost, repeated) == (0, [], {}), f"longest wait between renewals: {gap:.1f} s"
