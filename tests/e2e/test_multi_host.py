"""Quire beyond one machine: an API process and worker processes on two "hosts" (separate data
folders and process trees) share one PostgreSQL and one broker, and nothing else; runs started
over HTTP spread over both hosts, and a document uploaded to the API host is ingested by a worker
host (its bytes kept in the database). Against RabbitMQ and Redis, as docs/deploy.md describes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from quire.core.embedded import EmbeddedPostgres
from quire.core.models import Role, Tenant
from tests.conftest import create_database
from tests.factories import TEST_SECRET_KEY, TenantFixture, auth, make_key, open_database

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RUNS = 24
HANDBOOK = "# Handbook\n\n## Holidays\n\nEvery employee gets 27 days of paid holiday a year.\n"
BROKERS = {
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/%2F",
    "redis": "redis://127.0.0.1:6379/14",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(base: str, api: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert api.poll() is None, "the API process exited"
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the API never became ready")


def wait_consuming(log: Path, worker: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Until the host's worker process says it consumes: runs created before would all go to
    the host that started first (two hosts starting on two busy cores can be seconds apart)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.poll() is None, f"the worker exited: {log.read_text()[-2000:]}"
        if "consuming" in log.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"the worker never started consuming: {log.read_text()[-2000:]}")


@pytest.mark.parametrize("broker_name", list(BROKERS))
def test_runs_spread_over_workers_on_two_hosts(
    broker_name: str, postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    server_url = postgres.status().url
    assert server_url is not None
    url = create_database(server_url, f"quire_hosts_{broker_name}")
    broker_url = BROKERS[broker_name]
    if broker_name == "redis":
        import redis

        redis.Redis.from_url(broker_url).flushdb()
    database = open_database(url, pool_size=2)
    with database.system_session() as session:
        tenant = Tenant(name="hosts")
        session.add(tenant)
        session.commit()
    key = auth(make_key(database, TenantFixture(id=tenant.id, name="hosts"), Role.admin))

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    shared = {k: v for k, v in os.environ.items() if not k.startswith("QUIRE_")}
    shared.update(
        QUIRE_DATABASE_URL=url,  # an external PostgreSQL, as on several machines
        QUIRE_SECRET_KEY=TEST_SECRET_KEY,  # the same secret on every host
        QUIRE_BROKER_URL=broker_url,
        QUIRE_PROGRAM_MODULES="tests.e2e.spread_programs",
        QUIRE_BLOB_STORE="postgres",  # the hosts share no folder
        QUIRE_LOG_LEVEL="WARNING",
        # The test polls 25 resources twice a second with one key: under a slow machine that
        # crosses the default 600 requests a minute, and a 429 is not what this test is about.
        QUIRE_RATE_LIMIT_PER_MINUTE="0",
        PYTHONPATH=str(ROOT),
    )
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str, **extra: str) -> subprocess.Popen[bytes]:
        (tmp_path / name).mkdir()
        env = {**shared, "QUIRE_DATA_DIR": str(tmp_path / name), **extra}
        log = (tmp_path / f"{name}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "quire.app.cli", *args],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        return process

    try:
        api = start("api-host", "api", QUIRE_API_BIND=f"127.0.0.1:{port}")
        workers = {
            host: start(
                host,
                "worker",
                "--processes",
                "1",
                QUIRE_WORKER_THREADS="2",
                SPREAD_TEST_HOST=host,
                QUIRE_LOG_LEVEL="INFO",  # its "consuming" line
            )
            for host in ("host-a", "host-b")
        }
        wait_ready(base, api)
        for host, worker in workers.items():
            wait_consuming(tmp_path / f"{host}.log", worker)

        with httpx.Client(base_url=base, headers=key, timeout=30) as client:
            uploaded = client.post(
                "/v1/documents",
                files={"file": ("handbook.md", HANDBOOK.encode(), "text/markdown")},
                data={"collection": "hr"},
            )
            assert uploaded.status_code == 202, uploaded.text
            document_id = uploaded.json()["document_id"]
            run_ids = []
            for n in range(RUNS):
                created = client.post(
                    "/v1/runs", json={"program": "spread.where", "idempotency_key": f"spread-{n}"}
                )
                assert created.status_code == 202, created.text
                run_ids.append(created.json()["id"])
            deadline = time.monotonic() + 120
            runs: list[dict[str, object]] = []
            while time.monotonic() < deadline:
                runs = [client.get(f"/v1/runs/{run_id}").json() for run_id in run_ids]
                document = client.get(f"/v1/documents/{document_id}").json()
                ingested = document["versions"][0]["status"] in ("indexed", "empty", "unsupported", "failed")
                if ingested and all(run["status"] in ("completed", "failed") for run in runs):
                    break
                time.sleep(0.5)
            found = client.get("/v1/search", params={"q": "how many holiday days"}).json()
        logs = "\n".join(p.read_text() for p in tmp_path.glob("*.log"))
        assert [run["status"] for run in runs] == ["completed"] * RUNS, logs
        hosts = Counter(str(run["state"]["host"]) for run in runs)  # type: ignore[index]
        assert set(hosts) == {"host-a", "host-b"}, hosts
        assert min(hosts.values()) >= 3, hosts  # spread, not one host with a stray run
        assert document["versions"][0]["status"] == "indexed", document
        assert "27 days of paid holiday" in found["hits"][0]["text"], found
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        database.dispose()
