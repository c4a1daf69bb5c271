"""Soak under faults: concurrent uploads, searches, agent runs and memory reviews against a real
API and two worker processes, while a worker is killed, the broker restarts and PostgreSQL
restarts. Localhost only, bounded in time.

    .venv/bin/python -m bench.soak [--duration 180] [--broker amqp://guest:guest@127.0.0.1:5672/%2F]

The first third of the time runs without faults (the baseline, measured in the same run); the
faults come in the rest: SIGKILL one worker process (its supervisor starts another), restart the
broker (RabbitMQ's app via rabbitmqctl, or Redis via redis-cli), restart PostgreSQL (the
embedded server, stopped and started). Clients retry what failed, as real clients do: an upload
is retried with the same bytes (Quire deduplicates them), a search is simply counted as failed.

Then it waits for the work to drain and checks the invariants in the database: no run lost or
finished twice, no upload lost, no memory approved without a person's review.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quire.app.bootstrap import migrate  # noqa: E402
from quire.core.db import Database, context_key  # noqa: E402
from quire.core.embedded import LOGIN_ROLE, EmbeddedPostgres  # noqa: E402
from quire.core.models import Role, Tenant  # noqa: E402
from quire.core.settings import Settings  # noqa: E402
from quire.core.tenancy import create_api_key, create_principal  # noqa: E402

WORDS = [
    *("holiday", "travel", "laptop", "expense", "security", "badge", "parking", "pension", "training"),
    *("onboarding", "meeting", "office", "contract", "invoice", "supplier", "budget", "audit", "backup"),
    *("vacation", "remote"),
]
QUESTIONS = [
    "How many days of holiday do employees get?",
    "Who approves travel expenses?",
    "How often are laptops replaced?",
    "What is the policy on remote work?",
]
FINAL_RUN = ("completed", "failed", "cancelled")
FINAL_VERSION = ("indexed", "empty", "unsupported", "failed")


@dataclass
class Stats:
    """Latency and outcome per endpoint and phase (baseline or faults)."""

    latencies: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, phase: str, endpoint: str, seconds: float, ok: bool) -> None:
        with self.lock:
            if ok:
                self.latencies[(phase, endpoint)].append(seconds * 1000)
            else:
                self.failures[(phase, endpoint)] += 1


@dataclass
class Shared:
    base: str
    keys: dict[Role, str]
    stop: threading.Event
    stats: Stats
    phase: list[str]
    documents: set[str] = field(default_factory=set)
    upload_retries: int = 0
    agent_runs: set[str] = field(default_factory=set)
    approvals: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def call(
    shared: Shared, client: httpx.Client, endpoint: str, method: str, url: str, **kwargs: Any
) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response = client.request(method, url, **kwargs)
    except httpx.HTTPError:
        shared.stats.record(shared.phase[0], endpoint, time.perf_counter() - started, ok=False)
        return None
    ok = response.status_code < 500
    shared.stats.record(shared.phase[0], endpoint, time.perf_counter() - started, ok=ok)
    return response if ok else None


def client_for(shared: Shared, role: Role) -> httpx.Client:
    return httpx.Client(
        base_url=shared.base, headers={"Authorization": f"Bearer {shared.keys[role]}"}, timeout=30
    )


def uploader(shared: Shared, seed: int) -> None:
    rng = random.Random(seed)
    with client_for(shared, Role.contributor) as client:
        while not shared.stop.is_set():
            n = rng.randrange(10**9)
            topic = rng.choice(WORDS)
            body = (
                f"# {topic.title()} policy {n}\n\n## Rules\n\n"
                f"Every employee gets {n % 40 + 1} days of {topic} leave a year.\n\n"
                f"The {topic} budget is reviewed every {n % 11 + 1} months by the {rng.choice(WORDS)} team.\n"
            ).encode()
            for attempt in range(30):  # a retry sends the same bytes: Quire keeps one version
                response = call(
                    shared,
                    client,
                    "POST /v1/documents",
                    "POST",
                    "/v1/documents",
                    files={"file": (f"policy-{n}.md", body, "text/markdown")},
                    data={"collection": "soak"},
                )
                if response is not None and response.status_code == 202:
                    with shared.lock:
                        shared.documents.add(response.json()["document_id"])
                        shared.upload_retries += attempt
                    break
                time.sleep(0.5)
            shared.stop.wait(rng.uniform(0.5, 1.5))


def searcher(shared: Shared, seed: int) -> None:
    rng = random.Random(seed)
    with client_for(shared, Role.reader) as client:
        while not shared.stop.is_set():
            query = " ".join(rng.sample(WORDS, 2))
            call(shared, client, "GET /v1/search", "GET", "/v1/search", params={"q": query, "k": 10})
            shared.stop.wait(rng.uniform(0.05, 0.3))


def asker(shared: Shared, seed: int) -> None:
    rng = random.Random(seed)
    with client_for(shared, Role.reader) as client:
        while not shared.stop.is_set():
            key = uuid.uuid4().hex  # retried with the same idempotency key: one run, however often
            for _ in range(30):
                response = call(
                    shared,
                    client,
                    "POST /v1/agent/runs",
                    "POST",
                    "/v1/agent/runs",
                    json={"question": rng.choice(QUESTIONS), "idempotency_key": key},
                )
                if response is not None and response.status_code == 202:
                    with shared.lock:
                        shared.agent_runs.add(response.json()["id"])
                    break
                time.sleep(0.5)
            shared.stop.wait(rng.uniform(1.0, 2.5))


def reviewer(shared: Shared, seed: int) -> None:
    rng = random.Random(seed)
    with client_for(shared, Role.reviewer) as client:
        while not shared.stop.is_set():
            listed = call(
                shared,
                client,
                "GET /v1/memories",
                "GET",
                "/v1/memories",
                params={"state": "in_review", "limit": 20},
            )
            if listed is not None and listed.status_code == 200 and listed.json()["data"]:
                item = rng.choice(listed.json()["data"])
                decided = call(
                    shared,
                    client,
                    "POST /v1/memories/{id}/review",
                    "POST",
                    f"/v1/memories/{item['id']}/review",
                    json={"decision": rng.choice(["approve", "approve", "reject"]), "reason": "soak"},
                )
                if decided is not None and decided.status_code == 202:
                    with shared.lock:
                        shared.approvals += 1
            shared.stop.wait(rng.uniform(2.0, 4.0))


def worker_pids(supervisor: subprocess.Popen[bytes]) -> list[int]:
    found = []
    for child in psutil.Process(supervisor.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "quire.app.worker" in child.cmdline():
                found.append(child.pid)
        except psutil.Error:
            continue
    return found


def restart_broker(broker_url: str) -> str:
    if broker_url.startswith("amqp"):
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True)
        time.sleep(3)
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True)
        return "RabbitMQ app stopped for 3 s and started"
    if broker_url.startswith("redis"):
        # Dropping every client connection is what a Redis restart does to Quire's processes.
        subprocess.run(["redis-cli", "CLIENT", "KILL", "TYPE", "normal"], check=True, capture_output=True)
        return "every Redis client connection killed"
    return "broker is PostgreSQL: restarted with it"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=180, help="seconds of load (bounded: at most 900)")
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--drain", type=float, default=180, help="seconds to wait for work to finish")
    args = parser.parse_args()
    duration = min(args.duration, 900)

    data_dir = Path(tempfile.mkdtemp(prefix="quire-soak-"))
    postgres = EmbeddedPostgres(data_dir)
    url, _ = postgres.start()
    # As `quire up` does: the API and workers log in as the login role and sign their tenant
    # contexts with the key in the data folder, which the database must know.
    settings = Settings(data_dir=data_dir, secret_key="")
    migrate(url, settings=settings, context_key=context_key(settings), login_user=LOGIN_ROLE)
    database = Database(url, pool_size=2)
    with database.system_session() as session:
        tenant = Tenant(name="soak")
        session.add(tenant)
        session.commit()
    keys = {}
    with database.tenant_session(tenant.id) as session:
        for role in (Role.reader, Role.contributor, Role.reviewer):
            keys[role] = create_api_key(
                session=session, principal=create_principal(session=session, name=role.value, role=role)
            )
        session.commit()
    database.dispose()
    if args.broker.startswith("redis"):
        subprocess.run(
            ["redis-cli", "-n", args.broker.rsplit("/", 1)[-1], "FLUSHDB"], check=True, capture_output=True
        )

    port = 18000 + os.getpid() % 1000
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUIRE_")}
    env.update(
        QUIRE_DATA_DIR=str(data_dir),
        QUIRE_BROKER_URL=args.broker,
        QUIRE_API_BIND=f"127.0.0.1:{port}",
        QUIRE_RATE_LIMIT_PER_MINUTE="0",
        QUIRE_LOG_LEVEL="WARNING",
    )
    logs = data_dir / "logs"
    logs.mkdir()
    api = subprocess.Popen(
        [sys.executable, "-m", "quire.app.cli", "api"],
        env=env,
        cwd=ROOT,
        stdout=(logs / "api.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    workers = subprocess.Popen(
        [sys.executable, "-m", "quire.app.cli", "worker", "--processes", "2"],
        env=env,
        cwd=ROOT,
        stdout=(logs / "workers.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    faults: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                tail = (logs / "api.log").read_text(errors="replace").splitlines()[-10:]
                raise SystemExit(
                    "the API did not become ready in 120 s; its log's last lines:\n" + "\n".join(tail)
                )
            time.sleep(0.5)
        # The first search loads the API's embedding model; the workers load theirs meanwhile.
        httpx.get(
            f"{base}/v1/search",
            params={"q": "warm up"},
            headers={"Authorization": f"Bearer {keys[Role.reader]}"},
            timeout=120,
        )
        time.sleep(5)

        shared = Shared(base=base, keys=keys, stop=threading.Event(), stats=Stats(), phase=["baseline"])
        threads = [
            *(threading.Thread(target=uploader, args=(shared, n)) for n in range(2)),
            *(threading.Thread(target=searcher, args=(shared, 10 + n)) for n in range(3)),
            threading.Thread(target=asker, args=(shared, 20)),
            threading.Thread(target=reviewer, args=(shared, 30)),
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        print(
            f"soak: {duration:.0f} s of load on {base}, broker {args.broker.split('@')[-1]}, data {data_dir}"
        )

        def at(fraction: float) -> None:
            time.sleep(max(0.0, started + duration * fraction - time.monotonic()))

        at(1 / 3)
        shared.phase[0] = "faults"
        at(0.45)
        victim = worker_pids(workers)[0]
        os.kill(victim, signal.SIGKILL)
        faults.append(f"{time.monotonic() - started:5.0f} s  SIGKILL worker process {victim}")
        at(0.6)
        faults.append(f"{time.monotonic() - started:5.0f} s  {restart_broker(args.broker)}")
        at(0.75)
        down = time.monotonic()
        postgres.stop()
        postgres.start()
        faults.append(
            f"{time.monotonic() - started:5.0f} s  PostgreSQL stopped and started "
            f"({time.monotonic() - down:.1f} s down)"
        )
        at(1.0)
        shared.stop.set()
        for thread in threads:
            thread.join(timeout=60)
        load_seconds = time.monotonic() - started

        # Drain: everything accepted must reach an end.
        database = Database(url, pool_size=2)
        drain_until = time.monotonic() + args.drain
        while time.monotonic() < drain_until:
            with database.system_session() as session:
                open_runs = session.execute(
                    text(
                        "SELECT count(*) FROM runtime_run "
                        "WHERE status NOT IN ('completed','failed','cancelled') "
                        "AND status NOT IN ('waiting')"
                    )
                ).scalar_one()
            if open_runs == 0:
                break
            time.sleep(1)
        drained = time.monotonic() - started - load_seconds
        report(shared, database, tenant.id, faults, load_seconds, drained, worker_pids(workers))
        database.dispose()
    finally:
        for process in (api, workers):
            process.terminate()
        for process in (api, workers):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        postgres.stop()
        if os.environ.get("SOAK_KEEP") != "1":
            shutil.rmtree(data_dir, ignore_errors=True)


def report(
    shared: Shared,
    database: Database,
    tenant_id: uuid.UUID,
    faults: list[str],
    load_seconds: float,
    drained: float,
    workers_now: list[int],
) -> None:
    stats = shared.stats
    print("\nfaults:")
    for line in faults:
        print("  " + line)
    print(f"\nrequests over {load_seconds:.0f} s (baseline: the first third, no faults; faults: the rest)")
    print(
        f"{'endpoint':32} {'phase':9} {'served':>7} {'failed':>7} {'req/s':>7} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
    )
    total = 0
    for endpoint in sorted({e for _, e in list(stats.latencies) + list(stats.failures)}):
        for phase, seconds in (("baseline", load_seconds / 3), ("faults", load_seconds * 2 / 3)):
            values = stats.latencies.get((phase, endpoint), [])
            failed = stats.failures.get((phase, endpoint), 0)
            total += len(values)
            print(
                f"{endpoint:32} {phase:9} {len(values):7d} {failed:7d} {len(values) / seconds:7.1f} "
                + " ".join(f"{percentile(values, q):8.0f}" for q in (0.5, 0.95, 0.99))
            )
    print(
        f"requests served: {total}; uploads accepted: {len(shared.documents)} "
        f"(after {shared.upload_retries} client retries); agent runs started: {len(shared.agent_runs)}; "
        f"reviews sent: {shared.approvals}"
    )

    with database.system_session() as session:
        runs = session.execute(
            text("SELECT program, status, count(*) FROM runtime_run GROUP BY 1, 2 ORDER BY 1, 2")
        ).all()
        twice = session.execute(
            text(
                "SELECT count(*) FROM (SELECT run_id FROM runtime_event WHERE type IN "
                "('run.completed', 'run.failed', 'run.cancelled') GROUP BY run_id HAVING count(*) > 1) AS t"
            )
        ).scalar_one()
        unfinished = session.execute(
            text(
                "SELECT count(*) FROM runtime_run "
                "WHERE status NOT IN ('completed', 'failed', 'cancelled', 'waiting')"
            )
        ).scalar_one()
        known_runs = {
            str(r[0])
            for r in session.execute(text("SELECT id FROM runtime_run WHERE program = 'agent.answer'"))
        }
        recoveries = session.execute(
            text("SELECT count(*) FROM runtime_event WHERE type = 'run.recovered'")
        ).scalar_one()
        failures = session.execute(
            text(
                "SELECT program, left(error, 160), count(*) FROM runtime_run "
                "WHERE status = 'failed' GROUP BY 1, 2"
            )
        ).all()
    # Documents and memories are the tenant's: row-level security shows them in its session only
    # (a system session would see none, and every check below would pass without looking).
    with database.tenant_session(tenant_id) as session:
        documents = {
            str(row[0]): row[1]
            for row in session.execute(
                text(
                    "SELECT d.id, v.status FROM content_document d "
                    "JOIN content_version v ON v.id = d.latest_version_id"
                )
            )
        }
        unreviewed = session.execute(
            text(
                """
                SELECT count(*) FROM memory_version v
                WHERE v.state = 'approved' AND (
                    v.approved_by IS NULL OR NOT EXISTS (
                        SELECT 1 FROM memory_event e JOIN core_principal p ON p.id = v.approved_by
                        WHERE e.version_id = v.id AND e.type = 'memory.approved'
                          AND e.actor = v.approved_by::text AND p.role::text IN ('reviewer', 'admin')))
                """
            )
        ).scalar_one()
        approved = session.execute(
            text("SELECT count(*) FROM memory_version WHERE state = 'approved'")
        ).scalar_one()

    print(f"\nruns after {drained:.0f} s of drain (waiting = parked for a person, by design):")
    for program, status, count in runs:
        print(f"  {program:24} {status:10} {count}")
    for program, error, count in failures:
        print(f"  failed {program}: {count} x {error}")
    print(
        f"recoveries after a lost worker: {recoveries}; worker processes alive at the end: {len(workers_now)}"
    )

    lost_uploads = [d for d in shared.documents if d not in documents]
    not_indexed = [d for d in shared.documents if documents.get(d) not in FINAL_VERSION]
    lost_runs = [r for r in shared.agent_runs if r not in known_runs]
    checks = [
        ("no run lost (every accepted agent run exists)", not lost_runs, f"{len(lost_runs)} missing"),
        ("no run left unfinished after the drain", unfinished == 0, f"{unfinished} not final"),
        ("no run finished twice", twice == 0, f"{twice} runs with two endings"),
        ("no upload lost (every 202 has its document)", not lost_uploads, f"{len(lost_uploads)} missing"),
        (
            "every accepted upload ingested to a final status",
            not not_indexed,
            f"{len(not_indexed)} not final",
        ),
        (
            "no memory approved without a person's review",
            unreviewed == 0,
            f"{unreviewed} of {approved} approved",
        ),
    ]
    print("\ninvariants:")
    for name, ok, detail in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {name}" + ("" if ok else f" ({detail})"))
    statuses: dict[str, int] = defaultdict(int)
    for d in shared.documents:
        statuses[str(documents.get(d))] += 1
    print(f"uploads by status: {dict(statuses)}; memories approved (each by a reviewer): {approved}")
    if not all(ok for _, ok, _ in checks):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
