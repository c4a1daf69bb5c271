"""Chaos: runs on real worker processes while a harness SIGKILLs and restarts workers.

Every run must complete once, with the state of a fault-free run; each step's external side
effect may repeat only for attempts made by a killed worker; no two workers ever hold a valid
lease on one run. Against the PostgreSQL queue, Redis and RabbitMQ.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from sqlalchemy import text

from quire.core.broker import build_broker
from quire.core.db import Database, libpq_url
from quire.core.embedded import EmbeddedPostgres
from quire.core.models import Tenant
from quire.runtime.kicks import Kicker
from quire.runtime.service import create_run, send_signal
from tests.conftest import create_database
from tests.e2e.chaos_programs import STEPS, ChaosState, expected
from tests.factories import TEST_SECRET_KEY, open_database, owner_url

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RUNS = 50
BROKERS = {
    "postgres": "",
    "redis": "redis://127.0.0.1:6379/15",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/%2F",
}

AUDIT_SQL = """
CREATE TABLE chaos_effect (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id uuid NOT NULL, step int NOT NULL, pid int NOT NULL,
    at timestamptz DEFAULT clock_timestamp()
);
CREATE TABLE chaos_lease (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id uuid NOT NULL, epoch bigint NOT NULL, owner text, expires timestamptz,
    status text NOT NULL, at timestamptz NOT NULL
);
CREATE FUNCTION chaos_audit_lease() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF NEW.epoch IS DISTINCT FROM OLD.epoch
       OR NEW.lease_owner IS DISTINCT FROM OLD.lease_owner
       OR NEW.lease_expires_at IS DISTINCT FROM OLD.lease_expires_at THEN
        INSERT INTO chaos_lease (run_id, epoch, owner, expires, status, at)
        VALUES (NEW.id, NEW.epoch, NEW.lease_owner, NEW.lease_expires_at, NEW.status, now());
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER chaos_audit_lease AFTER UPDATE ON runtime_run
    FOR EACH ROW EXECUTE FUNCTION chaos_audit_lease();
