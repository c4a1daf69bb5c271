"""Workers lost and workers stopping: what a run waiting on a model pays, on real worker processes.

    PYTHONPATH=. .venv/bin/python bench/workers.py [--quick] [--repeat 3] [--delay 5]

Two `python -m quire.app.worker` processes with the default settings (lease 6 s, sweep 1 s, 8
threads) on an embedded PostgreSQL and its queue, and a fake OpenAI-compatible server whose answer
to a run's first model call takes `--delay` seconds (the calls after it are answered at once).
Prints medians over `--repeat` tries of:

- SIGKILL of the worker whose run waits on that answer: the time until the run has completed on
  the other worker (the sweeper recovers it once its lease expires), and the recoveries counted;
- SIGTERM instead (a deploy): the time until the run has completed on the other worker, the time
  the stopped process takes to exit, the recoveries counted and the `run.handed_over` events;
- a fresh worker process: from its start to the end of its first run's model call, and that
  step's own duration and the provider's latency, beside a second run on the same process.

Beside each, the baseline measured in the same run: an undisturbed run on a warm worker (created
-> completed), and the fresh worker's second run (created -> model call done).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.runtime import fresh_database  # noqa: E402
from quire.agent.loop import PROGRAM, AgentState  # noqa: E402
from quire.app.bootstrap import migrate  # noqa: E402
from quire.core.broker import build_broker  # noqa: E402
from quire.core.db import with_user  # noqa: E402
from quire.core.embedded import LOGIN_ROLE, EmbeddedPostgres  # noqa: E402
from quire.core.models import Role, Tenant  # noqa: E402
from quire.runtime.kicks import Kicker  # noqa: E402
from quire.runtime.service import create_run  # noqa: E402
from tests.agent.fakes.openai_server import OpenAIServer, completion_reply  # noqa: E402
from tests.agent.fakes.server import Reply  # noqa: E402
from tests.factories import CONTEXT_KEY, TEST_SECRET_KEY, open_database  # noqa: E402

MODELS = """
[targets.fake]
provider = "openai"
model = "gpt-test"
base_url = "{base_url}"
api_key_env = "BENCH_FAKE_KEY"

