"""Benchmark of the durable runtime, beside DBOS Transact on the same embedded PostgreSQL.

    .venv/bin/pip install -c constraints.txt -e '.[bench]'
    .venv/bin/python -m bench.runtime

Prints, for Quire and DBOS in one run: the median and p95 overhead of one checkpointed no-op
step; ten-step no-op runs per second (Quire: 2 worker processes fed through the PostgreSQL
queue; DBOS: 4 workflows in flight in one process); and for Quire the time from SIGKILL of the
worker holding a run to another worker resuming it, on code changed behind ctx.patched.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quire.app.bootstrap import migrate  # noqa: E402
from quire.core.db import Database, context_key, libpq_url  # noqa: E402
from quire.core.embedded import EmbeddedPostgres  # noqa: E402
from quire.core.models import Tenant  # noqa: E402
from quire.core.settings import Settings  # noqa: E402

WORKER_LOG = "workers.log"


def worker_log(env: dict[str, str]) -> Path:
    """Where the worker processes' output goes: a file in the bench's data folder, shown when
    the workers fail to start."""
    return Path(env["QUIRE_DATA_DIR"]) / WORKER_LOG


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fresh_database(server_url: str, name: str) -> str:
    import psycopg

    admin = libpq_url(server_url).replace("/quire?", "/postgres?")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.replace("/quire?", f"/{name}?")


# Quire, in process: the cost of ctx.step itself.


def quire_step_overhead(url: str, tenant_id: uuid.UUID, steps: int) -> list[float]:
    from bench.runtime_programs import TIMINGS, Steps
    from quire.runtime.executor import Executor
    from quire.runtime.local import LocalKicker, drive
    from quire.runtime.service import create_run

    database = Database(url, pool_size=4)
    kicker = LocalKicker()
    executor = Executor(database, kicker, slice_steps=steps + 1, slice_seconds=3600)
    for count in (50, steps):  # the first run warms up connections and caches
        TIMINGS.clear()
        with database.tenant_session(tenant_id) as session:
            create_run(session, program="bench.timed", state=Steps(steps=count), kicker=kicker)
            session.commit()
        drive(executor, kicker)
    database.dispose()
    return list(TIMINGS)


def quire_throughput(url: str, tenant_id: uuid.UUID, runs: int, env: dict[str, str]) -> float:
    from quire.runtime.service import create_run

    workers = subprocess.Popen(
        [sys.executable, "-m", "quire.app.cli", "worker", "--processes", "2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=worker_log(env).open("ab"),
    )
    database = Database(url, pool_size=2)
    try:
        wait_for_workers(database, tenant_id, worker_log(env))
        from bench.runtime_programs import Steps
        from quire.core.broker import build_broker
        from quire.runtime.kicks import Kicker

        kicker = Kicker(build_broker(broker_url="", database_url=url))
        started = time.perf_counter()
        with database.tenant_session(tenant_id) as session:
            for _ in range(runs):
                create_run(session, program="bench.steps", state=Steps(steps=10), kicker=kicker)
            session.commit()
        while count_status(database, "bench.steps", "completed") < runs + 1:
            time.sleep(0.05)
        return runs / (time.perf_counter() - started)
    finally:
        workers.send_signal(signal.SIGTERM)
        workers.wait(60)
        database.dispose()


def count_status(database: Database, program: str, status: str) -> int:
    with database.system_session() as session:
        return int(
            session.execute(
                text("SELECT count(*) FROM runtime_run WHERE program = :p AND status = :s"),
                {"p": program, "s": status},
            ).scalar_one()
        )


def wait_for_workers(database: Database, tenant_id: uuid.UUID, log: Path) -> None:
    """Start one run and wait for it: the workers are up and warm."""
    from bench.runtime_programs import Steps
    from quire.core.broker import build_broker
    from quire.runtime.kicks import Kicker
    from quire.runtime.service import create_run

    kicker = Kicker(build_broker(broker_url="", database_url=database.url))
    with database.tenant_session(tenant_id) as session:
        create_run(session, program="bench.steps", state=Steps(steps=1), kicker=kicker)
        session.commit()
    deadline = time.monotonic() + 120
    while count_status(database, "bench.steps", "completed") < 1:
        if time.monotonic() > deadline:
            workers_failed(log)
        time.sleep(0.1)


def workers_failed(log: Path) -> None:
    tail = log.read_text(errors="replace").splitlines()[-5:] if log.exists() else []
    raise SystemExit("the workers did not start in 120 s; their log's last lines:\n" + "\n".join(tail))


def quire_recovery(url: str, tenant_id: uuid.UUID, env: dict[str, str], marker: Path) -> dict[str, Any]:
    """SIGKILL the worker mid-step, restart workers on new code, and time the resume."""
    from bench.runtime_programs import Steps
    from quire.core.broker import build_broker
    from quire.runtime.kicks import Kicker
    from quire.runtime.service import create_run

    env = {**env, "BENCH_LONG_STEP_MARKER": str(marker)}
    old = subprocess.Popen(
        [sys.executable, "-m", "quire.app.cli", "worker", "--processes", "2"],
        env={**env, "BENCH_CODE_VERSION": "old"},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=worker_log(env).open("ab"),
    )
    database = Database(url, pool_size=2)
    kicker = Kicker(build_broker(broker_url="", database_url=url))
    with database.tenant_session(tenant_id) as session:
        run, _ = create_run(session, program="bench.recover", state=Steps(), kicker=kicker)
        session.commit()
    deadline = time.monotonic() + 120
    while not marker.exists() or not marker.read_text():
        if time.monotonic() > deadline:
            workers_failed(worker_log(env))
        time.sleep(0.02)
    holder = int(marker.read_text())
    old_processes = [old.pid, *(p.pid for p in psutil.Process(old.pid).children(recursive=True))]
    with database.system_session() as session:
        epoch = session.execute(
            text("SELECT epoch FROM runtime_run WHERE id = :id"), {"id": run.id}
        ).scalar_one()
    # The deploy: the old workers go (the one holding the run dies hard), new code starts.
    os.kill(holder, signal.SIGKILL)
    killed_at = time.perf_counter()
    for pid in old_processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    new = subprocess.Popen(
        [sys.executable, "-m", "quire.app.cli", "worker", "--processes", "2"],
        env={**env, "BENCH_CODE_VERSION": "new"},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=worker_log(env).open("ab"),
    )
    try:
        resumed_after = None
        while time.perf_counter() - killed_at < 120:
            with database.system_session() as session:
                row = session.execute(
                    text("SELECT epoch, status, state FROM runtime_run WHERE id = :id"),
                    {"id": run.id},
                ).one()
            if resumed_after is None and row[0] > epoch:
                resumed_after = time.perf_counter() - killed_at
            if row[1] == "completed":
                return {"resumed_s": resumed_after, "trail": row[2]["trail"]}
            time.sleep(0.02)
        raise SystemExit("the run did not recover")
    finally:
        new.send_signal(signal.SIGTERM)
        new.wait(60)
        database.dispose()


# DBOS Transact, the peer.


def dbos_figures(url: str, steps: int, runs: int) -> tuple[list[float], float]:
    from dbos import DBOS

    DBOS(config={"name": "quire-bench", "system_database_url": url, "log_level": "WARNING"})
    timings: list[float] = []

    @DBOS.step()
    def noop() -> None:
        return None

    @DBOS.workflow()
    def timed(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            noop()
            timings.append((time.perf_counter() - started) * 1000)

    @DBOS.workflow()
    def ten_steps() -> None:
        for _ in range(10):
            noop()

    DBOS.launch()
    try:
        timed(50)
        timings.clear()
        timed(steps)
        per_step = list(timings)
        ten_steps()
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: ten_steps(), range(runs)))
        throughput = runs / (time.perf_counter() - started)
    finally:
        DBOS.destroy()
    return per_step, throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500, help="steps timed for the overhead figures")
    parser.add_argument("--runs", type=int, default=300, help="ten-step runs for the throughput figures")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="quire-bench-"))
    server = EmbeddedPostgres(data_dir)
    server_url, _ = server.start()
    try:
        quire_url = fresh_database(server_url, "bench_quire")
        dbos_url = fresh_database(server_url, "bench_dbos")
        # The workers sign tenant contexts with the key in their data folder (data_dir, as here),
        # as `quire up` does: the database must know it.
        migrate(quire_url, context_key=context_key(Settings(data_dir=data_dir, secret_key="")))
        database = Database(quire_url, pool_size=1)
        with database.system_session() as session:
            tenant = Tenant(name="bench")
            session.add(tenant)
            session.commit()
        database.dispose()
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUIRE_")}
        env.update(
            QUIRE_DATABASE_URL=quire_url,
            QUIRE_DATA_DIR=str(data_dir),
            QUIRE_PROGRAM_MODULES="bench.runtime_programs",
            QUIRE_LOG_LEVEL="WARNING",
            PYTHONPATH=str(ROOT),
        )

        print(f"Runtime benchmark, embedded PostgreSQL 18, {os.cpu_count()} cores\n")
        quire_steps = quire_step_overhead(quire_url, tenant.id, args.steps)
        dbos_steps, dbos_rate = dbos_figures(dbos_url, args.steps, args.runs)
        quire_rate = quire_throughput(quire_url, tenant.id, args.runs, env)
        recovery = quire_recovery(quire_url, tenant.id, env, data_dir / "long-step-marker")

        rows = [
            (
                "no-op step overhead, median (ms)",
                statistics.median(quire_steps),
                statistics.median(dbos_steps),
            ),
            (
                "no-op step overhead, p95 (ms)",
                percentile(quire_steps, 0.95),
                percentile(dbos_steps, 0.95),
            ),
            ("10-step runs per second", quire_rate, dbos_rate),
        ]
        print(f"{'':42} {'Quire':>10} {'DBOS 3.4':>10}")
        for label, ours, theirs in rows:
            print(f"{label:42} {ours:10.2f} {theirs:10.2f}")
        ratio = statistics.median(quire_steps) / statistics.median(dbos_steps)
        print(f"\nmedian step overhead, Quire / DBOS: {ratio:.2f} (goal: at most 0.5)")
        print("throughput setup: Quire 2 worker processes x 4 threads through the PostgreSQL queue;")
        print("                  DBOS one process, 4 workflows in flight")
        print(
            f"recovery: SIGKILL of the worker mid-step -> run resumed by a new worker on code "
            f"changed "
            f"behind ctx.patched after {recovery['resumed_s']:.2f} s (goal: under 10 s; defaults: "
            f"lease 6 s, sweep 1 s); finished with steps {recovery['trail']}"
        )
        print("DBOS recovers a workflow only in a process with the same application version and executor id.")
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