GRANT SELECT, INSERT ON chaos_effect, chaos_lease TO quire_app;
"""


def worker_children(supervisor: psutil.Process) -> list[psutil.Process]:
    found = []
    for child in supervisor.children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "quire.app.worker" in child.cmdline():
                found.append(child)
        except psutil.Error:
            continue
    return found


def status_counts(database: Database) -> dict[str, int]:
    with database.system_session() as session:
        rows = session.execute(text("SELECT status, count(*) FROM runtime_run GROUP BY status")).all()
    return {status: count for status, count in rows}


@pytest.mark.parametrize("broker_name", list(BROKERS))
def test_runs_survive_workers_killed_at_random(
    broker_name: str, postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    server_url = postgres.status().url
    assert server_url is not None
    url = create_database(server_url, f"quire_chaos_{broker_name}")
    broker_url = BROKERS[broker_name]
    if broker_name == "redis":
        import redis

        redis.Redis.from_url(broker_url).flushdb()
    with psycopg.connect(libpq_url(owner_url(url)), autocommit=True) as conn:  # the test's own tables
        conn.execute(AUDIT_SQL)
    database = open_database(url, pool_size=4)
    with database.system_session() as session:
        tenant = Tenant(name="chaos")
        session.add(tenant)
        session.commit()

    env = {k: v for k, v in os.environ.items() if not k.startswith("QUIRE_")}
    env.update(
        QUIRE_DATABASE_URL=url,
        QUIRE_SECRET_KEY=TEST_SECRET_KEY,
        QUIRE_BROKER_URL=broker_url,
        QUIRE_DATA_DIR=str(tmp_path),
        QUIRE_PROGRAM_MODULES="tests.e2e.chaos_programs",
        QUIRE_LEASE_SECONDS="3",
        QUIRE_SWEEP_SECONDS="0.5",
        QUIRE_MAX_RECOVERIES="30",
        QUIRE_WORKER_THREADS="4",
        QUIRE_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    log = (tmp_path / "worker.log").open("w")
    workers = subprocess.Popen(
        [sys.executable, "-m", "quire.app.cli", "worker", "--processes", "2"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    supervisor = psutil.Process(workers.pid)
    kicker = Kicker(build_broker(broker_url=broker_url, database_url=url))
    rng = random.Random(7)
    seeds = {}
    killed: set[int] = set()
    try:
        with database.tenant_session(tenant.id) as session:
            for n in range(RUNS):
                run, _ = create_run(
                    session, program="chaos.workflow", state=ChaosState(seed=n), kicker=kicker
                )
                seeds[run.id] = n
            session.commit()

        pending_signals = list(seeds)
        rng.shuffle(pending_signals)
        deadline = time.monotonic() + 240
        next_kill = time.monotonic() + rng.uniform(0.5, 2.0)
        while time.monotonic() < deadline:
            if pending_signals and rng.random() < 0.5:  # some before the run waits, some after
                run_id = pending_signals.pop()
                with database.tenant_session(tenant.id) as session:
                    send_signal(
                        session,
                        run_id=run_id,
                        name="go",
                        payload={"seed": seeds[run_id]},
                        key="go",
                        kicker=kicker,
                    )
                    session.commit()
            if time.monotonic() >= next_kill and len(killed) < 25:
                children = worker_children(supervisor)
                if children:
                    victim = rng.choice(children)
                    killed.add(victim.pid)
                    victim.send_signal(signal.SIGKILL)
                next_kill = time.monotonic() + rng.uniform(0.5, 2.5)
            counts = status_counts(database)
            if counts.get("completed", 0) == RUNS:
                break
            assert not counts.get("failed"), counts
            time.sleep(0.1)
    finally:
        workers.send_signal(signal.SIGTERM)
        try:
            workers.wait(60)
        except subprocess.TimeoutExpired:
            workers.kill()
        log.close()

    worker_log = (tmp_path / "worker.log").read_text()
    assert status_counts(database) == {"completed": RUNS}, worker_log[-3000:]
    assert len(killed) >= 5, "the harness should have killed workers"

    with database.system_session() as session:
        finals = dict(session.execute(text("SELECT id, state FROM runtime_run")).all())
        steps = session.execute(
            text("SELECT run_id, count(*), array_agg(name ORDER BY seq) FROM runtime_step GROUP BY run_id")
        ).all()
        effects = session.execute(text("SELECT run_id, step, pid FROM chaos_effect")).all()
        leases = session.execute(
            text("SELECT run_id, epoch, owner, expires, at FROM chaos_lease ORDER BY id")
        ).all()

    # Every run ends in the state a fault-free run reaches.
    for run_id, seed in seeds.items():
        assert ChaosState.model_validate(finals[run_id]) == expected(seed)

    # Every (run_id, seq) completed once: the recorded steps are exactly the program's.
    names = ["s0", "s1", "sleep", "s2", "s3", "signal:go", "s4", "s5"]
    assert len(steps) == RUNS
    for _, count, recorded in steps:
        assert (count, list(recorded)) == (len(names), names)

    # A step's side effect repeats only for attempts made by workers that were killed.
    by_step: dict[tuple[uuid.UUID, int], list[int]] = defaultdict(list)
    for run_id, step, pid in effects:
        by_step[(run_id, step)].append(pid)
    assert len(by_step) == RUNS * STEPS
    repeats = 0
    for pids in by_step.values():
        survivors = [pid for pid in pids if pid not in killed]
        crashed = [pid for pid in pids if pid in killed]
        assert len(survivors) <= 1
        assert len(pids) <= 1 + len(crashed)
        repeats += len(pids) - 1

    # No two workers ever held a valid lease on one run at the same time.
    holder: dict[uuid.UUID, dict[str, Any]] = {}
    claims = 0
    for run_id, epoch, owner, expires, at in leases:
        previous = holder.get(run_id)
        if previous is not None and epoch > previous["epoch"] and owner is not None:
            claims += 1
            assert previous["owner"] is None or previous["expires"] is None or at > previous["expires"], (
                f"run {run_id}: {owner} claimed at {at} while {previous['owner']} held it until "
                f"{previous['expires']}"
            )
        holder[run_id] = {"epoch": epoch, "owner": owner, "expires": expires}
    assert claims >= RUNS
    print(f"{broker_name}: {len(killed)} workers killed, {repeats} repeated side effects")
    database.dispose()