[routes.default]
targets = ["fake"]
"""


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def answer(content: str, delay: float = 0.0) -> Reply:
    return dataclasses.replace(completion_reply(content), delay=delay)


@dataclasses.dataclass
class Step:
    started: datetime
    finished: datetime

    @property
    def ms(self) -> float:
        return (self.finished - self.started).total_seconds() * 1000


class Bench:
    """The database, the fake provider and the worker processes of one benchmark."""

    def __init__(
        self, url: str, tenant_id: uuid.UUID, env: dict[str, str], logs: Path, provider: OpenAIServer
    ) -> None:
        self.database = open_database(url, pool_size=2)
        self.kicker = Kicker(build_broker(broker_url="", database_url=url))
        self.tenant_id, self.env, self.logs, self.provider = tenant_id, env, logs, provider
        self.workers: list[subprocess.Popen[bytes]] = []
        self.started = 0

    def start_worker(self) -> subprocess.Popen[bytes]:
        self.started += 1
        with (self.logs / f"worker-{self.started}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "quire.app.worker"], env=self.env, cwd=ROOT, stdout=log, stderr=log
            )
        self.workers.append(process)
        return process

    def ready(self, process: subprocess.Popen[bytes]) -> bool:
        """Its heartbeat is written just before its consumers start."""
        if process.poll() is not None:
            raise SystemExit(f"worker {process.pid} exited with {process.returncode}; see {self.logs}")
        with self.database.system_session() as session:
            found = session.execute(text("SELECT 1 FROM core_worker WHERE pid = :pid"), {"pid": process.pid})
            return found.first() is not None

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        self.workers.remove(process)

    def start_run(self, question: str) -> uuid.UUID:
        with self.database.tenant_session(self.tenant_id) as session:
            run, _ = create_run(
                session,
                program=PROGRAM,
                state=AgentState(question=question, role=Role.admin, tools=[]),
                kicker=self.kicker,
            )
            session.commit()
        return run.id

    def row(self, run_id: uuid.UUID) -> dict[str, Any]:
        with self.database.system_session() as session:
            row = session.execute(
                text("SELECT status, lease_owner, error, recoveries FROM runtime_run WHERE id = :id"),
                {"id": run_id},
            ).one()
        return dict(row._mapping)

    def completed(self, run_id: uuid.UUID) -> bool:
        row = self.row(run_id)
        if row["status"] in ("failed", "cancelled", "blocked"):
            raise SystemExit(f"run {run_id} {row['status']}: {row['error']}")
        return bool(row["status"] == "completed")

    def holder(self, run_id: uuid.UUID) -> subprocess.Popen[bytes]:
        owner = self.row(run_id)["lease_owner"]
        pid = int(owner.split(":")[1])  # hostname:pid:nonce
        return next(p for p in self.workers if p.pid == pid)

    def events(self, run_id: uuid.UUID) -> list[tuple[str, Any]]:
        with self.database.system_session() as session:
            rows = session.execute(
                text("SELECT type, data FROM runtime_event WHERE run_id = :id ORDER BY id"), {"id": run_id}
            ).all()
        return [(kind, data) for kind, data in rows]

    def step(self, run_id: uuid.UUID, name: str) -> Step:
        with self.database.system_session() as session:
            started, finished = session.execute(
                text("SELECT started_at, finished_at FROM runtime_step WHERE run_id = :id AND name = :name"),
                {"id": run_id, "name": name},
            ).one()
        return Step(started, finished)

    def latency_ms(self, run_id: uuid.UUID) -> float:
        return float(next(data["latency_ms"] for kind, data in self.events(run_id) if kind == "model.call"))


def undisturbed(bench: Bench) -> dict[str, float]:
    """A run on warm workers, created -> completed."""
    bench.provider.reply(answer("at once"))
    began = time.perf_counter()
    run_id = bench.start_run("quick")
    wait_for(lambda: bench.completed(run_id), 60, "an undisturbed run")
    took = time.perf_counter() - began
    kinds = [kind for kind, _ in bench.events(run_id)]
    return {
        "completed_s": took,
        "recovered": kinds.count("run.recovered"),
        "handed_over": kinds.count("run.handed_over"),
    }


def disrupted(bench: Bench, sig: signal.Signals, delay: float) -> dict[str, float]:
    """Signal the worker whose run waits on a slow model call; time the run's completion elsewhere."""
    bench.provider.reply(answer("nobody waits for this", delay), answer("answered elsewhere"))
    sent = len(bench.provider.received)
    run_id = bench.start_run("slow")
    wait_for(lambda: len(bench.provider.received) > sent, 60, "the model call")
    time.sleep(min(1.0, delay / 4))  # well inside the call
    process = bench.holder(run_id)
    signalled = time.perf_counter()
    process.send_signal(sig)
    exited = done = None
    while exited is None or done is None:
        now = time.perf_counter()
        if now - signalled > 120:
            raise SystemExit(f"run {run_id} did not complete after {sig.name}")
        if exited is None and process.poll() is not None:
            exited = now - signalled
        if done is None and bench.completed(run_id):
            done = now - signalled
        time.sleep(0.01)
    bench.workers.remove(process)
    replacement = bench.start_worker()
    wait_for(lambda: bench.ready(replacement), 120, "a replacement worker")
    events = bench.events(run_id)
    recovered = [data for kind, data in events if kind == "run.recovered"]
    return {
        "completed_s": done,
        "exited_s": exited,
        "recovered": len(recovered),
        "recoveries": max((int(data["recoveries"]) for data in recovered), default=0),
        "handed_over": sum(kind == "run.handed_over" for kind, _ in events),
    }


def fresh_worker(bench: Bench) -> dict[str, float]:
    """The first model call of a worker process that has just started, and a second one."""
    for process in list(bench.workers):
        bench.stop(process)
    bench.provider.reply(answer("first"), answer("second"))
    first = bench.start_run("first")  # queued before the process starts
    began = time.time()
    process = bench.start_worker()
    wait_for(lambda: bench.ready(process), 120, "the fresh worker")
    ready = time.time() - began
    wait_for(lambda: bench.completed(first), 120, "the fresh worker's first run")
    second_began = time.time()
    second = bench.start_run("second")
    wait_for(lambda: bench.completed(second), 60, "the fresh worker's second run")
    one, two = bench.step(first, "model:0"), bench.step(second, "model:0")
    bench.stop(process)
    return {
        "ready_s": ready,
        "first_done_s": one.finished.timestamp() - began,
        "second_done_s": two.finished.timestamp() - second_began,
        "first_step_ms": one.ms,
        "second_step_ms": two.ms,
        "first_latency_ms": bench.latency_ms(first),
        "second_latency_ms": bench.latency_ms(second),
    }


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def report(
    baseline: list[dict[str, float]],
    killed: list[dict[str, float]],
    stopped: list[dict[str, float]],
    fresh: list[dict[str, float]],
) -> None:
    def m(rows: list[dict[str, float]], key: str, digits: int = 2) -> str:
        return f"{median(rows, key):.{digits}f}"

    def counted(rows: list[dict[str, float]]) -> str:
        return f"{m(rows, 'recovered', 0)} / {m(rows, 'recoveries', 0)}"

    base = m(baseline, "completed_s")
    table = [
        ("SIGKILL mid-call: kill -> run completed elsewhere (s)", m(killed, "completed_s"), base),
        (
            "  run.recovered events / recoveries counted",
            counted(killed),
            f"{m(baseline, 'recovered', 0)} / -",
        ),
        ("SIGTERM mid-call: signal -> run completed elsewhere (s)", m(stopped, "completed_s"), base),
        ("  signal -> stopped process exited (s)", m(stopped, "exited_s"), ""),
        (
            "  run.recovered events / recoveries counted",
            counted(stopped),
            f"{m(baseline, 'recovered', 0)} / -",
        ),
        ("  run.handed_over events", m(stopped, "handed_over", 0), m(baseline, "handed_over", 0)),
        (
            "fresh worker: start -> first model call done (s)",
            m(fresh, "first_done_s"),
            m(fresh, "second_done_s"),
        ),
        ("  the model step's own duration (ms)", m(fresh, "first_step_ms", 0), m(fresh, "second_step_ms", 0)),
        (
            "  the provider's latency, model.call (ms)",
            m(fresh, "first_latency_ms", 0),
            m(fresh, "second_latency_ms", 0),
        ),
        ("  start -> worker ready (heartbeat) (s)", m(fresh, "ready_s"), ""),
    ]
    print(f"{'':58} {'figure':>10} {'baseline':>10}")
    for label, figure, beside in table:
        print(f"{label:58} {figure:>10} {beside:>10}")
    print(
        "\nbaselines: recovery rows, an undisturbed run on a warm worker (created -> completed);"
        "\n           fresh-worker rows, a second run on the same process (created -> model call done)."
        "\nAfter SIGKILL the run waits for its lease to expire (6 s, renewed every 2 s) and a sweep (1 s);"
        "\n`recoveries counted` is what run.recovered says (a run's count resets at its next step)."
    )
    if len(killed) > 1:
        tries = ", ".join(f"{row['completed_s']:.2f}" for row in killed)
        exits = ", ".join(f"{row['exited_s']:.2f}" for row in stopped)
        print(f"tries: SIGKILL -> completed {tries} s; SIGTERM -> exited {exits} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="tries of each figure (median printed)")
    parser.add_argument("--delay", type=float, default=5.0, help="seconds the interrupted model call takes")
    parser.add_argument("--quick", action="store_true", help="one try of each (about a minute)")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat

    data_dir = Path(tempfile.mkdtemp(prefix="quire-bench-workers-"))
    logs = data_dir / "logs"
    logs.mkdir()
    server = EmbeddedPostgres(data_dir)
    server_url, _ = server.start()
    provider = OpenAIServer().start()
    bench: Bench | None = None
    try:
        owner = fresh_database(server_url, "bench_workers")
        migrate(owner, context_key=CONTEXT_KEY, login_user=LOGIN_ROLE)
        url = with_user(owner, LOGIN_ROLE)  # the login workers use, as `quire up` sets it up
        database = open_database(url, pool_size=1)
        with database.system_session() as session:
            tenant = Tenant(name="bench")
            session.add(tenant)
            session.commit()
        database.dispose()
        models = data_dir / "models.toml"
        models.write_text(MODELS.format(base_url=provider.base_url))
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUIRE_")}
        env.update(
            QUIRE_DATABASE_URL=url,
            QUIRE_DATA_DIR=str(data_dir),
            QUIRE_MODELS=str(models),
            QUIRE_SECRET_KEY=TEST_SECRET_KEY,
            QUIRE_LOG_LEVEL="INFO",
            HF_HUB_OFFLINE="1",
            BENCH_FAKE_KEY="sk-bench",
            PYTHONPATH=str(ROOT),
        )
        bench = Bench(url, tenant.id, env, logs, provider)
        for _ in range(2):
            bench.start_worker()
        for process in bench.workers:
            wait_for(lambda p=process: bench.ready(p), 120, "the workers")  # type: ignore[misc]
        undisturbed(bench)  # the tenant's tool catalog is synced (embedded) once, here

        baseline = [undisturbed(bench) for _ in range(max(3, repeat))]
        killed = [disrupted(bench, signal.SIGKILL, args.delay) for _ in range(repeat)]
        stopped = [disrupted(bench, signal.SIGTERM, args.delay) for _ in range(repeat)]
        fresh = [fresh_worker(bench) for _ in range(repeat)]

        print(
            f"Workers benchmark: embedded PostgreSQL and its queue, {os.cpu_count()} cores, 2 worker "
            f"processes (lease 6 s, sweep 1 s), the interrupted model call takes {args.delay:.0f} s; "
            f"median of {repeat}\n"
        )
        report(baseline, killed, stopped, fresh)
    finally:
        if bench is not None:
            for process in list(bench.workers):
                process.kill()
                process.wait()
            bench.database.dispose()
        provider.stop()
        server.stop()
        if os.environ.get("BENCH_KEEP") is None:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
